import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { JobLogger } from '../task-lifecycle.js';
import type { TaskExecutor } from '../task-executor.js';
import type { TaskRepository } from '../task.repository.js';
import type { TaskQueue } from '../task.service.js';
import { producerConnection, workerConnection } from './redis.js';

export const TASK_QUEUE = 'tasks';

export interface TaskJobData {
  taskId: string;
}

export interface BullTaskQueueOptions {
  url: string;
  prefix: string;
  /** Jobs this worker process takes at once. */
  concurrency: number;
  /** BullMQ lock of an active job; a dead worker's job is found stalled after it. */
  lockMs: number;
}

/** How long a job waits before trying again when a concurrency limit is reached. */
const BUSY_RETRY_MS = 500;
/** Queued rows older than this without a job (Redis was down at submit) are re-queued. */
const REQUEUE_AFTER_MS = 10_000;

/**
 * Distributed delivery over BullMQ: one job per task, job id = task id, so adding
 * a task twice is harmless. The job only carries the id; the task row holds the
 * rest. A job whose task cannot start yet (limit reached) is delayed, not failed.
 */
export class BullTaskQueue implements TaskQueue {
  readonly queue: Queue<TaskJobData>;
  private worker?: Worker<TaskJobData>;
  private requeueTimer?: NodeJS.Timeout;

  constructor(
    private readonly opts: BullTaskQueueOptions,
    private readonly repo: TaskRepository,
    private readonly logger: JobLogger,
  ) {
    this.queue = new Queue<TaskJobData>(TASK_QUEUE, {
      connection: producerConnection(opts.url),
      prefix: opts.prefix,
      defaultJobOptions: {
        attempts: 1,
        removeOnComplete: { age: 24 * 3600, count: 5000 },
        removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
      },
    });
    this.queue.on('error', (err) => logger.warn({ err }, 'task queue: Redis error'));
  }

  async enqueue(tasks: Array<{ id: string; kind: string }>): Promise<void> {
    if (tasks.length === 0) return;
    await this.queue.addBulk(tasks.map((t) => ({ name: t.kind, data: { taskId: t.id }, opts: { jobId: t.id } })));
  }

  async remove(taskId: string): Promise<void> {
    await this.queue.remove(taskId);
  }

  async startWorker(executor: TaskExecutor): Promise<void> {
    const worker = new Worker<TaskJobData>(TASK_QUEUE, (job, token) => this.process(executor, job, token), {
      connection: workerConnection(this.opts.url),
      prefix: this.opts.prefix,
      concurrency: this.opts.concurrency,
      name: executor.owner,
      lockDuration: this.opts.lockMs,
      stalledInterval: this.opts.lockMs,
      // A job whose worker died comes back once; its task is by then interrupted (the lease
      // reaper) and the redelivery just completes. Never run a half-done backup twice blindly.
      maxStalledCount: 1,
      autorun: false,
    });
    worker.on('error', (err) => this.logger.warn({ err }, 'task worker: Redis error'));
    worker.on('stalled', (jobId) => this.logger.warn({ taskId: jobId }, 'task job stalled: its worker stopped renewing the lock'));
    worker.on('failed', (job, err) => this.logger.warn({ taskId: job?.id, err }, 'task job failed in the queue'));
    this.worker = worker;
    void worker.run().catch((err: unknown) => this.logger.error({ err }, 'task worker stopped'));
    await worker.waitUntilReady();
    await this.requeue();
    this.requeueTimer = setInterval(() => void this.requeue().catch((err: unknown) => this.logger.warn({ err }, 're-queueing tasks failed')), REQUEUE_AFTER_MS);
  }

  private async process(executor: TaskExecutor, job: Job<TaskJobData>, token?: string): Promise<{ status: string }> {
    let started: Awaited<ReturnType<TaskExecutor['start']>>;
    try {
      started = await executor.start(job.data.taskId);
    } catch (err) {
      // The database is unreachable or similar: the task is still queued, try again later.
      this.logger.warn({ err, taskId: job.data.taskId }, 'could not start a task; retrying');
      started = { status: 'busy', scope: 'error' };
    }
    if (started.status === 'busy') {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS + Math.floor(Math.random() * BUSY_RETRY_MS), token);
      throw new DelayedError();
    }
    if (started.status === 'started') await started.done;
    return { status: started.status };
  }

  /**
   * Rows still queued long after submission get a job again: none was added (Redis
   * was down) or it was lost. A job that exists and is waiting is left alone.
   */
  private async requeue(): Promise<void> {
    const stale = await this.repo.queued(1000, new Date(Date.now() - REQUEUE_AFTER_MS).toISOString());
    const missing: Array<{ id: string; kind: string }> = [];
    for (const t of stale) {
      const job = await this.queue.getJob(t.id);
      if (job) {
        const state = await job.getState();
        if (state !== 'completed' && state !== 'failed' && state !== 'unknown') continue;
        await job.remove().catch(() => undefined);
      }
      missing.push({ id: t.id, kind: t.kind });
    }
    if (missing.length > 0) {
      this.logger.warn({ tasks: missing.map((t) => t.id) }, 're-queueing queued tasks that had no job');
      await this.enqueue(missing);
    }
  }

  /** Stops taking jobs; running handlers are stopped by the executor first. */
  async closeWorker(): Promise<void> {
    clearInterval(this.requeueTimer);
    await this.worker?.close();
  }

  async close(): Promise<void> {
    await this.closeWorker();
    await this.queue.close();
  }
}
