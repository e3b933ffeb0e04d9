import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import { invalid } from '../errors.js';
import { IdParams, Page, Uuid, errorResponses, listQuery } from '../http/schemas.js';
import { sendProblem, problem } from '../http/problem.js';
import { checkKind } from './handler-registry.js';
import { StreamLimits } from './sse-limits.js';
import type { TaskService } from './task.service.js';
import { TASK_STATES, isTaskState, isTerminal, type TaskState } from './task.state.js';
import { TASK_TOTAL_CAP } from './task.repository.js';

/** `<ISO createdAt>,<uuid>`: a position in the newest-first order. */
const CURSOR = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z),([0-9a-fA-F-]{36})$/;
const cursorText = (c: { createdAt: string; id: string } | null) => (c ? `${c.createdAt},${c.id}` : null);

const State = Type.Union(TASK_STATES.map((s) => Type.Literal(s)), {
  description: 'queued → running → succeeded | failed | canceled | interrupted | partial (a parent whose children partly failed)',
});
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);
const Timestamp = Type.String({ format: 'date-time' });

const TaskFields = {
  id: Uuid,
  kind: Type.String({ description: 'e.g. vm.backup, vm.restore, pool.backup' }),
  state: State,
  target: Type.Union([Type.Object({ type: Type.String(), id: Nullable(Type.String()) }), Type.Null()], { description: 'what the task works on' }),
  parentId: Nullable(Uuid),
  retryOf: Nullable(Type.String({ description: 'the task this one retries' })),
  startedBy: Nullable(Type.String({ description: 'user:<name>, client:<id> or schedule:<policy id>; null for the system' })),
  payload: Type.Unknown({ description: 'input of the handler' }),
  resources: Type.Object({ hostId: Nullable(Type.String()), storageId: Nullable(Type.String()) }, { description: 'what the concurrency limits count it against' }),
  progress: Type.Object({
    percent: NullableNumber,
    bytesDone: NullableNumber,
    bytesTotal: NullableNumber,
    rateBytesPerSecond: NullableNumber,
    step: Nullable(Type.String()),
  }),
  result: Type.Unknown({ description: 'what the handler returned (JSON), null until it succeeded' }),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  attempts: Type.Integer(),
  cancelRequested: Type.Boolean(),
  worker: Nullable(Type.String({ description: 'the worker running it' })),
  scheduleRunId: Nullable(Type.String({ description: 'the schedule occurrence that started it' })),
  createdAt: Timestamp,
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  updatedAt: Timestamp,
};
const Task = Type.Object(TaskFields, { $id: 'Task' });
const TaskDetail = Type.Object(
  {
    ...TaskFields,
    children: Type.Object({ total: Type.Integer(), byState: Type.Record(Type.String(), Type.Integer()) }, { description: 'child tasks by state' }),
  },
  { $id: 'TaskDetail' },
);
const LogLine = Type.Object({
  seq: Type.Integer({ description: 'position in the log, from 1' }),
  at: Timestamp,
  level: Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]),
  message: Type.String(),
});

