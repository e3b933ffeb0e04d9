/**
 * BackROLL's `/api/v1`, as Apache CloudStack's `backroll` backup provider drives it
 * (all three generations of its client; docs/cloudstack.md). Its own Fastify scope:
 * - bodies: the client sends `Content-type: application/json` with no body on GET,
 *   DELETE and POST; an empty body is accepted, a login body may be ISO-8859-1;
 * - paths: the client appends paths to its configured URL, so `/api/v1//login` (URL with a
 *   trailing slash) and `/status//status/<id>` are accepted too;
 * - answers: exactly the client's shapes (v1.mapping.ts), asynchronous calls answer
 *   `{"Location": "/api/v1/status/<id>"}` and the poll says PENDING, FAILURE (HTTP 200)
 *   or SUCCESS.
 * Bearer tokens are checked by the server-wide hook; the login routes are public.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import { ClientCredentialsLogin, issuerTokenPost, type TokenPost } from '../auth/client-credentials.js';
import { isAdmin } from '../auth/principal.js';
import { invalid } from '../errors.js';
import { MOUNT as OIDC_MOUNT } from '../idp/mount.js';
import { actorOf } from '../tasks/task.routes.js';
import { CloudStackV1, type Caller, type V1Services } from './cloudstack-v1.js';
import { queryId, type V1Query } from './v1.mapping.js';

export const V1_PREFIX = '/api/v1';


export interface V1Options {
  issuer: string;
  embeddedIdp: boolean;
}

const UUIDISH = { type: 'string', minLength: 1, maxLength: 128 } as const;
const NAME = { type: 'string', minLength: 1, maxLength: 255 } as const;
const tags = ['v1 (CloudStack)'];

const caller = (req: FastifyRequest): Caller => ({ actor: actorOf(req.principal), admin: req.principal ? isAdmin(req.principal) : false });
const location = (id: string) => ({ Location: `${V1_PREFIX}/status/${id}` });

function decodeJson(req: FastifyRequest, body: Buffer): unknown {
  if (body.length === 0) return undefined;
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(String(req.headers['content-type'] ?? ''))?.[1]?.toLowerCase();
  const text = charset && ['iso-8859-1', 'iso8859-1', 'latin1', 'latin-1'].includes(charset) ? body.toString('latin1') : body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw invalid('REQUEST.INVALID', 'the request body is not JSON');
  }
}

export async function v1Routes(app: FastifyInstance, services: V1Services, opts: V1Options): Promise<void> {
  // The bundled provider is reached through the server itself (no network, no public URL).
  const embeddedPost: TokenPost = async (form, headers) => {
    const res = await app.inject({ method: 'POST', url: `${OIDC_MOUNT}/token`, headers, payload: form.toString() });
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body };
  };
  const login = opts.embeddedIdp ? new ClientCredentialsLogin(embeddedPost, 'api') : new ClientCredentialsLogin(issuerTokenPost(opts.issuer));

  await app.register(
    async (v1) => {
      v1.removeContentTypeParser('application/json');
      v1.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
        try {
          done(null, decodeJson(req, body as Buffer));
        } catch (err) {
          done(err as Error, undefined);
        }
      });
      const api = new CloudStackV1(services, app.log);

      /** Registers `path` and `/path` (a configured URL ending with `/`). */
      const route = (method: 'GET' | 'POST' | 'DELETE', paths: string[], schema: Record<string, unknown>, handler: RouteHandlerMethod) => {
        for (const p of paths.flatMap((x) => [x, `/${x}`])) v1.route({ method, url: p, schema: { tags, ...schema, hide: p.startsWith('//') || p.includes('//status') }, handler });
      };
      const asyncAnswer = (reply: FastifyReply, id: string) => reply.code(202).send(location(id));
      const query = (q: (req: FastifyRequest) => V1Query) => async (req: FastifyRequest, reply: FastifyReply) => asyncAnswer(reply, queryId(q(req)));

      // ── login ──
      const loginBody = (req: FastifyRequest) => {
        const b = req.body as { app_id?: unknown; app_secret?: unknown } | undefined;
        if (b === undefined || b === null || typeof b !== 'object') {
          throw invalid('REQUEST.INVALID', 'send {"app_id": "<client id>", "app_secret": "<client secret>"}');
        }
        return b;
      };
      route('POST', ['/login'], { summary: 'BackROLL login (2024-12, 2025-04): app_id/app_secret of a machine client → access token', security: [] }, async (req, reply) => {
        const b = loginBody(req);
        const t = await login.login(b.app_id, b.app_secret);
        reply.header('cache-control', 'no-store');
        return {
          access_token: t.accessToken,
          ...(t.expiresIn !== null ? { expires_in: t.expiresIn } : {}),
          ...(t.tokenType !== null ? { token_type: t.tokenType } : {}),
          ...(t.scope !== null ? { scope: t.scope } : {}),
        };
      });
      route('POST', ['/auth/cloudstack/login'], { summary: 'BackROLL login (2026): app_id/app_secret → {access_token}', security: [] }, async (req, reply) => {
        const b = loginBody(req);
        const t = await login.login(b.app_id, b.app_secret);
        reply.header('cache-control', 'no-store');
        return { access_token: t.accessToken };
      });
      // The 2024-12/2025-04 client calls this first, without anything, and then /login; it
      // needs a body (a 204 makes every call fail), whatever the status.
      route('POST', ['/auth'], { summary: 'Answers with a pointer to POST /api/v1/login (the client then logs in there)', security: [] }, async (_req, reply) =>
        reply
          .code(401)
          .type('application/problem+json')
          .send({ type: 'about:blank', title: 'Unauthorized', status: 401, code: 'AUTH.LOGIN_REQUIRED', detail: 'sign in with POST /api/v1/login {"app_id", "app_secret"}' }),
      );
      route('GET', ['/auth/cloudstack/test'], { summary: 'Checks the bearer token (2026 client)' }, async () => ({ status: 'ok' }));

      // ── asynchronous calls ──
      route('POST', ['/tasks/singlebackup/:uuid'], { summary: 'Back up a VM (by libvirt uuid) with its pool policy', params: { type: 'object', properties: { uuid: UUIDISH } } }, async (req, reply) => {
        const { uuid } = req.params as { uuid: string };
        return asyncAnswer(reply, (await api.startBackup(uuid, caller(req))).id);
      });
      route(
        'POST',
        ['/tasks/restore/:uuid'],
        { summary: 'Restore a VM in place from the backup named backup_name', params: { type: 'object', properties: { uuid: UUIDISH } } },
        async (req, reply) => {
          const { uuid } = req.params as { uuid: string };
          const name = (req.body as { backup_name?: unknown } | undefined)?.backup_name;
          if (typeof name !== 'string' || name === '' || name.length > 255) {
            throw invalid('REQUEST.INVALID', 'send {"virtual_machine_id": "<uuid>", "backup_name": "<name of a backup>", "storage": "", "mode": "single"}');
          }
          return asyncAnswer(reply, (await api.startRestore(uuid, name, caller(req))).id);
        },
      );
      route(
        'DELETE',
        ['/virtualmachines/:uuid/backups/:name'],
        { summary: 'Delete a backup (its whole restore point)', params: { type: 'object', properties: { uuid: UUIDISH, name: NAME } } },
        async (req, reply) => {
          const { uuid, name } = req.params as { uuid: string; name: string };
          return asyncAnswer(reply, (await api.startDelete(uuid, name, caller(req))).id);
        },
      );
      route('GET', ['/backup_policies'], { summary: 'Backup policies (CloudStack backup offerings)' }, query(() => ({ op: 'policies' })));
      route(
        'GET',
        ['/virtualmachines/:uuid/backups'],
        { summary: "A VM's backups: one per restore point", params: { type: 'object', properties: { uuid: UUIDISH } } },
        query((req) => ({ op: 'list', vm: (req.params as { uuid: string }).uuid })),
      );
      route(
        'GET',
        ['/virtualmachines/:uuid/backups/:name'],
        { summary: "A backup's sizes", params: { type: 'object', properties: { uuid: UUIDISH, name: NAME } } },
        query((req) => {
          const p = req.params as { uuid: string; name: string };
          return { op: 'stats', vm: p.uuid, name: p.name };
        }),
      );
      route(
        'GET',
        ['/virtualmachines/:uuid/repository'],
        { summary: "The VM's borg repository (borg info --json)", params: { type: 'object', properties: { uuid: UUIDISH } } },
        query((req) => ({ op: 'repository', vm: (req.params as { uuid: string }).uuid })),
      );

      // ── the poll ──
      // A wildcard: ids of reads are longer than a route parameter may be; it also takes
      // `/status//status/<id>`.
      route('GET', ['/status/*'], { summary: 'State of an asynchronous call: PENDING, FAILURE (HTTP 200) or SUCCESS' }, async (req) => {
        const id = ((req.params as { '*': string })['*'] ?? '').replace(/^\/*(status\/+)?/, '');
        return api.status(id.slice(0, 4096), caller(req));
      });
    },
    { prefix: V1_PREFIX },
  );
}
