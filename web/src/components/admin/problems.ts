/**
 * Server problems (application/problem+json) on the form fields they concern.
 * Validation errors carry `errors: [{ path: "body/retention/daily", message }]`;
 * service errors carry a code such as STORAGE.PATH_NOT_WRITABLE or
 * POLICY.NAME_TAKEN whose words name the field.
 */

export interface ProblemLike {
  status?: number;
  code?: string;
  detail?: string;
  errors?: Array<{ path: string; message: string }>;
  [extra: string]: unknown;
}

export interface FieldErrorResult {
  /** field (dotted: "retention.daily") → message */
  fields: Record<string, string>;
  /** what no field of the form explains: shown above the form */
  general: string | null;
}

const snake = (field: string) => field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** The problem carried by an error thrown by the API client (several shapes tolerated). */
export function problemOf(err: unknown): ProblemLike | null {
  if (!err || typeof err !== 'object') return null;
  const e = err as Record<string, unknown>;
  if (e.problem && typeof e.problem === 'object') return e.problem as ProblemLike;
  if (typeof e.code === 'string' && (typeof e.detail === 'string' || Array.isArray(e.errors))) return e as ProblemLike;
  return null;
}

/** A message for an error: the problem's detail, else the error's message. */
export function messageOf(err: unknown): string {
  const p = problemOf(err);
  if (p?.detail) return p.detail;
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Maps a problem onto a form's fields. `fields` lists the form's field names
 * (dotted for nested ones); a validation path or a code naming one of them
 * lands there, the rest in `general`.
 */
export function fieldErrors(err: unknown, fields: readonly string[]): FieldErrorResult {
  const p = problemOf(err);
  if (!p) return { fields: {}, general: messageOf(err) };
  const out: Record<string, string> = {};
  const rest: string[] = [];
  if (Array.isArray(p.errors) && p.errors.length > 0) {
    for (const e of p.errors) {
      const path = e.path.replace(/^(body|querystring|params)\/?/, '').split('/').filter(Boolean);
      // the deepest known field on the path: body/retention/daily → retention.daily, else retention
      let hit: string | null = null;
      for (let n = path.length; n > 0 && !hit; n--) {
        const f = path.slice(0, n).join('.');
        if (fields.includes(f)) hit = f;
      }
      if (hit) out[hit] = out[hit] ? `${out[hit]}; ${e.message}` : e.message;
      else rest.push(path.length ? `${path.join('.')}: ${e.message}` : e.message);
    }
    return { fields: out, general: rest.length ? rest.join('; ') : null };
  }
  const words = (p.code ?? '').split('.').slice(1).join('_').split('_');
  const byCode = fields
    .filter((f) => !f.includes('.'))
    .find((f) => {
      const tokens = snake(f).split('_');
      // storageId → STORAGE_ID: the whole name, or its first word when the rest is ID
      const want = tokens[tokens.length - 1] === 'ID' && tokens.length > 1 ? tokens.slice(0, -1) : tokens;
      return words.some((_, i) => want.every((t, j) => words[i + j] === t));
    });
  if (byCode) return { fields: { [byCode]: p.detail ?? p.code ?? 'invalid' }, general: null };
  return { fields: {}, general: p.detail ?? p.code ?? 'the request failed' };
}
