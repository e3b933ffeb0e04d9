import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Clock } from '../clock.js';
import type { JobsConfig, SchedulerConfig } from '../config/config.js';
import type { Db } from '../db/database.js';
import { BullScheduler } from '../scheduler/bullmq.scheduler.js';
import { EmbeddedScheduler, type PolicyScheduler } from '../scheduler/embedded.scheduler.js';
import { SCHEDULED_KINDS, ScheduleFiring, type SchedulePolicies } from '../scheduler/schedule-firing.js';
import { ScheduleRunRepository } from '../scheduler/schedule-run.repository.js';
import { HandlerRegistry } from '../tasks/handler-registry.js';
import { BullTaskQueue } from '../tasks/queues/bullmq.queue.js';
import { EmbeddedQueue } from '../tasks/queues/embedded.queue.js';
import { LocalEventBus, RedisEventBus, type TaskEventBus } from '../tasks/task-events.js';
import { TaskExecutor } from '../tasks/task-executor.js';
import { TaskLifecycle, type JobLogger } from '../tasks/task-lifecycle.js';
import { TaskSlots } from '../tasks/task-slots.js';
import { TaskRepository } from '../tasks/task.repository.js';
import { TaskService } from '../tasks/task.service.js';

export type JobMode = 'embedded' | 'distributed';

export interface JobSystemOptions {
  db: Db;
  clock: Clock;
  logger: JobLogger;
  jobs: JobsConfig;
  scheduler: SchedulerConfig;
  /** Set: BullMQ on this Redis (distributed); unset: the in-process runner (embedded). */
  redisUrl?: string;
  policies: SchedulePolicies;
}

/** How long a shutdown waits for aborted handlers to finish their clean-up. */
const SHUTDOWN_GRACE_MS = 15_000;
const DRAIN_MS = 10_000;

/**
 * The job system: one contract (TaskService + TaskContext), two implementations
 * chosen by configuration. Embedded: the database is the queue, timers schedule.
 * Distributed: BullMQ delivers jobs and fires job schedulers, Redis pub/sub carries
 * signals. In both, task rows, leases and concurrency slots live in the database.
 */
export function createJobSystem(opts: JobSystemOptions) {
  const mode: JobMode = opts.redisUrl ? 'distributed' : 'embedded';
  const { db, clock, logger, jobs } = opts;
  const registry = new HandlerRegistry();
  const repo = new TaskRepository(db);
  const slots = new TaskSlots(db, { global: jobs.maxConcurrent, perHost: jobs.maxPerHost, perStorage: jobs.maxPerStorage });
  const redisError = (err: Error) => logger.warn({ err }, 'Redis error');
  const events: TaskEventBus = opts.redisUrl ? new RedisEventBus(opts.redisUrl, jobs.redisPrefix, redisError) : new LocalEventBus();
  const lifecycle = new TaskLifecycle({ repo, slots, registry, events, clock, logger });
  const leaseMs = jobs.leaseSeconds * 1000;
  const bullQueue = opts.redisUrl
    ? new BullTaskQueue({ url: opts.redisUrl, prefix: jobs.redisPrefix, concurrency: jobs.workerConcurrency, lockMs: leaseMs }, repo, logger)
    : undefined;
  const embeddedQueue = bullQueue ? undefined : new EmbeddedQueue(repo, logger);
  const queue = bullQueue ?? embeddedQueue!;
  const tasks = new TaskService({ repo, registry, lifecycle, events, queue, clock, logger });
  const runs = new ScheduleRunRepository(db);
  const firing = new ScheduleFiring({ runs, taskRepo: repo, tasks, policies: opts.policies, clock, config: opts.scheduler, logger });
  const bullScheduler = opts.redisUrl ? new BullScheduler({ url: opts.redisUrl, prefix: jobs.redisPrefix }, { firing, policies: opts.policies, clock, logger }) : undefined;
  const embeddedScheduler = bullScheduler ? undefined : new EmbeddedScheduler({ firing, runs, policies: opts.policies, clock, logger });

  let executor: TaskExecutor | undefined;
  let reapTimer: NodeJS.Timeout | undefined;
  let schedulerStarted = false;
  let closed = false;

  const system = {
    mode,
    registry,
    tasks,
    lifecycle,
    firing,
    /** The BullMQ queues (distributed mode), for Bull Board. */
    bullQueues: () => (bullQueue && bullScheduler ? [bullQueue.queue, bullScheduler.queue] : []),
    /** This process's worker id, once the worker role runs. */
    workerId: () => executor?.owner,

    /** For /api/health: whether the queue answers (distributed mode). */
    async health(): Promise<Record<string, string>> {
      if (!bullQueue) return { queue: 'embedded' };
      try {
        await Promise.race([bullQueue.queue.count(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref())]);
        return { queue: 'ok' };
      } catch {
        return { queue: 'unreachable' };
      }
    },

    /** Takes a policy change into account now (any process in distributed mode; the scheduler's own in embedded mode). */
    async policyChanged(policyId: string): Promise<void> {
      const scheduler: PolicyScheduler | undefined = bullScheduler ?? (schedulerStarted ? embeddedScheduler : undefined);
      await scheduler?.policyChanged(policyId);
    },

    async start(roles: { worker: boolean; scheduler: boolean }): Promise<void> {
      if (roles.worker || roles.scheduler) {
        registry.assertRegistered(SCHEDULED_KINDS, `this process runs the ${roles.scheduler ? 'scheduler' : 'worker'} role, which runs scheduled backups`);
      }
      if (roles.worker) {
        const owner = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
        executor = new TaskExecutor({ repo, slots, registry, events, clock, logger, lifecycle, leaseMs, owner, spawn: (parent, children) => tasks.submitChildren(parent, children) });
        executor.listen();
        if (bullQueue) {
          await executor.reap();
          await bullQueue.startWorker(executor);
        } else {
          await embeddedQueue!.startWorker(executor);
        }
        const current = executor;
        reapTimer = setInterval(() => void current.reap().catch((err: unknown) => logger.warn({ err }, 'lease reaper failed')), Math.max(500, Math.floor(leaseMs / 2)));
        logger.info({ mode, worker: owner, kinds: registry.kinds() }, 'worker started');
      }
      if (roles.scheduler) {
        if (bullScheduler) await bullScheduler.start();
        else await embeddedScheduler!.start();
        schedulerStarted = true;
        logger.info({ mode, catchUp: opts.scheduler.catchUp }, 'scheduler started');
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(reapTimer);
      await (bullScheduler ?? embeddedScheduler)?.close();
      await executor?.shutdown(SHUTDOWN_GRACE_MS);
      if (bullQueue) await bullQueue.close();
      else await embeddedQueue!.close();
      await Promise.race([lifecycle.drain(), new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
      await events.close();
    },
  };
  return system;
}

export type JobSystem = ReturnType<typeof createJobSystem>;
