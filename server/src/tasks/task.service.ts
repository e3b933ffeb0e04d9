import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { isoNow, type Clock } from '../clock.js';
import type { PageRequest, PageResult } from '../db/page.js';
import type { Database } from '../db/schema.js';
import { AppError, conflict, invalid } from '../errors.js';
import { found } from '../shared/service-helpers.js';
import { checkKind, type HandlerOptions, type HandlerRegistry } from './handler-registry.js';
import type { TaskHandler } from './task-context.js';
import type { TaskEventBus } from './task-events.js';
import { errorFields, type JobLogger, type TaskLifecycle } from './task-lifecycle.js';
import type { NewTask, TaskCount, TaskCursor, TaskFilter, TaskLogLine, TaskRecord, TaskRepository } from './task.repository.js';
import { isCancelable, isRetryable, isTerminal, type TaskState } from './task.state.js';

export interface SubmitOptions {
  /** What the task works on, e.g. `{ type: 'vm', id }`: for filtering and notifications. */
  target?: { type: string; id: string } | null;
  /** What it loads: the concurrency limits per host and per storage apply to these. */
  resources?: { hostId?: string | null; storageId?: string | null };
  /** `user:<name>`, `client:<id>`, `schedule:<policy id>`; null for the system. */
  startedBy?: string | null;
  parentId?: string;
  retryOf?: string;
}

export interface NewChild {
  kind: string;
  payload: unknown;
  targetType?: string;
  targetId?: string;
  resources?: { hostId?: string | null; storageId?: string | null };
}

/** A task as the API and the CLI see it. */
export interface TaskView {
  id: string;
  kind: string;
  state: TaskState;
  target: { type: string; id: string | null } | null;
  parentId: string | null;
  retryOf: string | null;
  startedBy: string | null;
  payload: unknown;
  resources: { hostId: string | null; storageId: string | null };
  progress: { percent: number | null; bytesDone: number | null; bytesTotal: number | null; rateBytesPerSecond: number | null; step: string | null };
  result: unknown;
  error: { code: string; message: string } | null;
  attempts: number;
  cancelRequested: boolean;
  /** The worker holding it while it runs. */
  worker: string | null;
  scheduleRunId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface TaskDetail extends TaskView {
  children: { total: number; byState: Partial<Record<TaskState, number>> };
}

/** How queued tasks reach a worker: the database itself (embedded) or BullMQ. */
export interface TaskQueue {
  /** Hands tasks just written as `queued` to the workers. */
  enqueue(tasks: Array<{ id: string; kind: string }>): Promise<void>;
  /** Best effort: forgets the delivery of a task canceled before it started. */
  remove(taskId: string): Promise<void>;
}

export interface TaskServiceDeps {
  repo: TaskRepository;
  registry: HandlerRegistry;
  lifecycle: TaskLifecycle;
  events: TaskEventBus;
  queue: TaskQueue;
  clock: Clock;
  logger: JobLogger;
}

const PAYLOAD_MAX = 256 * 1024;

export const toTaskView = (t: TaskRecord): TaskView => ({
  id: t.id,
  kind: t.kind,
  state: t.state,
  target: t.targetType ? { type: t.targetType, id: t.targetId } : null,
  parentId: t.parentId,
  retryOf: t.retryOf,
  startedBy: t.startedBy,
  payload: t.payload,
  resources: t.resources,
  progress: {
    percent: t.progress.percent ?? null,
    bytesDone: t.progress.bytesDone ?? null,
    bytesTotal: t.progress.bytesTotal ?? null,
    rateBytesPerSecond: t.progress.rateBytesPerSecond ?? null,
    step: t.progress.step ?? null,
  },
  result: t.result,
  error: t.error,
  attempts: t.attempts,
  cancelRequested: t.cancelRequestedAt !== null,
  worker: t.state === 'running' ? t.leaseOwner : null,
  scheduleRunId: t.scheduleRunId,
  createdAt: t.createdAt,
  startedAt: t.startedAt,
  finishedAt: t.finishedAt,
  updatedAt: t.updatedAt,
});

/**
 * Tasks: submit, follow, cancel, retry. The database row is the truth in both
 * modes; the queue only delivers work. Handlers are registered here at start.
 */
export class TaskService {
  constructor(private readonly deps: TaskServiceDeps) {
    deps.lifecycle.setRetrier((task) => this.retry(task.id, task.startedBy));
  }

  /** Registers the handler of a kind (once per kind, before the job system starts). */
  registerHandler<P = unknown, R = unknown>(kind: string, handler: TaskHandler<P, R>, options?: HandlerOptions): void {
    this.deps.registry.register(kind, handler, options);
  }

  handlerKinds(): string[] {
    return this.deps.registry.kinds();
  }

  hasHandler(kind: string): boolean {
    return this.deps.registry.has(kind);
  }

