import { AppError } from '../errors.js';
import type { TaskContext, TaskLogLevel, TaskProgress } from './task-context.js';
import type { NewChild } from './task.service.js';
import { describeError, errorFields, type LifecycleDeps, type TaskLifecycle } from './task-lifecycle.js';
import type { TaskRecord, TaskStateFields } from './task.repository.js';
import { RateMeter } from './progress-rate.js';
import { outcomeOfRun } from './task.state.js';

export type StartResult = { status: 'started'; done: Promise<void> } | { status: 'busy'; scope: string } | { status: 'gone' };

type StopReason = 'cancel' | 'shutdown' | 'lease';

interface RunningTask {
  task: TaskRecord;
  controller: AbortController;
  reason: StopReason | null;
  nextSeq?: number;
  logChain: Promise<unknown>;
  pendingProgress?: TaskProgress;
  lastProgressWrite: number;
  progressTimer?: NodeJS.Timeout;
  progressWrite: Promise<unknown>;
  /** Measures a rate when the handler reports bytes without one. */
  rate: RateMeter;
  done?: Promise<void>;
  /** Until when (ms, this process's clock) the last renewal that worked holds the lease. */
  leaseValidUntil: number;
}

export interface ExecutorDeps extends LifecycleDeps {
  lifecycle: TaskLifecycle;
  /** Lease of a running task (and its slots), renewed every third of it. */
  leaseMs: number;
  /** This worker, as written in `lease_owner`. */
  owner: string;
  /** Submits child tasks of a running parent (TaskService). */
  spawn: (parent: TaskRecord, children: NewChild[]) => Promise<string[]>;
  progressIntervalMs?: number;
}

/**
 * Runs task handlers in this process: takes the concurrency slots and the lease,
 * builds the TaskContext, renews the lease while the handler runs, and records
 * how it ended. Both queue implementations hand tasks to it.
 */
export class TaskExecutor {
  private readonly running = new Map<string, RunningTask>();
  private unsubscribe?: () => void;
  private stopping = false;

  constructor(private readonly deps: ExecutorDeps) {}

  get owner(): string {
    return this.deps.owner;
  }

  get runningCount(): number {
    return this.running.size;
  }

  isRunning(taskId: string): boolean {
    return this.running.has(taskId);
  }

  /** Listens for cancel requests from any process. */
  listen(): void {
    this.unsubscribe ??= this.deps.events.subscribe((signal) => {
      if (signal.type === 'cancel') this.abort(signal.taskId, 'cancel');
    });
  }

  private abort(taskId: string, reason: StopReason): void {
    const rt = this.running.get(taskId);
    if (!rt || rt.reason !== null) return;
    rt.reason = reason;
    const message = reason === 'cancel' ? 'the task was canceled' : reason === 'shutdown' ? 'the worker is shutting down' : 'the task lease was lost';
    rt.controller.abort(new AppError('conflict', reason === 'cancel' ? 'TASK.CANCELED' : 'TASK.INTERRUPTED', message));
  }

  /** Starts a queued task if its kind has a handler and its limits allow. */
  async start(taskId: string): Promise<StartResult> {
    // Shutting down: leave the task queued for another worker (or the next start).
    if (this.stopping) return { status: 'busy', scope: 'shutdown' };
    if (this.running.has(taskId)) return { status: 'gone' };
    const { repo, slots, registry, lifecycle } = this.deps;
    const task = await repo.findById(taskId);
    if (!task || task.state !== 'queued') return { status: 'gone' };
    const registration = registry.get(task.kind);
    if (!registration) {
      await lifecycle.finish(
        taskId,
        'failed',
        errorFields('TASK.UNKNOWN_KIND', `no handler is registered for task kind "${task.kind}" on worker ${this.deps.owner}; known kinds: ${registry.kinds().join(', ') || 'none'}`),
        { from: 'queued' },
      );
      return { status: 'gone' };
    }
    const now = lifecycle.now();
    const leaseUntil = this.leaseUntil();
    const acquired = await slots.acquire(taskId, task.resources, leaseUntil, now);
    if (!acquired.ok) return { status: 'busy', scope: acquired.scope };
    if (!(await repo.claim(taskId, this.deps.owner, leaseUntil, now))) {
      await slots.release(taskId);
      return { status: 'gone' };
    }
    const rt: RunningTask = {
      task: { ...task, state: 'running', startedAt: now, leaseOwner: this.deps.owner },
      controller: new AbortController(),
      reason: null,
      logChain: Promise.resolve(),
      lastProgressWrite: 0,
      progressWrite: Promise.resolve(),
      rate: new RateMeter(),
      leaseValidUntil: Date.now() + this.deps.leaseMs,
    };
    this.running.set(taskId, rt);
    lifecycle.changed(taskId);
    rt.done = this.run(rt, registration.handler).finally(() => this.running.delete(taskId));
    return { status: 'started', done: rt.done };
  }

