import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { Provider } from 'oidc-provider';
import { registerInteractionRoutes, useFastifyForwarding, type InteractionDeps } from './interactions.js';

/** Any Fastify instance, whatever its logger or type provider. */
export type AnyFastify = FastifyInstance<any, any, any, any, any>;

/** Where the provider is served on Backroll's own server. */
export const MOUNT = '/oidc';

const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Serves oidc-provider (a Koa app) under `/oidc` of a Fastify server: the raw Node
 * request goes to `provider.callback()` after `reply.hijack()`, with `/oidc` stripped
 * from `req.url`. The routes live in an encapsulated scope whose content-type parser
 * leaves the body unread, for the provider to parse. The interaction pages (sign-in
 * form) are Fastify routes of a sibling scope that parses urlencoded forms.
 */
export async function mountProvider(app: AnyFastify, provider: Provider, deps: Omit<InteractionDeps, 'provider'>): Promise<void> {
  // Fastify decides whether forwarded headers are trusted (its trustProxy option); Koa is
  // told the outcome, with the host pinned to the public URL (useFastifyForwarding).
  provider.proxy = true;
  const callback = provider.callback();

  const handler = (req: FastifyRequest, reply: FastifyReply): void => {
    reply.hijack();
    const raw = req.raw as IncomingMessage & { originalUrl?: string };
    let rest = (raw.url ?? MOUNT).slice(MOUNT.length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
    // oidc-provider derives its mount path for URLs it builds (discovery, redirects)
    // from originalUrl minus url: use the public path of the issuer.
    raw.originalUrl = `${deps.publicMountPath}${rest}`;
    raw.url = rest;
    useFastifyForwarding(req, deps.oidc.issuer);
    callback(raw, reply.raw).catch((err: unknown) => {
      deps.logger.error({ err }, 'OpenID provider: request failed');
      if (!reply.raw.headersSent) reply.raw.statusCode = 500;
      reply.raw.end();
    });
  };

  await app.register(async (scope: AnyFastify) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req: FastifyRequest, _payload: unknown, done: (err: Error | null, body?: unknown) => void) => done(null));
    scope.route({ method: METHODS, url: MOUNT, handler, exposeHeadRoute: false });
    scope.route({ method: METHODS, url: `${MOUNT}/*`, handler, exposeHeadRoute: false });
  });

  await app.register(async (scope: AnyFastify) => {
    await registerInteractionRoutes(scope, MOUNT, { ...deps, provider });
  });
}
