export type AccessRole = 'admin' | 'viewer';

/** Who is calling: derived from a verified access token only. */
export interface Principal {
  subject: string;
  clientId?: string;
  roles: AccessRole[];
  /** For task records and logs: a person's name or a client id, never a secret. */
  label: string;
  /** When the token expires (ms since 1970), if it does: long-lived responses (SSE) end then. */
  expiresAt?: number;
}

export const isAdmin = (p: Principal): boolean => p.roles.includes('admin');
export const canRead = (p: Principal): boolean => p.roles.length > 0;

/** Reads a dotted claim path (`realm_access.roles`) from a JWT payload. */
export function claimAt(payload: Record<string, unknown>, dottedPath: string): unknown {
  let cur: unknown = payload;
  for (const part of dottedPath.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Maps the raw role claim (array, or space/comma-separated string) to Backroll roles. */
export function mapRoles(raw: unknown, adminRole: string, viewerRole: string): AccessRole[] {
  const values = Array.isArray(raw)
    ? raw.filter((v): v is string => typeof v === 'string')
    : typeof raw === 'string'
      ? raw.split(/[\s,]+/).filter(Boolean)
      : [];
  const roles: AccessRole[] = [];
  if (values.includes(adminRole)) roles.push('admin');
  if (values.includes(viewerRole) || values.includes(adminRole)) roles.push('viewer');
  return roles;
}