  private leaseUntil(): string {
    return new Date(this.deps.clock.now().getTime() + this.deps.leaseMs).toISOString();
  }

  private async run(rt: RunningTask, handler: (payload: unknown, ctx: TaskContext) => Promise<unknown>): Promise<void> {
    const { task } = rt;
    const { repo, lifecycle, logger } = this.deps;
    const renewEvery = Math.max(200, Math.floor(this.deps.leaseMs / 3));
    const renew = setInterval(
      () =>
        void this.renew(rt).catch((err: unknown) => {
          logger.warn({ err, taskId: task.id }, 'lease renewal failed');
          // Past the lease, another worker declares the task dead and recovers it: stop first.
          if (Date.now() + renewEvery >= rt.leaseValidUntil) this.abort(task.id, 'lease');
        }),
      renewEvery,
    );
    let result: unknown;
    let error: unknown;
    let threw = false;
    try {
      if (task.cancelRequestedAt) this.abort(task.id, 'cancel');
      await this.log(rt, 'info', `started on ${this.deps.owner} (attempt ${task.attempts + 1})`);
      result = await handler(task.payload, this.context(rt));
    } catch (err) {
      error = err;
      threw = true;
    } finally {
      clearInterval(renew);
    }
    await this.flushProgress(rt);
    await rt.logChain.catch(() => undefined);
    if (rt.reason === 'lease') {
      logger.warn({ taskId: task.id }, 'task ended after its lease was lost; another worker has marked it interrupted');
      return;
    }
    const cancelRequested = rt.reason === 'cancel' || (await repo.cancelRequested(task.id));
    if (!threw && (await repo.hasChildren(task.id))) {
      // A parent ends when its children do (TaskLifecycle.maybeFinalizeParent).
      if (await repo.awaitChildren(task.id, this.deps.owner, jsonOrNull(result), lifecycle.now())) {
        await this.deps.slots.release(task.id);
        await this.log(rt, 'info', 'handler done; waiting for the child tasks to end');
        await lifecycle.maybeFinalizeParent(task.id);
      }
      return;
    }
    const to = outcomeOfRun({ threw, cancelRequested, shuttingDown: rt.reason === 'shutdown' });
    let fields: TaskStateFields;
    if (to === 'succeeded') {
      fields = { result: jsonOrNull(result) };
      if (cancelRequested) await this.log(rt, 'warn', 'a cancel was requested, but the task had already completed');
    } else if (to === 'canceled') {
      fields = errorFields('TASK.CANCELED', 'canceled while running');
    } else if (to === 'interrupted') {
      fields = errorFields('TASK.INTERRUPTED', `worker ${this.deps.owner} shut down while the task ran`);
    } else {
      fields = errorFields(error instanceof AppError ? error.code : 'TASK.FAILED', describeError(error));
      await this.log(rt, 'error', `failed: ${describeError(error)}`);
    }
    const finished = await lifecycle.finish(task.id, to, fields, { leaseOwner: this.deps.owner });
    if (finished && to === 'interrupted') {
      // The handler ran its own clean-up (it saw ctx.signal abort): no recovery, maybe a retry.
      await lifecycle.interruptFollowUp(task.id);
    }
  }

  private async renew(rt: RunningTask): Promise<void> {
    const { repo, slots, lifecycle } = this.deps;
    if (rt.reason === 'lease') return;
    const until = this.leaseUntil();
    const attempted = Date.now();
    if (!(await repo.renewLease(rt.task.id, this.deps.owner, until, lifecycle.now()))) {
      this.abort(rt.task.id, 'lease');
      return;
    }
    rt.leaseValidUntil = attempted + this.deps.leaseMs;
    await slots.renew(rt.task.id, until);
    // Cancel signals can be lost (Redis down): the lease renewal doubles as a poll.
    if (rt.reason === null && (await repo.cancelRequested(rt.task.id))) this.abort(rt.task.id, 'cancel');
  }

