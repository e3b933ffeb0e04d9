import type { FastifyReply, FastifyRequest } from 'fastify';
import type { InteractionInstance, Provider } from 'oidc-provider';
import type { OidcConfig } from '../config/config.js';
import { authenticate } from './accounts.js';
import type { AnyFastify } from './mount.js';
import type { IdpLogger } from './provider.js';
import { LoginThrottle } from './throttle.js';
import { loginPage, messagePage, pageCsp } from './views.js';

export interface InteractionDeps {
  provider: Provider;
  dataDir: string;
  oidc: OidcConfig;
  logger: IdpLogger;
  /** Path of the provider as browsers see it (the issuer's path, normally `/oidc`). */
  publicMountPath: string;
  throttle?: LoginThrottle;
}

type UidRequest = FastifyRequest<{ Params: { uid: string } }>;

/**
 * The provider runs with Koa's `proxy = true`; this rewrites the forwarded headers of
 * the raw request before it sees them:
 * - host: always the public URL's (BACKROLL_PUBLIC_URL / the issuer), so the URLs the
 *   provider builds (discovery, redirects) never come from a Host or X-Forwarded-Host
 *   header a client chose;
 * - scheme: https when the public URL is https, or when Fastify concluded the request
 *   came over TLS (directly, or through a proxy it trusts: BACKROLL_TRUST_PROXY), so the
 *   provider's cookies get `Secure` behind a TLS-terminating proxy; an untrusted client's
 *   X-Forwarded-Proto changes nothing;
 * - address: the client address Fastify concluded (the proxy's, unless it is trusted).
 */
export function useFastifyForwarding(req: FastifyRequest, issuer: string): void {
  const publicUrl = new URL(issuer);
  const headers = req.raw.headers;
  headers['x-forwarded-proto'] = publicUrl.protocol === 'https:' || req.protocol === 'https' ? 'https' : 'http';
  headers['x-forwarded-host'] = publicUrl.host;
  headers['x-forwarded-for'] = req.ip;
}

const MAX_USERNAME = 200;
const MAX_PASSWORD = 1024;

/**
 * The provider's interactions (devInteractions are off): a sign-in form for the
 * `login` prompt; the `consent` prompt is granted automatically for the first-party
 * web client. Routes: GET/POST `<mount>/interaction/:uid`, POST `<mount>/interaction/:uid/abort`.
 */
