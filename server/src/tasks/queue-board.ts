import { randomBytes } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Type } from '@sinclair/typebox';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAdmin, type AccessRole, type Principal } from '../auth/principal.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { AppError, forbidden, httpStatusOf } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, problem } from '../http/problem.js';
import { errorResponses } from '../http/schemas.js';

export const BOARD_PATH = '/admin/queues';
const COOKIE = 'backroll_board';
const SESSION_SECONDS = 15 * 60;
const TICKET_SECONDS = 60;

interface Sealed {
  kind: 'session' | 'ticket';
  sub: string;
  label: string;
  clientId?: string;
  roles: AccessRole[];
  exp: number;
  nonce: string;
}

/**
 * Browser access to Bull Board for admins. The API wants a bearer token, which a
 * browser does not send on navigation, so an admin (with a token) asks for a
 * session: an HttpOnly, SameSite=Strict cookie scoped to /admin/queues, sealed
 * (AES-GCM) with the installation's secret key, valid 15 minutes. For a browser
 * without the token, the same call returns a one-time ticket URL valid 60 seconds.
 * Bearer tokens keep working on the board's paths too.
 */
export class BoardSessions {
  private readonly usedTickets = new Map<string, number>();

  constructor(
    private readonly box: SecretBox,
    private readonly secureCookie: boolean,
  ) {}

  private seal(kind: Sealed['kind'], p: Principal, seconds: number): { value: string; exp: number } {
    const exp = Math.floor(Date.now() / 1000) + seconds;
    const body: Sealed = { kind, sub: p.subject, label: p.label, clientId: p.clientId, roles: p.roles, exp, nonce: randomBytes(12).toString('hex') };
    return { value: this.box.encrypt(JSON.stringify(body)).replace(/^v1:/, ''), exp };
  }

  private open(value: string | undefined, kind: Sealed['kind']): Sealed | undefined {
    if (!value || value.length > 4096 || !/^[A-Za-z0-9+/=_-]+$/.test(value)) return undefined;
    try {
      const s = JSON.parse(this.box.decrypt(`v1:${value}`)) as Sealed;
      if (s.kind !== kind || s.exp < Math.floor(Date.now() / 1000) || !s.roles.includes('admin')) return undefined;
      return s;
    } catch {
      return undefined;
    }
  }

  cookie(p: Principal): { header: string; expiresAt: string } {
    const { value, exp } = this.seal('session', p, SESSION_SECONDS);
    return {
      header: `${COOKIE}=${value}; Path=${BOARD_PATH}; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict${this.secureCookie ? '; Secure' : ''}`,
      expiresAt: new Date(exp * 1000).toISOString(),
    };
  }

  ticket(p: Principal): string {
    return this.seal('ticket', p, TICKET_SECONDS).value;
  }

  /** The principal of a board request without a bearer token: its session cookie, or a ticket on the login path (once). */
  principalOf(req: FastifyRequest): Principal | undefined {
    const path = req.url.split('?')[0] ?? '';
    if (path !== BOARD_PATH && !path.startsWith(`${BOARD_PATH}/`)) return undefined;
    let sealed: Sealed | undefined;
    if (path === `${BOARD_PATH}/login`) {
      const ticket = new URL(req.url, 'http://x').searchParams.get('ticket') ?? undefined;
      sealed = this.open(ticket, 'ticket');
      if (sealed && !this.useTicket(sealed)) sealed = undefined;
    } else {
      sealed = this.open(readCookie(req.headers.cookie, COOKIE), 'session');
    }
    return sealed && { subject: sealed.sub, label: sealed.label, clientId: sealed.clientId, roles: sealed.roles };
  }

  private useTicket(s: Sealed): boolean {
    const now = Math.floor(Date.now() / 1000);
    for (const [nonce, exp] of this.usedTickets) if (exp < now) this.usedTickets.delete(nonce);
    if (this.usedTickets.has(s.nonce)) return false;
    this.usedTickets.set(s.nonce, s.exp);
    return true;
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** The session endpoint under /api/v2 (admin, bearer token). */
export async function boardSessionRoutes(app: FastifyInstance, sessions: BoardSessions): Promise<void> {
  app.post(
    '/admin/queues/session',
    {
      schema: {
        tags: ['system'],
        summary: 'Open Bull Board in a browser (distributed mode, admins)',
        description: `Sets a 15-minute session cookie for ${BOARD_PATH} and returns a one-time ticket URL (valid ${TICKET_SECONDS} s) for a browser that has no token.`,
        response: {
          200: Type.Object({ url: Type.String(), ticketUrl: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }),
          ...errorResponses(),
        },
      },
    },
    async (req, reply) => {
      const principal = req.principal!;
      const { header, expiresAt } = sessions.cookie(principal);
      reply.header('set-cookie', header);
      return { url: `${BOARD_PATH}/`, ticketUrl: `${BOARD_PATH}/login?ticket=${encodeURIComponent(sessions.ticket(principal))}`, expiresAt };
    },
  );
}

/** Bull Board at /admin/queues, admins only (bearer token or board session), read-only. */
export async function mountQueueBoard(app: FastifyInstance, queues: Queue[], sessions: BoardSessions): Promise<void> {
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', async (req) => {
        if (!req.principal || !isAdmin(req.principal)) throw forbidden('AUTH.ADMIN_REQUIRED', 'the queue dashboard is for admins only');
      });
      scope.get('/login', { schema: { hide: true } }, async (req, reply) => {
        // The auth hook accepted the one-time ticket: trade it for the session cookie.
        reply.header('set-cookie', sessions.cookie(req.principal!).header);
        return reply.redirect(`${BOARD_PATH}/`, 303);
      });
      const adapter = new FastifyAdapter();
      adapter.setBasePath(BOARD_PATH);
      // Read-only: the tasks API (cancel, retry) changes work, keeping the database the source of truth.
      createBullBoard({
        queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: true })),
        serverAdapter: adapter,
        options: { uiConfig: { boardTitle: 'Backroll queues' } },
      });
      // The board sets its own error handler on its routes; keep Backroll's problem answers
      // (401/403 from the auth hook) instead of its generic 500.
      // (Its status type lacks 401; the adapter passes any number to reply.status.)
      const onError = (error: Error) => {
        const status = error instanceof AppError ? httpStatusOf[error.kind] : 500;
        const p = error instanceof AppError ? problem(status, error.code, error.message) : problem(500, 'INTERNAL', 'an unexpected error occurred; the request id is in the server log');
        return { status, body: p };
      };
      adapter.setErrorHandler(onError as unknown as Parameters<FastifyAdapter['setErrorHandler']>[0]);
      scope.addHook('onSend', async (_req, reply, payload) => {
        if (reply.statusCode >= 400 && typeof payload === 'string' && payload.startsWith('{"type":"urn:backroll:problem:')) reply.type(PROBLEM_CONTENT_TYPE);
        return payload;
      });
      await scope.register(adapter.registerPlugin());
    },
    { prefix: BOARD_PATH },
  );
}
