/**
 * GET /api/v2/events: the console's one event stream (Server-Sent Events) of task, host and VM
 * changes, resumable with Last-Event-ID. Same rules as the task streams: the bearer token is
 * needed, the stream ends when the token expires (`expired`), and open streams are capped per
 * caller and in total (the limits are shared with the task streams).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses } from '../http/schemas.js';
import { problem, sendProblem } from '../http/problem.js';
import type { StreamLimits } from '../tasks/sse-limits.js';
import type { ChangeEvent, ChangeFeed } from './change-feed.js';

const HEARTBEAT_MS = 15_000;
const EventsQuery = Type.Object(
  { lastEventId: Type.Optional(Type.String({ maxLength: 64, description: 'same as the Last-Event-ID header (for clients that cannot set it)' })) },
  { additionalProperties: false },
);

export async function eventRoutes(app: FastifyInstance, feed: ChangeFeed, streams: StreamLimits, opts: { heartbeatMs?: number } = {}): Promise<void> {
  app.get<{ Querystring: Static<typeof EventsQuery> }>(
    '/events',
    {
      schema: {
        tags: ['console'],
        summary: 'Live changes of tasks, hosts and VMs (Server-Sent Events), resumable',
        description:
          'text/event-stream. First `hello` {resumed, serverTime}; then `task` (the Task on creation and every change: state, progress, step), ' +
          '`host` (the Host: connection state, key changes), `vm` ({id, hostId, name, state, present, updatedAt}: inventory changes). ' +
          'Every event has an `id`: reconnect with Last-Event-ID (or ?lastEventId=) to get what changed meanwhile (events are snapshots; a few may repeat). ' +
          '`resync` {reason}: changes could not all be replayed (too old or too many) — re-fetch the lists. ' +
          '`expired` then the stream closes when the token expires: reconnect with a new token and the last id. Comments `: keep-alive` every 15 s. ' +
          'Deletions are not streamed. At most 10 streams per caller (429 TASK.TOO_MANY_STREAMS) and 100 in all (503 TASK.STREAMS_EXHAUSTED), task streams included.',
        querystring: EventsQuery,
        produces: ['text/event-stream'],
        response: { 200: Type.String({ description: 'text/event-stream' }), ...errorResponses(429, 503) },
      },
    },
    async (req, reply) => {
      const headerId = req.headers['last-event-id'];
      const lastEventId = (typeof headerId === 'string' && headerId.trim()) || req.query.lastEventId;
      const caller = req.principal ? (req.principal.clientId ? `client:${req.principal.clientId}` : `sub:${req.principal.subject}`) : `ip:${req.ip}`;
      const slot = streams.acquire(caller);
      if (!('release' in slot)) {
        if (slot.status === 429) reply.header('retry-after', '5');
        return sendProblem(reply, { ...problem(slot.status, slot.code, slot.detail), instance: req.url.split('?')[0], requestId: req.id });
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      raw.write('retry: 2000\n\n');
      let closed = false;
      const send = (event: string, data: unknown, id?: string) => {
        if (!closed) raw.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      const sendAll = (events: ChangeEvent[]) => {
        for (const e of events) send(e.type, e.data, e.id);
      };
      // Live changes are buffered until the replay is out, so nothing falls between the two.
      let buffer: ChangeEvent[] | null = [];
      let bufferedResync = false;
      const unsubscribe = feed.subscribe((events, resync) => {
        if (buffer) {
          buffer.push(...events);
          bufferedResync ||= resync;
          return;
        }
        if (resync) send('resync', { reason: 'more changes at once than the stream replays; re-fetch the lists' });
        sendAll(events);
      });
      const heartbeat = setInterval(() => !closed && raw.write(': keep-alive\n\n'), opts.heartbeatMs ?? HEARTBEAT_MS);
      const expiresAt = req.principal?.expiresAt;
      const expiry =
        expiresAt === undefined
          ? undefined
          : setTimeout(
              () => {
                send('expired', { code: 'AUTH.TOKEN_EXPIRED', detail: 'the access token of this stream has expired; reconnect with a new token and Last-Event-ID' });
                close();
              },
              Math.min(2 ** 31 - 1, Math.max(0, expiresAt - Date.now())),
            );
      const close = () => {
        if (closed) return;
        closed = true;
        unsubscribe();
        clearInterval(heartbeat);
        clearTimeout(expiry);
        slot.release();
        raw.end();
      };
      req.raw.on('close', close);

      try {
        if (lastEventId) {
          const replay = await feed.replay(lastEventId);
          send('hello', { resumed: replay.complete, serverTime: new Date().toISOString() });
          if (!replay.complete) send('resync', { reason: 'the last event id is too old or too much changed since; re-fetch the lists' });
          else sendAll(replay.events);
        } else {
          send('hello', { resumed: false, serverTime: new Date().toISOString() });
        }
        const pending = buffer ?? [];
        buffer = null;
        if (bufferedResync) send('resync', { reason: 'more changes at once than the stream replays; re-fetch the lists' });
        sendAll(pending);
      } catch (err) {
        req.log.warn({ err }, 'event stream failed');
        close();
      }
      return reply;
    },
  );
}