const StateList = Type.String({ pattern: `^(${TASK_STATES.join('|')})(,(${TASK_STATES.join('|')}))*$`, description: 'one state or a comma list' });
const ListQuery = listQuery({
  state: Type.Optional(StateList),
  kind: Type.Optional(Type.String({ maxLength: 1000, pattern: '^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$', description: 'one kind or a comma list' })),
  vmId: Type.Optional(Type.String({ format: 'uuid', description: 'tasks working on this VM (target vm)' })),
  poolId: Type.Optional(Type.String({ format: 'uuid', description: 'tasks working on this pool (its pool.backup tasks)' })),
  before: Type.Optional(Type.String({ pattern: CURSOR.source, description: 'cursor `<createdAt>,<id>` (a nextCursor): only older tasks; use with offset 0' })),
  count: Type.Optional(Type.Union([Type.Literal('capped'), Type.Literal('exact'), Type.Literal('none')], { default: 'capped', description: `capped (default): exact up to ${TASK_TOTAL_CAP}, then totalCapped; exact; none: total -1` })),
  targetType: Type.Optional(Type.String({ maxLength: 32 })),
  targetId: Type.Optional(Type.String({ maxLength: 64 })),
  parentId: Type.Optional(Type.Union([Uuid, Type.Literal('none')], { description: 'children of a task, or `none` for top-level tasks' })),
  startedBy: Type.Optional(Type.String({ maxLength: 255 })),
  createdAfter: Type.Optional(Type.String({ format: 'date-time', description: 'created at or after (inclusive)' })),
  createdBefore: Type.Optional(Type.String({ format: 'date-time', description: 'created before (exclusive)' })),
});
const LogQuery = Type.Object(
  {
    after: Type.Integer({ minimum: 0, default: 0, description: 'only lines with a greater seq (incremental reading)' }),
    limit: Type.Integer({ minimum: 1, maximum: 5000, default: 1000 }),
  },
  { additionalProperties: false },
);
const EventsQuery = Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0, description: 'resume the log after this seq (or send Last-Event-ID)' })) }, { additionalProperties: false });
const SubmitBody = Type.Object(
  {
    kind: Type.String({ minLength: 1, maxLength: 64, description: 'a kind with a registered handler (GET /tasks/kinds) and no route of its own (vm.backup, vm.restore, restore-point.delete and repository.verify have theirs)' }),
    payload: Type.Optional(Type.Unknown()),
    target: Type.Optional(Type.Object({ type: Type.String({ minLength: 1, maxLength: 32 }), id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false })),
    resources: Type.Optional(Type.Object({ hostId: Type.Optional(Uuid), storageId: Type.Optional(Uuid) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

/**
 * Kinds that have their own route, which validates the request (a restore's directory and new
 * name, the VM and its restore point…): the generic `POST /tasks` refuses them rather than queue
 * an unchecked payload. A kind added with its own route belongs here too.
 */
const OWN_ROUTES: Readonly<Record<string, string>> = {
  'vm.backup': 'POST /api/v2/virtual-machines/{id}/backups',
  'pool.backup': 'POST /api/v2/pools/{id}/backup',
  'vm.restore': 'POST /api/v2/virtual-machines/{id}/restores',
  'restore-point.delete': 'DELETE /api/v2/virtual-machines/{id}/restore-points/{restorePointId}',
  'repository.verify': 'POST /api/v2/virtual-machines/{id}/repository/verify',
};

/** `user:<name>` or `client:<id>`: who started or changed a task, from the verified token. */
export function actorOf(principal: Principal | undefined): string | null {
  if (!principal) return null;
  return principal.clientId ? `client:${principal.clientId}` : `user:${principal.label}`;
}

const tags = ['tasks'];
const HEARTBEAT_MS = 15_000;
const POLL_MS = 2_000;

export async function taskRoutes(app: FastifyInstance, service: TaskService, info: { mode: string; streams?: StreamLimits }): Promise<void> {
  // Shared with the console's event stream when given: one cap on all open streams.
  const streams = info.streams ?? new StreamLimits();
  app.addSchema(Task);
  app.addSchema(TaskDetail);
  const TaskRef = Type.Ref('Task');

  const TaskList = Type.Object({
    items: Type.Array(TaskRef),
    total: Type.Integer({ description: `matching tasks (all pages): exact, or at most ${TASK_TOTAL_CAP} with count=capped (then totalCapped), -1 with count=none` }),
    totalCapped: Type.Boolean({ description: `more than ${TASK_TOTAL_CAP} tasks match` }),
    limit: Type.Integer(),
    offset: Type.Integer(),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `before` for the next page; null on the last page' }),
  });
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/tasks',
    {
      schema: {
        tags,
        summary: 'List tasks, newest first',
        description: 'Filters combine with AND. Deep pages: follow `nextCursor` with `before=` (constant cost) rather than a large offset.',
        querystring: ListQuery,
        response: { 200: TaskList, ...errorResponses() },
      },
    },
    async (req) => {
      const q = req.query;
      const kinds = q.kind?.split(',');
      if (q.vmId && ((q.targetType && q.targetType !== 'vm') || (q.targetId && q.targetId !== q.vmId) || q.poolId)) {
        throw invalid('TASK.FILTER_CONFLICT', 'vmId cannot be combined with another targetType, targetId or poolId');
      }
      if (q.poolId && ((q.targetType && q.targetType !== 'pool') || (q.targetId && q.targetId !== q.poolId))) {
        throw invalid('TASK.FILTER_CONFLICT', 'poolId cannot be combined with another targetType or targetId');
      }
      const cursor = q.before ? CURSOR.exec(q.before) : null;
      if (cursor && q.offset > 0) throw invalid('TASK.FILTER_CONFLICT', 'before (a cursor) and offset cannot be combined: pass offset=0 with before');
      const res = await service.list(
        {
          states: q.state ? (q.state.split(',') as TaskState[]) : undefined,
          kind: kinds && kinds.length === 1 ? kinds[0] : undefined,
          kinds: kinds && kinds.length > 1 ? kinds : undefined,
          targetType: q.vmId ? 'vm' : q.poolId ? 'pool' : q.targetType,
          targetId: q.vmId ?? q.poolId ?? q.targetId,
          parentId: q.parentId === 'none' ? null : q.parentId,
          startedBy: q.startedBy,
          createdAfter: q.createdAfter && new Date(q.createdAfter).toISOString(),
          createdBefore: q.createdBefore && new Date(q.createdBefore).toISOString(),
          before: cursor ? { createdAt: new Date(cursor[1]!).toISOString(), id: cursor[2]!.toLowerCase() } : undefined,
        },
        { limit: q.limit, offset: q.offset },
        q.count ?? 'capped',
      );
      return { ...res, nextCursor: cursorText(res.nextCursor) };
    },
  );

  app.post<{ Params: IdParams }>(
    '/tasks/:id/retry-failed',
    {
      schema: {
        tags,
        summary: 'Retry the failed and interrupted children of a finished parent task (a pool backup)',
        description: 'One new top-level task per child not retried yet, linked by retryOf. 409 TASK.NOT_FINISHED while the parent runs, TASK.NO_FAILED_CHILDREN when nothing is left to retry.',
        params: IdParams,
        response: { 201: Type.Object({ parentId: Uuid, retried: Type.Array(TaskRef) }), ...errorResponses(404, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await service.retryFailedChildren(req.params.id, actorOf(req.principal))),
  );

  app.get<{ Params: IdParams }>(
    '/tasks/:id/log.txt',
    {
      schema: {
        tags,
        summary: 'The whole log of a task as a text file (download)',
        params: IdParams,
        produces: ['text/plain'],
        response: { 200: Type.String({ description: 'text/plain: one line per entry, `<at> <LEVEL> <message>`' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const lines: string[] = [];
      for (let after = 0; ; ) {
        const { items, lastSeq } = await service.logs(id, after, 5000);
        for (const l of items) lines.push(`${l.at} ${l.level.toUpperCase()} ${l.message.replace(/\r?\n/g, '\n    ')}`);
        if (items.length < 5000) break;
        after = lastSeq;
      }
      return reply
        .header('content-type', 'text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="task-${id}.log"`)
        .send(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    },
  );

  app.get(
    '/tasks/kinds',
    {
      schema: {
        tags,
        summary: 'Task kinds this server can start, and the job system mode',
        response: { 200: Type.Object({ kinds: Type.Array(Type.String()), mode: Type.String({ description: 'embedded or distributed' }) }), ...errorResponses() },
      },
    },
    async () => ({ kinds: service.handlerKinds(), mode: info.mode }),
  );

  app.post<{ Body: Static<typeof SubmitBody> }>(
    '/tasks',
    { schema: { tags, summary: 'Start a task of a registered kind', body: SubmitBody, response: { 201: TaskRef, ...errorResponses() } } },
    async (req, reply) => {
      const { kind, payload, target, resources } = req.body;
      checkKind(kind);
      const own = OWN_ROUTES[kind];
      if (own) {
        throw invalid('TASK.KIND_HAS_OWN_ROUTE', `tasks of kind "${kind}" are started with ${own}, which checks their options; this endpoint does not start them`, { kind, route: own });
      }
      if (!service.hasHandler(kind)) {
        throw invalid('TASK.UNKNOWN_KIND', `no handler is registered for task kind "${kind}"; known kinds: ${service.handlerKinds().join(', ') || 'none'}`, { kind });
      }
      const task = await service.submit(kind, payload ?? null, { target: target ?? null, resources, startedBy: actorOf(req.principal) });
      return reply.code(201).send(task);
    },
  );

  app.get<{ Params: IdParams }>(
    '/tasks/:id',
    { schema: { tags, summary: 'One task with a summary of its children', params: IdParams, response: { 200: Type.Ref('TaskDetail'), ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );

  app.get<{ Params: IdParams; Querystring: Static<typeof LogQuery> }>(
    '/tasks/:id/log',
    {
      schema: {
        tags,
        summary: 'Log lines of a task, incrementally (?after=<last seq seen>)',
        params: IdParams,
        querystring: LogQuery,
        response: { 200: Type.Object({ items: Type.Array(LogLine), lastSeq: Type.Integer({ description: 'pass as `after` next time' }) }), ...errorResponses(404) },
      },
    },
    async (req) => service.logs(req.params.id, req.query.after, req.query.limit),
  );

  app.post<{ Params: IdParams }>(
    '/tasks/:id/cancel',
    {
      schema: {
        tags,
        summary: 'Cancel a task: a queued one at once, a running one through its abort signal; its children too',
        params: IdParams,
        response: { 200: TaskRef, ...errorResponses(404, 409) },
      },
    },
    async (req) => service.cancel(req.params.id, actorOf(req.principal)),
  );

  app.post<{ Params: IdParams }>(
    '/tasks/:id/retry',
    {
      schema: {
        tags,
        summary: 'Start a new task with the same kind and payload (linked by retryOf)',
        params: IdParams,
        response: { 201: TaskRef, ...errorResponses(404, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await service.retry(req.params.id, actorOf(req.principal))),
  );

  app.get<{ Params: IdParams; Querystring: Static<typeof EventsQuery> }>(
    '/tasks/:id/events',
    {
      schema: {
        tags,
        summary: 'Live task events (Server-Sent Events)',
        description:
          'text/event-stream: `task` events (the task, on every change), `log` events (one line each, `id` = its seq, so a reconnect with Last-Event-ID resumes), ' +
          'then `end` with the final task, and the stream closes. Needs the bearer token like every route (use a fetch-based EventSource in browsers). ' +
          'When the token expires the stream sends `expired` and closes: reconnect with a new token and Last-Event-ID. ' +
          'At most 10 open streams per caller (429 TASK.TOO_MANY_STREAMS) and 100 in total (503 TASK.STREAMS_EXHAUSTED).',
        params: IdParams,
        querystring: EventsQuery,
        produces: ['text/event-stream'],
        response: { 200: Type.String({ description: 'text/event-stream' }), ...errorResponses(404, 429, 503) },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      await service.get(id); // 404 as a problem, before the stream starts
      const lastEventId = Number(req.headers['last-event-id']);
      const caller = req.principal ? (req.principal.clientId ? `client:${req.principal.clientId}` : `sub:${req.principal.subject}`) : `ip:${req.ip}`;
      const slot = streams.acquire(caller);
      if (!('release' in slot)) {
        if (slot.status === 429) reply.header('retry-after', '5');
        return sendProblem(reply, { ...problem(slot.status, slot.code, slot.detail), instance: req.url.split('?')[0], requestId: req.id });
      }
      reply.hijack();
      const expiresAt = req.principal?.expiresAt;
      streamTask(req, reply.raw, service, id, req.query.after ?? (Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId : 0), { release: slot.release, expiresAt });
      return reply;
    },
  );
}

function streamTask(
  req: FastifyRequest,
  raw: import('node:http').ServerResponse,
  service: TaskService,
  id: string,
  after: number,
  opts: { release: () => void; expiresAt?: number },
): void {
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': req.id,
  });
  raw.write('retry: 2000\n\n');
  let lastSeq = after;
  let lastTask = '';
  let closed = false;
  let running = false;
  let again = false;

  const send = (event: string, data: unknown, eventId?: number) => {
    if (!closed) raw.write(`${eventId !== undefined ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const close = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(poll);
    clearInterval(heartbeat);
    clearTimeout(expiry);
    opts.release();
    raw.end();
  };
  const flushLogs = async () => {
    for (;;) {
      const { items } = await service.logs(id, lastSeq, 500);
      for (const line of items) send('log', line, line.seq);
      if (items.length > 0) lastSeq = items[items.length - 1]!.seq;
      if (items.length < 500) return;
    }
  };
  const flush = async (): Promise<void> => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const task = await service.get(id);
        const json = JSON.stringify(task);
        if (json !== lastTask) {
          lastTask = json;
          send('task', task);
        }
        await flushLogs();
        if (isTaskState(task.state) && isTerminal(task.state)) {
          send('end', task);
          close();
          return;
        }
      } while (again && !closed);
    } catch (err) {
      req.log.warn({ err, taskId: id }, 'task event stream failed');
      close();
    } finally {
      running = false;
    }
  };

  const unsubscribe = service.watch(id, () => void flush());
  // Signals may be lost (another process, Redis down): poll as well.
  const poll = setInterval(() => void flush(), POLL_MS);
  const heartbeat = setInterval(() => !closed && raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
  // The stream lives no longer than the token that opened it (a revoked or expired token reads nothing more).
  const expiry =
    opts.expiresAt === undefined
      ? undefined
      : setTimeout(
          () => {
            send('expired', { code: 'AUTH.TOKEN_EXPIRED', detail: 'the access token of this stream has expired; reconnect with a new token (Last-Event-ID resumes the log)' });
            close();
          },
          Math.min(2 ** 31 - 1, Math.max(0, opts.expiresAt - Date.now())),
        );
  req.raw.on('close', close);
  void flush();
}
