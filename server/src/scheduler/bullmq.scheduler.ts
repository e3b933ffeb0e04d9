import { Queue, Worker, type Job } from 'bullmq';
import type { Clock } from '../clock.js';
import type { PolicyRecord } from '../policies/policy.repository.js';
import { producerConnection, workerConnection } from '../tasks/queues/redis.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import type { PolicyScheduler } from './embedded.scheduler.js';
import type { SchedulePolicies, ScheduleFiring } from './schedule-firing.js';

export const SCHEDULE_QUEUE = 'schedules';
const RECONCILE_MS = 60_000;

interface FireJobData {
  policyId: string;
}

const schedulerId = (policyId: string) => `policy-${policyId}`;

/**
 * Distributed mode: one BullMQ job scheduler per enabled policy. BullMQ creates
 * exactly one job per occurrence cluster-wide, whichever process consumes it;
 * ScheduleFiring's unique (policy, occurrence) record guards against a
 * redelivered job. Any process may change the schedulers (the API does on each
 * policy change); scheduler-role processes consume the jobs and reconcile.
 */
export class BullScheduler implements PolicyScheduler {
  readonly queue: Queue<FireJobData>;
  private worker?: Worker<FireJobData>;
  private reconcileTimer?: NodeJS.Timeout;

  constructor(
    private readonly opts: { url: string; prefix: string },
    private readonly deps: { firing: ScheduleFiring; policies: SchedulePolicies; clock: Clock; logger: JobLogger },
  ) {
    this.queue = new Queue<FireJobData>(SCHEDULE_QUEUE, {
      connection: producerConnection(opts.url),
      prefix: opts.prefix,
    });
    this.queue.on('error', (err) => deps.logger.warn({ err }, 'schedule queue: Redis error'));
  }

  async start(): Promise<void> {
    const worker = new Worker<FireJobData>(SCHEDULE_QUEUE, (job) => this.process(job), {
      connection: workerConnection(this.opts.url),
      prefix: this.opts.prefix,
      concurrency: 4,
      autorun: false,
    });
    worker.on('error', (err) => this.deps.logger.warn({ err }, 'schedule worker: Redis error'));
    worker.on('failed', (job, err) => this.deps.logger.error({ err, policyId: job?.data.policyId }, 'schedule occurrence failed'));
    this.worker = worker;
    void worker.run().catch((err: unknown) => this.deps.logger.error({ err }, 'schedule worker stopped'));
    await worker.waitUntilReady();
    await this.reconcileAll();
    this.reconcileTimer = setInterval(() => void this.reconcileAll().catch((err: unknown) => this.deps.logger.error({ err }, 'scheduler reconcile failed')), RECONCILE_MS);
  }

  private async process(job: Job<FireJobData>): Promise<void> {
    // The occurrence time BullMQ computed (prevMillis), not the time the job got here.
    const at = new Date(job.opts.prevMillis ?? job.timestamp + (job.delay ?? 0));
    const policy = await this.deps.policies.find(job.data.policyId);
    if (!policy || !policy.enabled) return;
    await this.deps.firing.occurrence(policy, at, this.deps.clock.now());
  }

  async policyChanged(policyId: string): Promise<void> {
    const p = await this.deps.policies.find(policyId);
    if (!p || !p.enabled) await this.queue.removeJobScheduler(schedulerId(policyId));
    else await this.upsert(p);
  }

  private async upsert(p: PolicyRecord): Promise<void> {
    const current = await this.queue.getJobScheduler(schedulerId(p.id));
    if (current && current.pattern === p.schedule && current.tz === p.timezone) return;
    await this.queue.upsertJobScheduler(
      schedulerId(p.id),
      { pattern: p.schedule, tz: p.timezone },
      {
        name: 'policy.occurrence',
        data: { policyId: p.id },
        // A failed firing (database briefly down) is retried within the grace period; the unique
        // occurrence record makes a retry after a partial success harmless.
        opts: { attempts: 3, backoff: { type: 'exponential', delay: 5000 }, removeOnComplete: { count: 200 }, removeOnFail: { count: 200 } },
      },
    );
  }

  async reconcileAll(): Promise<void> {
    const enabled = await this.deps.policies.listEnabled();
    const wanted = new Set(enabled.map((p) => schedulerId(p.id)));
    for (const p of enabled) await this.upsert(p);
    for (const s of await this.queue.getJobSchedulers(0, -1)) {
      const id = s.id ?? s.key;
      if (id && !wanted.has(id)) await this.queue.removeJobScheduler(id);
    }
  }

  async nextRun(policyId: string): Promise<number | undefined> {
    return (await this.queue.getJobScheduler(schedulerId(policyId)))?.next;
  }

  async close(): Promise<void> {
    clearInterval(this.reconcileTimer);
    await this.worker?.close();
    await this.queue.close();
  }
}