  /** Creates a queued task and hands it to the workers. A kind without a handler fails with TASK.UNKNOWN_KIND when a worker takes it. */
  async submit(kind: string, payload: unknown, opts: SubmitOptions = {}): Promise<TaskView> {
    const [task] = await this.submitMany([{ kind, payload, opts }]);
    return toTaskView(found(task, 'task', '(new)'));
  }

  /**
   * Creates several tasks in one transaction; `inTransaction` runs first in the
   * same transaction (the scheduler records its occurrence there, so tasks and
   * record exist together or not at all).
   */
  async submitMany(
    specs: Array<{ kind: string; payload: unknown; opts?: SubmitOptions }>,
    extra: { inTransaction?: (trx: Transaction<Database>) => Promise<void>; scheduleRunId?: string } = {},
  ): Promise<TaskRecord[]> {
    const rows: NewTask[] = specs.map(({ kind, payload, opts = {} }) => {
      checkKind(kind);
      const json = payload === undefined ? undefined : JSON.stringify(payload);
      if (json !== undefined && json.length > PAYLOAD_MAX) throw invalid('TASK.PAYLOAD_TOO_LARGE', `a task payload is limited to ${PAYLOAD_MAX} bytes of JSON`);
      return {
        id: randomUUID(),
        kind,
        payload: payload === undefined ? null : payload,
        targetType: opts.target?.type ?? null,
        targetId: opts.target?.id ?? null,
        parentId: opts.parentId ?? null,
        retryOf: opts.retryOf ?? null,
        startedBy: opts.startedBy ?? null,
        resources: { hostId: opts.resources?.hostId ?? null, storageId: opts.resources?.storageId ?? null },
        scheduleRunId: extra.scheduleRunId ?? null,
      };
    });
    await this.deps.repo.insert(rows, isoNow(this.deps.clock), extra.inTransaction);
    try {
      await this.deps.queue.enqueue(rows.map((r) => ({ id: r.id, kind: r.kind })));
    } catch (err) {
      // The rows are queued in the database: workers pick them up when the queue is back.
      this.deps.logger.warn({ err, tasks: rows.map((r) => r.id) }, 'tasks saved but not yet handed to the queue; they will be re-queued');
    }
    for (const r of rows) this.deps.lifecycle.changed(r.id);
    return this.deps.repo.findMany(rows.map((r) => r.id)).then((list) => rows.map((r) => list.find((t) => t.id === r.id)!));
  }

  /** Child tasks of a running parent (TaskContext.spawnChildren). */
  async submitChildren(parent: TaskRecord, children: NewChild[]): Promise<string[]> {
    const created = await this.submitMany(
      children.map((c) => ({
        kind: c.kind,
        payload: c.payload,
        opts: {
          parentId: parent.id,
          startedBy: parent.startedBy,
          target: c.targetType ? { type: c.targetType, id: c.targetId ?? '' } : null,
          resources: c.resources,
        },
      })),
    );
    return created.map((t) => t.id);
  }

  async find(id: string): Promise<TaskRecord | undefined> {
    return this.deps.repo.findById(id);
  }

  /** The task that retried `id` (an automatic retry of an interrupted task, or a user's), if any. */
  async retryOf(id: string): Promise<TaskRecord | undefined> {
    return this.deps.repo.findRetryOf(id);
  }

  async get(id: string): Promise<TaskDetail> {
    const task = found(await this.deps.repo.findById(id), 'task', id);
    const byState = await this.deps.repo.childSummary(id);
    return { ...toTaskView(task), children: { total: Object.values(byState).reduce((a, b) => a + b, 0), byState } };
  }

  async list(filter: TaskFilter, page: PageRequest, count: TaskCount = 'exact'): Promise<PageResult<TaskView> & { totalCapped: boolean; nextCursor: TaskCursor | null }> {
    const res = await this.deps.repo.list(filter, page, count);
    return { ...res, items: res.items.map(toTaskView) };
  }

  /** Log lines after `after` (a seq), oldest first. */
  async logs(id: string, after = 0, limit = 500): Promise<{ items: TaskLogLine[]; lastSeq: number }> {
    found(await this.deps.repo.findById(id), 'task', id);
    const items = await this.deps.repo.logsAfter(id, after, limit);
    return { items, lastSeq: items.length > 0 ? items[items.length - 1]!.seq : after };
  }

