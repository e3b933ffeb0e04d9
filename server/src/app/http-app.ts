import { randomUUID } from 'node:crypto';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TokenVerifier } from '../auth/token-verifier.js';
import { registerAuth, type SessionAuth } from './auth-hook.js';
import { registerMetrics, type Metrics } from '../http/metrics.js';
import { problem, sendProblem, toProblem } from '../http/problem.js';
import { ProblemSchema } from '../http/schemas.js';

export interface HttpAppOptions {
  logger: FastifyBaseLogger;
  verifier: TokenVerifier;
  metrics?: Metrics;
  version: string;
  /** Registers the domain routes under /api/v2 (and anything else authenticated). */
  routes: (app: FastifyInstance) => Promise<void>;
  /** Registers unauthenticated extras before the routes (the bundled OpenID provider). */
  publicPlugins?: (app: FastifyInstance) => Promise<void>;
  health?: () => Promise<{ ok: boolean; checks: Record<string, string> }>;
  /** Cookie sessions of the queue dashboard (distributed mode). */
  sessionAuth?: SessionAuth;
  /** BACKROLL_TRUST_PROXY: whose X-Forwarded-* headers set req.ip and req.protocol; default none. */
  trustProxy?: boolean | number | string[];
}

/** Paths served without a token: health, the OpenID provider, the API description, the /api/v1 logins (CloudStack). */
export const PUBLIC_PATH = /^\/(api\/health|oidc(\/|$)|api\/docs(\/|$)|api\/openapi\.json$|api\/console\/config$|api\/v1\/+(login|auth|auth\/cloudstack\/login)$)/;
/** The web console's files (like any web page; everything they call needs a token): all but the API, the provider, the queue board, metrics. */
export const WEB_PATH = /^\/(?!(api|admin|oidc)(\/|$)|metrics$)/;

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export async function buildHttpApp(options: HttpAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger,
    // Accept a caller's request id when it is sane, so logs correlate across services.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true } },
    bodyLimit: 1024 * 1024,
    // A number of hops is "trust the nth hop from this server", as Fastify does for numbers.
    trustProxy: typeof options.trustProxy === 'number' ? ((hops) => (_addr: string, i: number) => i < hops)(options.trustProxy) : (options.trustProxy ?? false),
  });
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  app.addSchema(ProblemSchema);
  await app.register(helmet, {
    // swagger-ui needs its own CSP (set by the plugin below); everything else gets the strict default.
    contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'data:'] } },
    crossOriginEmbedderPolicy: false,
  });

  app.setErrorHandler((err, req, reply) => {
    const p = toProblem(err, req);
    if (p.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: p.code, status: p.status }, 'request refused');
    return sendProblem(reply, p);
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(reply, { ...problem(404, 'ROUTE.NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}; the API is described at /api/docs`), instance: req.url.split('?')[0], requestId: req.id }),
  );

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Backroll API',
        version: options.version,
        description: 'Backup and restore of KVM virtual machines into BorgBackup repositories. Errors are application/problem+json with a stable `code`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: true, uiConfig: { persistAuthorization: false } });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  if (options.publicPlugins) await options.publicPlugins(app);

  app.get(
    '/api/health',
    { schema: { security: [], tags: ['system'], summary: 'Liveness and readiness (no token needed)' } },
    async (_req, reply) => {
      const result = options.health ? await options.health() : { ok: true, checks: {} };
      return reply.code(result.ok ? 200 : 503).send({ status: result.ok ? 'ok' : 'degraded', version: options.version, checks: result.checks });
    },
  );

  registerAuth(app, options.verifier, new RegExp(`${PUBLIC_PATH.source}|${WEB_PATH.source}`), options.sessionAuth);
  if (options.metrics) registerMetrics(app, options.metrics);
  await app.register(async (scope) => options.routes(scope));
  return app;
}
