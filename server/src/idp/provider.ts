import Provider, { errors, type Account, type BaseTokenInstance, type ClientInstance, type Configuration, type GrantInstance, type KoaContextWithOIDC } from 'oidc-provider';
import type { OidcConfig } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { findAccountRecord, type IdpRole } from './accounts.js';
import { adapterFactory, type MemoryStore } from './adapters.js';
import { findMachineClient } from './clients.js';
import type { PrivateJwks, SigningAlg } from './keys.js';
import { escapeHtml, layout, messagePage } from './views.js';

export const ACCESS_TOKEN_TTL = 60 * 60;
export const API_SCOPE = 'api';
const SESSION_TTL = 12 * 60 * 60;

export interface IdpLogger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface ProviderSetup {
  dataDir: string;
  oidc: OidcConfig;
  secretBox: SecretBox;
  logger: IdpLogger;
  jwks: PrivateJwks;
  signingAlg: SigningAlg;
  cookieKeys: string[];
  store: MemoryStore;
}

function isAbsoluteUri(value: string): boolean {
  try {
    return Boolean(new URL(value).protocol) && !value.includes('#');
  } catch {
    return false;
  }
}

/**
 * The resource indicator (RFC 8707) of Backroll's API. oidc-provider needs an absolute
 * URI; the audience is used when it is one, otherwise a fixed URN. Either way the
 * token's `aud` is the configured audience, and clients need not send `resource`.
 */
export function resourceIndicatorFor(audience: string): string {
  return isAbsoluteUri(audience) ? audience : 'urn:backroll:api';
}

/** Path of the provider under the server, from the issuer (`http://host:5050/oidc` → `/oidc`). */
export function mountPathOf(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '');
}

/** `{roles: [...]}` for `roles`, `{realm_access: {roles: [...]}}` for `realm_access.roles`. */
export function claimsAtPath(dottedPath: string, value: unknown): Record<string, unknown> {
  const parts = dottedPath.split('.');
  const root: Record<string, unknown> = {};
  let cur = root;
  parts.forEach((part, i) => {
    const next = i === parts.length - 1 ? value : {};
    // defineProperty: an own property even for names like __proto__.
    Object.defineProperty(cur, part, { value: next, enumerable: true, writable: true, configurable: true });
    cur = next as Record<string, unknown>;
  });
  return root;
}

export function roleValue(oidc: OidcConfig, role: IdpRole): string {
  return role === 'admin' ? oidc.adminRole : oidc.viewerRole;
}

function redirectOrigins(uris: readonly string[]): string[] {
  const origins = new Set<string>();
  for (const uri of uris) {
    try {
      origins.add(new URL(uri).origin);
    } catch {
      // invalid URIs are refused by the client schema at startup
    }
  }
  return [...origins];
}