  /** A queued task is canceled at once; a running one gets its ctx.signal aborted; children too. */
  async cancel(id: string, by: string | null = null): Promise<TaskView> {
    const task = found(await this.deps.repo.findById(id), 'task', id);
    if (!isCancelable(task.state)) {
      throw conflict('TASK.NOT_CANCELABLE', `task ${id} has already ended (${task.state}); only queued or running tasks can be canceled`, { state: task.state });
    }
    const { repo, lifecycle } = this.deps;
    if (await repo.requestCancel(id, lifecycle.now())) {
      await lifecycle.log(id, 'info', `cancel requested${by ? ` by ${by}` : ''}`);
    }
    if (await lifecycle.finish(id, 'canceled', errorFields('TASK.CANCELED', 'canceled before it started'), { from: 'queued' })) {
      await this.deps.queue.remove(id).catch((err: unknown) => this.deps.logger.debug({ err, taskId: id }, 'queue removal failed'));
    } else {
      this.deps.events.publish({ type: 'cancel', taskId: id });
    }
    for (const child of await repo.activeChildIds(id)) {
      await this.cancel(child, by).catch((err: unknown) => {
        if (!(err instanceof AppError && err.code === 'TASK.NOT_CANCELABLE')) throw err;
      });
    }
    await lifecycle.maybeFinalizeParent(id);
    return toTaskView(found(await repo.findById(id), 'task', id));
  }

  /** A new task with the same kind, payload, target and resources, linked by `retryOf`. */
  async retry(id: string, by: string | null = null): Promise<TaskView> {
    const task = found(await this.deps.repo.findById(id), 'task', id);
    if (!isRetryable(task.state)) {
      throw conflict('TASK.NOT_RETRYABLE', `task ${id} is ${task.state}; only failed, canceled, interrupted or partial tasks can be retried`, { state: task.state });
    }
    return this.submit(task.kind, task.payload, {
      target: task.targetType ? { type: task.targetType, id: task.targetId ?? '' } : null,
      resources: task.resources,
      startedBy: by,
      retryOf: task.id,
    });
  }

  /**
   * Retries the children of a finished parent (a pool backup) that failed or were interrupted
   * and have not been retried yet: one new top-level task each, linked to its child by `retryOf`.
   */
  async retryFailedChildren(id: string, by: string | null = null): Promise<{ parentId: string; retried: TaskView[] }> {
    const parent = found(await this.deps.repo.findById(id), 'task', id);
    if (!isTerminal(parent.state)) {
      throw conflict('TASK.NOT_FINISHED', `task ${id} is ${parent.state}; retry its failed children once it has ended (or cancel it)`, { state: parent.state });
    }
    const failed: TaskRecord[] = [];
    for (let offset = 0; ; offset += 500) {
      const page = await this.deps.repo.list({ parentId: id, states: ['failed', 'interrupted'] }, { limit: 500, offset }, 'none');
      failed.push(...page.items);
      if (page.items.length < 500) break;
    }
    const pending: TaskRecord[] = [];
    for (const child of failed) if (!(await this.deps.repo.findRetryOf(child.id))) pending.push(child);
    if (pending.length === 0) {
      throw conflict('TASK.NO_FAILED_CHILDREN', `task ${id} has no failed or interrupted child left to retry (${failed.length} already retried)`, { alreadyRetried: failed.length });
    }
    const created = await this.submitMany(
      pending.map((child) => ({
        kind: child.kind,
        payload: child.payload,
        opts: {
          target: child.targetType ? { type: child.targetType, id: child.targetId ?? '' } : null,
          resources: child.resources,
          startedBy: by,
          retryOf: child.id,
        },
      })),
    );
    return { parentId: id, retried: created.map(toTaskView) };
  }

  /** Calls `onChange` with the id of any task that may have changed (then read it again). */
  watchAll(onChange: (taskId: string) => void): () => void {
    return this.deps.events.subscribe((signal) => {
      if (signal.type === 'changed') onChange(signal.taskId);
    });
  }

  /** Resolves with the task once it has ended; TASK.WAIT_TIMEOUT after `timeoutMs`. */
  async waitFor(id: string, timeoutMs: number): Promise<TaskView> {
    const first = found(await this.deps.repo.findById(id), 'task', id);
    if (isTerminal(first.state)) return toTaskView(first);
    return new Promise<TaskView>((resolve, reject) => {
      let checking = false;
      let again = false;
      const cleanup = () => {
        unsubscribe();
        clearInterval(poll);
        clearTimeout(timer);
      };
      const check = async (): Promise<void> => {
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        try {
          do {
            again = false;
            const t = await this.deps.repo.findById(id);
            if (!t || isTerminal(t.state)) {
              cleanup();
              if (t) resolve(toTaskView(t));
              else reject(found(undefined, 'task', id));
              return;
            }
          } while (again);
        } catch (err) {
          cleanup();
          reject(err);
        } finally {
          checking = false;
        }
      };
      const unsubscribe = this.watch(id, () => void check());
      const poll = setInterval(() => void check(), 1000);
      const timer = setTimeout(() => {
        cleanup();
        reject(new AppError('unavailable', 'TASK.WAIT_TIMEOUT', `task ${id} has not ended within ${timeoutMs} ms`, { id }));
      }, timeoutMs);
    });
  }

  /** Calls `onChange` when the task may have changed (then read it again). */
  watch(id: string, onChange: () => void): () => void {
    return this.deps.events.subscribe((signal) => {
      if (signal.type === 'changed' && signal.taskId === id) onChange();
    });
  }
}
