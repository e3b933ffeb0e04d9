/**
 * A machine client's id and secret exchanged for an access token with the client
 * credentials grant at the issuer's token endpoint: the bundled provider (reached without
 * the network) or an external issuer (its discovery document names the endpoint). Used
 * where a caller cannot do OAuth itself (CloudStack's `backroll` provider sends an
 * "app name" and "password"). Failures never say whether the client exists.
 */
import { AppError, unauthenticated } from '../errors.js';

export interface IssuedToken {
  accessToken: string;
  expiresIn: number | null;
  tokenType: string | null;
  scope: string | null;
}

/** POSTs a form to the token endpoint; resolves with the status and the parsed JSON body (or undefined). */
export type TokenPost = (form: URLSearchParams, headers: Record<string, string>) => Promise<{ status: number; body: unknown }>;

const MAX_FIELD = 512;

export function clientRefused(): AppError {
  return unauthenticated('AUTH.CLIENT_REFUSED', 'the app name (client id) or the password (client secret) is wrong; check the machine client in Backroll and the CloudStack zone settings');
}

export class ClientCredentialsLogin {
  constructor(
    private readonly post: TokenPost,
    /** Scope to ask for (the bundled provider's `api`); none for an external issuer. */
    private readonly scope?: string,
  ) {}

  async login(clientId: unknown, clientSecret: unknown): Promise<IssuedToken> {
    const valid = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD && !/[\u0000-\u001f]/.test(v);
    if (!valid(clientId) || !valid(clientSecret)) throw clientRefused();
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (this.scope) form.set('scope', this.scope);
    // RFC 6749 2.3.1: both parts form-urlencoded before base64.
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64');
    let res: { status: number; body: unknown };
    try {
      res = await this.post(form, { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' });
    } catch (err) {
      throw new AppError('unavailable', 'AUTH.ISSUER_UNREACHABLE', 'the OpenID issuer cannot be reached to sign the client in; try again', undefined, { cause: err });
    }
    const body = (res.body ?? {}) as { access_token?: unknown; expires_in?: unknown; token_type?: unknown; scope?: unknown };
    if (res.status === 200 && typeof body.access_token === 'string' && body.access_token !== '') {
      return {
        accessToken: body.access_token,
        expiresIn: typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) ? Math.trunc(body.expires_in) : null,
        tokenType: typeof body.token_type === 'string' ? body.token_type : null,
        scope: typeof body.scope === 'string' ? body.scope : null,
      };
    }
    if (res.status === 400 || res.status === 401) throw clientRefused();
    throw new AppError('unavailable', 'AUTH.ISSUER_UNREACHABLE', `the OpenID issuer answered the token request with HTTP ${res.status}; try again`);
  }
}

/** The token endpoint of an external issuer, from its discovery document (fetched once). */
export function issuerTokenPost(issuer: string, timeoutMs = 10_000): TokenPost {
  let endpoint: Promise<string> | undefined;
  const discover = async (): Promise<string> => {
    const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(timeoutMs) });
    const doc = (await res.json().catch(() => ({}))) as { token_endpoint?: unknown };
    if (!res.ok || typeof doc.token_endpoint !== 'string') throw new Error(`no token_endpoint in the discovery document of ${issuer} (HTTP ${res.status})`);
    return doc.token_endpoint;
  };
  return async (form, headers) => {
    endpoint ??= discover().catch((err: unknown) => {
      endpoint = undefined;
      throw err;
    });
    const res = await fetch(await endpoint, { method: 'POST', headers, body: form, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  };
}