export function createProvider(setup: ProviderSetup): Provider {
  const { dataDir, oidc, logger, signingAlg } = setup;
  const resource = resourceIndicatorFor(oidc.audience);
  const mountPath = mountPathOf(oidc.issuer);
  const webOrigins = redirectOrigins(oidc.webRedirectUris);

  const webClient = {
    client_id: oidc.webClientId,
    client_name: 'Backroll web UI',
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: oidc.webRedirectUris,
    post_logout_redirect_uris: [...new Set([...oidc.webRedirectUris, ...webOrigins.map((o) => `${o}/`)])],
    id_token_signed_response_alg: signingAlg,
  };

  const getResourceServerInfo = async (_ctx: KoaContextWithOIDC, indicator: string) => {
    if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource indicator; this provider issues tokens for ${resource} only`);
    return {
      scope: API_SCOPE,
      audience: oidc.audience,
      accessTokenFormat: 'jwt',
      accessTokenTTL: ACCESS_TOKEN_TTL,
      jwt: { sign: { alg: signingAlg } },
    };
  };

  const findAccount = async (_ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> => {
    const account = findAccountRecord(dataDir, sub);
    if (!account) return undefined;
    return {
      accountId: account.username,
      claims: () => ({ sub: account.username, preferred_username: account.username }),
    };
  };

  // Every access token carries the subject's role at the configured claim path.
  const extraTokenClaims = async (_ctx: KoaContextWithOIDC, token: BaseTokenInstance) => {
    let role: IdpRole | undefined;
    let username: string | undefined;
    if (token.accountId) {
      const account = findAccountRecord(dataDir, token.accountId);
      role = account?.role;
      username = account?.username;
    } else if (token.clientId) {
      role = findMachineClient(dataDir, token.clientId)?.role;
    }
    const claims = claimsAtPath(oidc.rolesClaim, role ? [roleValue(oidc, role)] : []);
    if (username !== undefined && !('preferred_username' in claims)) claims.preferred_username = username;
    return claims;
  };

  // The web UI is first-party: consent is implied, the grant covers what it asked for.
  const loadExistingGrant = async (ctx: KoaContextWithOIDC): Promise<GrantInstance | undefined> => {
    const { oidc: o } = ctx;
    const client = o.client;
    const accountId = o.account?.accountId ?? o.session?.accountId;
    if (!client || !accountId) return undefined;
    const grantId = o.result?.consent?.grantId ?? o.session?.grantIdFor(client.clientId);
    let grant = grantId ? await o.provider.Grant.find(grantId) : undefined;
    if (grant && grant.accountId !== accountId) grant = undefined;
    if (client.clientId !== oidc.webClientId) return grant;
    grant ??= new o.provider.Grant({ accountId, clientId: client.clientId });
    const oidcScopes = [...o.requestParamOIDCScopes];
    if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
    for (const [indicator, server] of Object.entries(o.resourceServers)) {
      const scopes = [...o.requestParamScopes].filter((s) => server.scopes.has(s));
      if (scopes.length > 0) grant.addResourceScope(indicator, scopes.join(' '));
    }
    await grant.save();
    return grant;
  };

  const renderError = async (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => {
    ctx.type = 'html';
    ctx.body = layout(
      'Sign-in error',
      `<h1>Sign-in error</h1>\n<p>${escapeHtml(out.error_description ?? out.error ?? 'the request could not be processed')}</p>\n<p class="muted">${escapeHtml(out.error ?? '')}</p>`,
    );
  };

  const configuration: Configuration = {
    adapter: adapterFactory(setup.store, {
      dataDir,
      secretBox: setup.secretBox,
      onUnreadable: (clientId, err) =>
        logger.error({ clientId, err }, 'the secret of this machine client cannot be decrypted (was secret.key replaced?); recreate the client'),
    }),
    clients: [webClient],
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: signingAlg,
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    clientBasedCORS: (_ctx: KoaContextWithOIDC, origin: string, client: ClientInstance) =>
      client.clientAuthMethod === 'none' && client.redirectUris.some((uri) => redirectOrigins([uri])[0] === origin),
    cookies: {
      keys: setup.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    jwks: setup.jwks,
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    scopes: ['openid', 'profile', 'offline_access'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: false },
      introspection: { enabled: false },
      revocation: { enabled: false },
      registration: { enabled: false },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.type = 'html';
          // `form` is oidc-provider's own hidden form (with its xsrf token); the buttons submit it.
          ctx.body = layout(
            'Sign out',
            `<h1>Sign out of Backroll?</h1>\n${form}\n<div class="actions"><button class="primary" type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button><button class="secondary" type="submit" form="op.logoutForm">Stay signed in</button></div>`,
          );
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.type = 'html';
          ctx.body = messagePage('Signed out', 'You are signed out of Backroll.');
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: KoaContextWithOIDC, _client: ClientInstance, oneOf?: string[]) =>
          oneOf ? (oneOf.includes(resource) ? resource : oneOf) : resource,
        useGrantedResource: async () => true,
        getResourceServerInfo,
      },
    },
    findAccount,
    extraTokenClaims,
    loadExistingGrant,
    interactions: {
      url: async (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `${mountPath}/interaction/${interaction.uid}`,
    },
    renderError,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ACCESS_TOKEN_TTL,
      RefreshToken: SESSION_TTL,
      Interaction: 60 * 60,
      Session: SESSION_TTL,
      Grant: SESSION_TTL,
    },
  };

  const provider = new Provider(oidc.issuer, configuration);
  provider.on('server_error', (_ctx: unknown, err: unknown) => logger.error({ err }, 'OpenID provider: internal error'));
  return provider;
}