  private context(rt: RunningTask): TaskContext {
    const { task } = rt;
    return {
      taskId: task.id,
      signal: rt.controller.signal,
      startedBy: task.startedBy,
      log: (level, message) => this.log(rt, level, message),
      progress: (p) => this.progress(rt, p),
      spawnChildren: async (children) => {
        rt.controller.signal.throwIfAborted();
        return this.deps.spawn(rt.task, children);
      },
    };
  }

  /** Serialised per task so lines keep their order and sequence numbers. */
  private log(rt: RunningTask, level: TaskLogLevel, message: string): Promise<void> {
    const write = rt.logChain.then(async () => {
      const seq = await this.deps.repo.appendLog(rt.task.id, { at: this.deps.lifecycle.now(), level, message }, rt.nextSeq);
      rt.nextSeq = seq + 1;
      this.deps.lifecycle.changed(rt.task.id);
    });
    rt.logChain = write.catch((err: unknown) => this.deps.logger.warn({ err, taskId: rt.task.id }, 'task log write failed'));
    return write;
  }

  /** Persisted at most once per interval (leading and trailing edge). */
  private progress(rt: RunningTask, p: TaskProgress): void {
    const rate = rt.rate.measure(p, Date.now());
    rt.pendingProgress = { ...rt.pendingProgress, ...stripUndefined(p), ...(rate !== undefined ? { rateBytesPerSecond: rate } : {}) };
    const interval = this.deps.progressIntervalMs ?? 1000;
    const wait = rt.lastProgressWrite + interval - Date.now();
    if (wait <= 0 && !rt.progressTimer) {
      void this.flushProgress(rt);
    } else {
      rt.progressTimer ??= setTimeout(() => {
        rt.progressTimer = undefined;
        void this.flushProgress(rt);
      }, Math.max(0, wait));
    }
  }

  private flushProgress(rt: RunningTask): Promise<unknown> {
    if (rt.progressTimer) {
      clearTimeout(rt.progressTimer);
      rt.progressTimer = undefined;
    }
    const pending = rt.pendingProgress;
    rt.pendingProgress = undefined;
    if (!pending) return rt.progressWrite;
    rt.lastProgressWrite = Date.now();
    rt.progressWrite = rt.progressWrite
      .then(async () => {
        await this.deps.repo.setProgress(rt.task.id, pending, this.deps.lifecycle.now());
        this.deps.lifecycle.changed(rt.task.id);
      })
      .catch((err: unknown) => this.deps.logger.warn({ err, taskId: rt.task.id }, 'task progress write failed'));
    return rt.progressWrite;
  }

  /**
   * Finds running tasks whose worker stopped renewing the lease (crash, kill -9,
   * partition) and marks them interrupted; `all` (embedded start) takes every
   * running task, since this process is the only worker and it just started.
   */
  async reap(all = false): Promise<number> {
    const { repo, slots, lifecycle } = this.deps;
    const now = lifecycle.now();
    const ids = await repo.orphanedRunning(all ? undefined : now);
    let count = 0;
    for (const id of ids) {
      if (this.running.has(id)) continue;
      const reason = all ? 'the process running it stopped before it ended (found at start)' : 'its worker stopped renewing the lease (crashed or lost)';
      if (await lifecycle.interrupt(id, reason, all ? { from: 'running' } : { expiredBefore: now })) count++;
    }
    await slots.releaseExpired(now);
    for (const parentId of await repo.awaitingParents()) await lifecycle.maybeFinalizeParent(parentId);
    return count;
  }

  /** Aborts running handlers (they end as `interrupted`) and waits for them, up to `graceMs`. */
  async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    const done = [...this.running.values()].map((rt) => rt.done);
    for (const id of [...this.running.keys()]) this.abort(id, 'shutdown');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(done), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }
}

function jsonOrNull(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function stripUndefined(p: TaskProgress): TaskProgress {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as TaskProgress;
}
