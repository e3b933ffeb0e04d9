// The OpenID side of sign-in: the console's configuration (GET /api/console/config), the
// issuer's discovery document, and the token endpoint calls (code exchange, refresh).
import type { ConsoleConfig } from '../api/types';
import type { Tokens } from './session';

export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

export class SignInError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'SignInError';
  }
}

let configPromise: Promise<ConsoleConfig> | null = null;
let discoveryPromise: Promise<Discovery> | null = null;

export function consoleConfig(): Promise<ConsoleConfig> {
  configPromise ??= (async () => {
    let res: Response;
    try {
      res = await fetch('/api/console/config', { headers: { accept: 'application/json' } });
    } catch {
      throw new SignInError('Backroll cannot be reached; check that the server is running, then retry.', 'NETWORK.UNREACHABLE');
    }
    if (!res.ok) throw new SignInError(`Backroll did not give its sign-in settings (HTTP ${res.status} from /api/console/config).`, 'CONSOLE.CONFIG_UNAVAILABLE');
    return (await res.json()) as ConsoleConfig;
  })();
  configPromise.catch(() => (configPromise = null));
  return configPromise;
}

export function discovery(): Promise<Discovery> {
  discoveryPromise ??= (async () => {
    const cfg = await consoleConfig();
    const url = `${cfg.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { accept: 'application/json' } });
    } catch {
      throw new SignInError(`The sign-in service ${cfg.issuer} cannot be reached; check BACKROLL_OIDC_ISSUER and the network, then retry.`, 'AUTH.ISSUER_UNREACHABLE');
    }
    if (!res.ok) throw new SignInError(`The sign-in service ${cfg.issuer} has no discovery document (HTTP ${res.status}).`, 'AUTH.ISSUER_UNREACHABLE');
    const doc = (await res.json()) as Discovery;
    if (!doc.authorization_endpoint || !doc.token_endpoint) throw new SignInError(`The discovery document of ${cfg.issuer} names no authorization or token endpoint.`, 'AUTH.ISSUER_UNREACHABLE');
    return doc;
  })();
  discoveryPromise.catch(() => (discoveryPromise = null));
  return discoveryPromise;
}

export async function tokenRequest(params: Record<string, string>): Promise<Tokens> {
  const { token_endpoint } = await discovery();
  let res: Response;
  try {
    res = await fetch(token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(params).toString(),
    });
  } catch {
    throw new SignInError('The sign-in service cannot be reached to issue a token; retry.', 'AUTH.ISSUER_UNREACHABLE');
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof body.access_token !== 'string') {
    const reason = typeof body.error_description === 'string' ? body.error_description : typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
    throw new SignInError(`The sign-in service refused the token request: ${reason}`, typeof body.error === 'string' ? `OIDC.${body.error.toUpperCase()}` : 'OIDC.TOKEN_REFUSED');
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 3600;
  return {
    accessToken: body.access_token,
    refreshToken: typeof body.refresh_token === 'string' ? body.refresh_token : null,
    idToken: typeof body.id_token === 'string' ? body.id_token : null,
    expiresAt: Date.now() + expiresIn * 1000,
  };
}
