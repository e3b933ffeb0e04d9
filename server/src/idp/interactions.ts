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
 * the raw request to what Fastify concluded (honouring its trustProxy option) about
 * the client-facing scheme, host and address. So secure cookies and the URLs the
 * provider builds are right behind a TLS-terminating proxy Fastify trusts, and a
 * client cannot spoof them when it trusts none.
 */
export function useFastifyForwarding(req: FastifyRequest): void {
  const headers = req.raw.headers;
  headers['x-forwarded-proto'] = req.protocol;
  if (req.host) headers['x-forwarded-host'] = req.host;
  else delete headers['x-forwarded-host'];
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
    useFastifyForwarding(req);
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

    const throttleKey = req.ip;
    const waitMs = throttle.retryAfterMs(throttleKey);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      reply.header('retry-after', String(seconds));
      return page(reply, 429, loginPage({ action, abortAction, username, error: `Too many failed sign-in attempts. Try again in ${seconds} s.` }));
    }
    if (username === '' || password === '') {
      return page(reply, 400, loginPage({ action, abortAction, username, error: 'Enter your username and password.' }));
    }

    const account = await authenticate(deps.dataDir, username, password);
    if (!account) {
      throttle.recordFailure(throttleKey);
      logger.warn({ ip: req.ip }, 'OpenID provider: failed sign-in');
      // One message for unknown users and wrong passwords: no account enumeration.
      return page(reply, 401, loginPage({ action, abortAction, username, error: 'Wrong username or password.' }));
    }
    throttle.recordSuccess(throttleKey);
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
