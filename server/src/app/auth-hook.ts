import type { FastifyInstance, FastifyRequest } from 'fastify';
import { canRead, isAdmin, type Principal } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/token-verifier.js';
import { forbidden, unauthenticated } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Reads that only an admin may make (e.g. listing API clients). */
    adminOnly?: boolean;
  }
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A second way in for requests without an Authorization header (the queue
 * dashboard's browser session); returns undefined when it does not apply.
 */
export type SessionAuth = (req: FastifyRequest) => Principal | undefined;

/**
 * Every request but the public paths needs a verified bearer token. Viewers may
 * read; anything that changes state needs the admin role.
 */
export function registerAuth(app: FastifyInstance, verifier: TokenVerifier, publicPath: RegExp, sessionAuth?: SessionAuth): void {
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '/';
    // Public only when both the raw URL and the route that will answer are: the router decodes
    // %xx before matching, so `/%61pi/v2/storages` reaches `/api/v2/storages` while its raw
    // text looks like one of the console's public file paths; and `/api/v2/unknown` falls to
    // the console's catch-all route, which is public, while its URL is not.
    const route = req.routeOptions?.url;
    if (publicPath.test(path) && (route === undefined || publicPath.test(route))) return;
    const session = req.headers.authorization === undefined ? sessionAuth?.(req) : undefined;
    const principal = session ?? (await verifier.verify(bearerToken(req)));
    req.principal = principal;
    if (!canRead(principal)) {
      throw forbidden('AUTH.NO_ROLE', 'the token is valid but grants no Backroll role (admin or viewer); ask an administrator to assign one');
    }
    const needsAdmin = !READ_METHODS.has(req.method) || req.routeOptions.config?.adminOnly === true;
    if (needsAdmin && !isAdmin(principal)) {
      throw forbidden('AUTH.ADMIN_REQUIRED', `${req.method} ${path} needs the admin role; this token only has: ${principal.roles.join(', ')}`);
    }
  });
}

function bearerToken(req: FastifyRequest): string {
  const header = req.headers.authorization;
  if (!header) throw unauthenticated('AUTH.TOKEN_MISSING', 'this route needs an access token: send "Authorization: Bearer <token>"');
  const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  if (!match?.[1]) throw unauthenticated('AUTH.TOKEN_MISSING', 'the Authorization header must be "Bearer <token>"');
  return match[1];
}
