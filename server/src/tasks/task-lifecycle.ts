import type { Logger } from 'pino';
import { isoNow, type Clock } from '../clock.js';
import type { HandlerRegistry, Registration } from './handler-registry.js';
import type { TaskLogLevel } from './task-context.js';
import type { TaskEventBus } from './task-events.js';
import type { TaskRepository, TaskRecord, TaskStateFields, TransitionGuard } from './task.repository.js';
import type { TaskSlots } from './task-slots.js';
import { isTerminal, parentOutcome, type TaskState } from './task.state.js';

export type JobLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/** Told when a task has reached its final state (notifications). Must not throw. */
export interface TaskEndListener {
  taskEnded(task: TaskRecord, registration: Registration | undefined, log: (level: TaskLogLevel, message: string) => Promise<void>): Promise<void>;
}

export interface LifecycleDeps {
  repo: TaskRepository;
  slots: TaskSlots;
  registry: HandlerRegistry;
  events: TaskEventBus;
  clock: Clock;
  logger: JobLogger;
}

const MAX_AUTO_RETRY_CHAIN = 3;

export const errorFields = (code: string, message: string): TaskStateFields => ({ error_code: code.slice(0, 64), error_message: message });

/**
 * Final state changes and what follows them: slots freed, watchers woken, the
 * parent finalised, hooks notified, recovery of interrupted work. Used by the API
 * side (cancel) and by workers alike.
 */
export class TaskLifecycle {
  private readonly background = new Set<Promise<unknown>>();
  private endListener?: TaskEndListener;
  private retrier?: (task: TaskRecord) => Promise<unknown>;

  constructor(private readonly deps: LifecycleDeps) {}

  setEndListener(listener: TaskEndListener): void {
    this.endListener = listener;
  }

  /** How an interrupted task is retried (TaskService.retry); set once by the service. */
  setRetrier(retrier: (task: TaskRecord) => Promise<unknown>): void {
    this.retrier = retrier;
  }

  now(): string {
    return isoNow(this.deps.clock);
  }

  async log(taskId: string, level: TaskLogLevel, message: string): Promise<void> {
    await this.deps.repo.appendLog(taskId, { at: this.now(), level, message });
    this.changed(taskId);
  }

  changed(taskId: string): void {
    this.deps.events.publish({ type: 'changed', taskId });
  }

  /**
   * Moves a task to a final state when its current state allows it (and the guard
   * holds), then runs the aftermath once. False when another change won.
   */
  async finish(
    taskId: string,
    to: TaskState,
    fields: TaskStateFields,
    guard: TransitionGuard = {},
  ): Promise<boolean> {
    const now = this.now();
    const ok = await this.deps.repo.transition(taskId, to, now, { ...fields, finished_at: now, lease_expires_at: null, awaiting_children: 0 }, guard);
    if (!ok) return false;
    await this.aftermath(taskId);
    return true;
  }

  /** Marks a task whose worker is gone `interrupted`, runs the kind's recovery, maybe retries it. */
  async interrupt(taskId: string, reason: string, guard: TransitionGuard = {}): Promise<boolean> {
    const ok = await this.finish(taskId, 'interrupted', errorFields('TASK.INTERRUPTED', reason), guard);
    if (!ok) return false;
    await this.log(taskId, 'warn', `interrupted: ${reason}`);
    await this.interruptFollowUp(taskId, { recover: true });
    return true;
  }

  /**
   * After an interruption: the kind's recovery (when the handler could not clean
   * up itself) and the automatic retry the kind asked for.
   */
  async interruptFollowUp(taskId: string, opts: { recover?: boolean } = {}): Promise<void> {
    const task = await this.deps.repo.findById(taskId);
    if (!task) return;
    const registration = this.deps.registry.get(task.kind);
    if (opts.recover && registration?.options.recover) {
      try {
        await this.log(taskId, 'info', 'recovery: cleaning up after the interrupted run');
        await registration.options.recover(task, (level, message) => this.log(taskId, level, message));
        await this.log(taskId, 'info', 'recovery finished');
      } catch (err) {
        await this.log(taskId, 'error', `recovery failed: ${describeError(err)}`);
      }
    }
    if (registration?.options.retryInterrupted && this.retrier && (await this.retryChainLength(task)) < MAX_AUTO_RETRY_CHAIN) {
      try {
        const retry = (await this.retrier(task)) as { id: string };
        await this.log(taskId, 'info', `retried automatically as task ${retry.id}`);
      } catch (err) {
        await this.log(taskId, 'error', `automatic retry failed: ${describeError(err)}`);
      }
    }
  }

  private async retryChainLength(task: TaskRecord): Promise<number> {
    let length = 0;
    let current: TaskRecord | undefined = task;
    while (current?.retryOf && length < MAX_AUTO_RETRY_CHAIN) {
      length++;
      current = await this.deps.repo.findById(current.retryOf);
    }
    return length;
  }

  /** Ends a parent whose handler is done once all its children have ended. */
  async maybeFinalizeParent(parentId: string): Promise<void> {
    const parent = await this.deps.repo.findById(parentId);
    if (!parent || parent.state !== 'running' || !parent.awaitingChildren) return;
    const children = await this.deps.repo.childStates(parentId);
    const to = parentOutcome(children, parent.cancelRequestedAt !== null);
    if (!to) return;
    const failed = children.filter((s) => s !== 'succeeded').length;
    const fields: TaskStateFields =
      to === 'failed'
        ? errorFields('TASK.CHILDREN_FAILED', `all ${children.length} child tasks ended without success`)
        : to === 'partial'
          ? errorFields('TASK.SOME_CHILDREN_FAILED', `${failed} of ${children.length} child tasks ended without success`)
          : to === 'canceled'
            ? errorFields('TASK.CANCELED', 'canceled while its child tasks ran')
            : {};
    await this.finish(parentId, to, fields);
  }

  private async aftermath(taskId: string): Promise<void> {
    await this.deps.slots.release(taskId);
    this.changed(taskId);
    const task = await this.deps.repo.findById(taskId);
    if (!task || !isTerminal(task.state)) return;
    if (this.endListener) {
      const listener = this.endListener;
      this.track(listener.taskEnded(task, this.deps.registry.get(task.kind), (level, message) => this.log(taskId, level, message)));
    }
    if (task.parentId) await this.maybeFinalizeParent(task.parentId);
  }

  /** Runs work that must not delay the caller but must finish before shutdown. */
  track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.deps.logger.error({ err }, 'task background work failed')).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  async drain(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
