import type { JobLogger } from '../task-lifecycle.js';
import type { TaskExecutor } from '../task-executor.js';
import type { TaskRepository } from '../task.repository.js';
import type { TaskQueue } from '../task.service.js';

const BATCH = 200;

/**
 * The in-process runner: the tasks table is the queue. Queued rows survive a
 * restart; at start the rows left `running` by a dead process are interrupted
 * (TaskExecutor.reap(true)), then queued ones run oldest first within the limits.
 */
export class EmbeddedQueue implements TaskQueue {
  private executor?: TaskExecutor;
  private pumping = false;
  private again = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly repo: TaskRepository,
    private readonly logger: JobLogger,
    private readonly pollMs = 1000,
  ) {}

  async enqueue(): Promise<void> {
    this.wake();
  }

  async remove(): Promise<void> {
    // Nothing to remove: a canceled row is simply no longer queued.
  }

  async startWorker(executor: TaskExecutor): Promise<void> {
    this.executor = executor;
    const interrupted = await executor.reap(true);
    if (interrupted > 0) this.logger.warn({ interrupted }, 'tasks left running by the previous process were marked interrupted');
    // Tasks held back by a limit, or queued by another process on this database, are found by polling.
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.wake();
  }

  wake(): void {
    if (!this.executor || this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump()
      .catch((err: unknown) => this.logger.error({ err }, 'embedded task runner failed to start tasks'))
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async pump(): Promise<void> {
    const executor = this.executor!;
    // A host or storage found full in this pass stays full for the rest of it: skip its tasks.
    const full = new Set<string>();
    for (const task of await this.repo.queued(BATCH)) {
      if (this.stopped) return;
      if (executor.isRunning(task.id)) continue;
      if ((task.resources.hostId && full.has(`host:${task.resources.hostId}`)) || (task.resources.storageId && full.has(`storage:${task.resources.storageId}`))) continue;
      const started = await executor.start(task.id);
      if (started.status === 'started') {
        const done = started.done.finally(() => {
          this.inFlight.delete(done);
          this.wake();
        });
        this.inFlight.add(done);
      } else if (started.status === 'busy') {
        if (started.scope === 'global' || started.scope === 'shutdown') return;
        full.add(started.scope);
      }
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    while (this.pumping) await new Promise((r) => setTimeout(r, 10));
  }
}