export async function registerInteractionRoutes(scope: AnyFastify, mount: string, deps: InteractionDeps): Promise<void> {
  const { provider, oidc, logger } = deps;
  const throttle = deps.throttle ?? new LoginThrottle();
  const csp = pageCsp(
    oidc.webRedirectUris.flatMap((u) => {
      try {
        return [new URL(u).origin];
      } catch {
        return [];
      }
    }),
  );
  const actionFor = (uid: string) => `${deps.publicMountPath}/interaction/${encodeURIComponent(uid)}`;

  // Only this scope parses bodies (urlencoded form posts); the provider's scope must not.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(typeof body === 'string' ? body : body.toString('utf8'))));
  });

  const page = (reply: FastifyReply, status: number, html: string) =>
    reply
      .code(status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', csp)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .send(html);

  const redirect = (reply: FastifyReply, location: string) => reply.header('cache-control', 'no-store').redirect(location, 303);

  const expired = (reply: FastifyReply) =>
    page(reply, 400, messagePage('Sign-in expired', 'This sign-in request is unknown or has expired. Go back to Backroll and sign in again.'));

  /** The interaction of this browser, when it matches the URL; undefined when expired or unknown. */
  const details = async (req: UidRequest, reply: FastifyReply): Promise<InteractionInstance | undefined> => {
    useFastifyForwarding(req, oidc.issuer);
    try {
      const interaction = await provider.interactionDetails(req.raw, reply.raw);
      return interaction.uid === req.params.uid ? interaction : undefined;
    } catch {
      return undefined; // SessionNotFound: no or stale interaction cookie
    }
  };

  const consent = async (req: UidRequest, reply: FastifyReply, interaction: InteractionInstance) => {
    const clientId = interaction.params.client_id;
    const accountId = interaction.session?.accountId;
    if (clientId !== oidc.webClientId || !accountId) {
      return page(reply, 403, messagePage('Not allowed', 'Only the Backroll web UI can ask for sign-in here.'));
    }
    const grant = (interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    const missing = interaction.prompt.details;
    if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    const returnTo = await provider.interactionResult(req.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return redirect(reply, returnTo);
  };

  scope.get<{ Params: { uid: string } }>(`${mount}/interaction/:uid`, async (req, reply) => {
    const interaction = await details(req, reply);
    if (!interaction) return expired(reply);
    switch (interaction.prompt.name) {
      case 'login':
        return page(reply, 200, loginPage({ action: actionFor(interaction.uid), abortAction: `${actionFor(interaction.uid)}/abort` }));
      case 'consent':
        return consent(req, reply, interaction);
      default:
        return page(reply, 400, messagePage('Sign-in error', `This sign-in step (${interaction.prompt.name}) is not supported.`));
    }
  });

  scope.post<{ Params: { uid: string } }>(`${mount}/interaction/:uid`, async (req, reply) => {
    const interaction = await details(req, reply);
    if (!interaction) return expired(reply);
    if (interaction.prompt.name === 'consent') return consent(req, reply, interaction);
    if (interaction.prompt.name !== 'login') return expired(reply);

    const form = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof form.username === 'string' ? form.username.trim().slice(0, MAX_USERNAME) : '';
    const password = typeof form.password === 'string' ? form.password.slice(0, MAX_PASSWORD) : '';
    const action = actionFor(interaction.uid);
    const abortAction = `${action}/abort`;

    if (username === '' || password === '') {
      return page(reply, 400, loginPage({ action, abortAction, username, error: 'Enter your username and password.' }));
    }
    // The client address as Fastify concluded it (the proxy's unless BACKROLL_TRUST_PROXY trusts it).
    const throttleKey = req.ip;
    // The slot is taken before the (slow) password check: parallel guesses cannot all slip through.
    const slot = throttle.begin(throttleKey);
    if (!slot.ok) {
      const seconds = Math.max(1, Math.ceil(slot.retryAfterMs / 1000));
      reply.header('retry-after', String(seconds));
      return page(reply, 429, loginPage({ action, abortAction, username, error: `Too many failed sign-in attempts. Try again in ${seconds} s.` }));
    }
    let account: Awaited<ReturnType<typeof authenticate>>;
    try {
      account = await throttle.check(() => authenticate(deps.dataDir, username, password));
    } catch (err) {
      throttle.abandon(throttleKey);
      if ((err as { code?: string }).code !== 'IDP.BUSY') throw err;
      reply.header('retry-after', '2');
      return page(reply, 503, loginPage({ action, abortAction, username, error: 'The sign-in service is busy. Try again in a few seconds.' }));
    }
    throttle.end(throttleKey, account !== undefined);
    if (!account) {
      logger.warn({ ip: req.ip }, 'OpenID provider: failed sign-in');
      // One message for unknown users and wrong passwords: no account enumeration.
      return page(reply, 401, loginPage({ action, abortAction, username, error: 'Wrong username or password.' }));
    }
    logger.info({ username: account.username, ip: req.ip }, 'OpenID provider: signed in');
    const returnTo = await provider.interactionResult(
      req.raw,
      reply.raw,
      { login: { accountId: account.username, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
    return redirect(reply, returnTo);
  });

  scope.post<{ Params: { uid: string } }>(`${mount}/interaction/:uid/abort`, async (req, reply) => {
    const interaction = await details(req, reply);
    if (!interaction) return expired(reply);
    const returnTo = await provider.interactionResult(
      req.raw,
      reply.raw,
      { error: 'access_denied', error_description: 'the user cancelled the sign-in' },
      { mergeWithLastSubmission: false },
    );
    return redirect(reply, returnTo);
  });
}
