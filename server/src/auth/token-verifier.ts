import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { OidcConfig } from '../config/config.js';
import { AppError, unauthenticated } from '../errors.js';
import type { ClientCheck } from './client-check.js';
import { claimAt, mapRoles, type Principal } from './principal.js';

export interface TokenVerifierOptions {
  oidc: OidcConfig;
  /**
   * Where to fetch the JWKS. Embedded mode passes the loopback URL of its own
   * provider, so the server never depends on its public URL being reachable from itself.
   */
  jwksUri?: string;
  /**
   * The bundled provider's machine clients: a client-credentials token (sub = client id)
   * of a deleted client is refused (AUTH.CLIENT_DELETED). Unset for external issuers.
   */
  clients?: ClientCheck;
}

/**
 * Verifies bearer access tokens against the issuer's JWKS: signature with an
 * allowed asymmetric algorithm (never `none` or HMAC), `iss`, `aud`, `exp`, `nbf`.
 * One code path for the bundled provider and any external issuer.
 */
export class TokenVerifier {
  private keys?: JWTVerifyGetKey;
  private keysPromise?: Promise<JWTVerifyGetKey>;

  constructor(private readonly options: TokenVerifierOptions) {}

  async verify(token: string): Promise<Principal> {
    const { oidc } = this.options;
    let payload: JWTPayload;
    try {
      const keys = await this.getKeys();
      ({ payload } = await jwtVerify(token, keys, {
        issuer: oidc.issuer,
        audience: oidc.audience,
        algorithms: oidc.algorithms,
        clockTolerance: oidc.clockToleranceSeconds,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw this.toAuthError(err);
    }
    const roles = mapRoles(claimAt(payload as Record<string, unknown>, oidc.rolesClaim), oidc.adminRole, oidc.viewerRole);
    const tokenClient = typeof payload.client_id === 'string' ? payload.client_id : typeof payload.azp === 'string' ? payload.azp : undefined;
    const preferred = typeof payload.preferred_username === 'string' ? payload.preferred_username : undefined;
    // The caller is a machine client only when the token is the client's own (client
    // credentials: the subject is the client; Keycloak: its service-account user). A person's
    // token names the app they signed in with (the web console) in azp/client_id too.
    const clientId =
      tokenClient !== undefined && (payload.sub === tokenClient || preferred === `service-account-${tokenClient}`) ? tokenClient : undefined;
    if (this.options.clients && clientId !== undefined && payload.sub === clientId && !this.options.clients.exists(clientId)) {
      throw unauthenticated('AUTH.CLIENT_DELETED', `the machine client ${clientId} was deleted; its tokens are no longer accepted (create a new client)`);
    }
    return {
      subject: payload.sub as string,
      clientId,
      roles,
      label: preferred ?? (clientId !== undefined ? `client:${clientId}` : (payload.sub as string)),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    };
  }

  private async getKeys(): Promise<JWTVerifyGetKey> {
    if (this.keys) return this.keys;
    this.keysPromise ??= this.resolveKeys().catch((err) => {
      this.keysPromise = undefined; // retry discovery on the next request
      throw err;
    });
    this.keys = await this.keysPromise;
    return this.keys;
  }

  private async resolveKeys(): Promise<JWTVerifyGetKey> {
    const { oidc } = this.options;
    const explicit = this.options.jwksUri ?? oidc.jwksUri;
    if (explicit) return createRemoteJWKSet(new URL(explicit));
    const discoveryUrl = `${oidc.issuer}/.well-known/openid-configuration`;
    let res: Response;
    try {
      res = await fetch(discoveryUrl, { signal: AbortSignal.timeout(5000) });
    } catch (err) {
      throw new AppError('unavailable', 'AUTH.ISSUER_UNREACHABLE', `the OpenID issuer ${oidc.issuer} cannot be reached to fetch its keys; check BACKROLL_OIDC_ISSUER and the network`, undefined, { cause: err });
    }
    const doc = (await res.json().catch(() => ({}))) as { jwks_uri?: string; issuer?: string };
    if (!res.ok || typeof doc.jwks_uri !== 'string') {
      throw new AppError('unavailable', 'AUTH.ISSUER_UNREACHABLE', `the OpenID discovery document at ${discoveryUrl} has no jwks_uri (HTTP ${res.status}); check BACKROLL_OIDC_ISSUER`);
    }
    return createRemoteJWKSet(new URL(doc.jwks_uri));
  }

  private toAuthError(err: unknown): AppError {
    if (err instanceof AppError) return err;
    if (err instanceof joseErrors.JWTExpired) return unauthenticated('AUTH.TOKEN_EXPIRED', 'the access token has expired; obtain a new one');
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      return unauthenticated('AUTH.TOKEN_INVALID', `the access token was refused: claim "${err.claim}" ${err.reason === 'check_failed' ? 'does not match' : err.reason}`);
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthenticated('AUTH.TOKEN_INVALID', 'the access token is signed with an algorithm that is not allowed');
    if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed) {
      return unauthenticated('AUTH.TOKEN_INVALID', 'the access token signature does not match the issuer keys');
    }
    if (err instanceof joseErrors.JWKSTimeout || (err instanceof Error && err.name === 'TypeError' && /fetch/.test(err.message))) {
      return new AppError('unavailable', 'AUTH.ISSUER_UNREACHABLE', 'the OpenID issuer keys cannot be fetched right now; try again', undefined, { cause: err });
    }
    return unauthenticated('AUTH.TOKEN_INVALID', 'the access token is malformed or not a signed JWT');
  }
}
