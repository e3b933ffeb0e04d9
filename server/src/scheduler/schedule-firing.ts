import { randomUUID } from 'node:crypto';
import type { SchedulerConfig } from '../config/config.js';
import { isoNow, type Clock } from '../clock.js';
import { isUniqueViolation } from '../db/errors.js';
import type { PageRequest, PageResult } from '../db/page.js';
import type { PolicyRecord } from '../policies/policy.repository.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import type { TaskRepository } from '../tasks/task.repository.js';
import type { TaskService } from '../tasks/task.service.js';
import type { ScheduleRunRecord, ScheduleRunRepository } from './schedule-run.repository.js';
import { occurrencesBetween, planOccurrences, runOutcome, type RunOutcome, type RunTrigger } from './schedule.rules.js';

/** The kinds the scheduler starts: workers and schedulers refuse to start without their handlers. */
export const POOL_BACKUP_KIND = 'pool.backup';
export const SCHEDULED_KINDS = [POOL_BACKUP_KIND] as const;

/** Payload of a scheduled `pool.backup`. */
export interface PoolBackupPayload {
  poolId: string;
  policyId: string;
  /** The occurrence (ISO, UTC) this run belongs to. */
  scheduledFor: string;
  trigger: RunTrigger;
}

export interface SchedulePolicies {
  find(id: string): Promise<PolicyRecord | undefined>;
  listEnabled(): Promise<PolicyRecord[]>;
  poolsOf(policyId: string): Promise<Array<{ id: string; name: string }>>;
}

export interface PolicyRunView {
  id: string;
  scheduledFor: string;
  recordedAt: string;
  trigger: 'schedule' | 'catch_up' | 'missed';
  outcome: RunOutcome;
  tasks: Array<{ id: string; state: string }>;
}

/**
 * What an occurrence of a policy's schedule does, whoever delivers it (the
 * embedded timers or a BullMQ job scheduler): record it once, start one
 * `pool.backup` per pool of the policy, or record it missed when it comes too late.
 */
export class ScheduleFiring {
  constructor(
    private readonly deps: {
      runs: ScheduleRunRepository;
      taskRepo: TaskRepository;
      tasks: TaskService;
      policies: SchedulePolicies;
      clock: Clock;
      config: SchedulerConfig;
      logger: JobLogger;
    },
  ) {}

  /** Handles the occurrence `at` of a policy, delivered at `now` (possibly late). */
  async occurrence(policy: PolicyRecord, at: Date, now: Date = this.deps.clock.now()): Promise<void> {
    const { config, logger, runs } = this.deps;
    const later = occurrencesBetween(policy.schedule, policy.timezone, at, now);
    const due = [at, ...later.dates];
    const plan = planOccurrences(due, now, config.misfireGraceSeconds * 1000, config.catchUp, 1 + later.total);
    if (plan.missed.length > 0) {
      const recorded = await runs.insertMissed(policy.id, plan.missed, now.toISOString(), 'the scheduler or every worker was down at that time');
      logger.warn(
        { policyId: policy.id, missed: recorded, notRecorded: plan.missedUnrecorded, catchUp: config.catchUp },
        'schedule occurrences were missed while Backroll was down',
      );
    }
    if (plan.fire) await this.fire(policy, plan.fire.at, plan.fire.trigger);
  }

  /** Starts the pool backups of one occurrence, exactly once (unique policy+time). */
  async fire(policy: PolicyRecord, at: Date, trigger: RunTrigger): Promise<'fired' | 'duplicate'> {
    const { runs, tasks, policies, logger } = this.deps;
    const pools = await policies.poolsOf(policy.id);
    const runId = randomUUID();
    const scheduledFor = at.toISOString();
    const run: ScheduleRunRecord = {
      id: runId,
      policyId: policy.id,
      scheduledFor,
      recordedAt: isoNow(this.deps.clock),
      outcome: trigger === 'catch_up' ? 'caught_up' : 'fired',
      poolCount: pools.length,
      detail: pools.length === 0 ? 'no pool uses this policy' : null,
    };
    try {
      await tasks.submitMany(
        pools.map((pool) => ({
          kind: POOL_BACKUP_KIND,
          payload: { poolId: pool.id, policyId: policy.id, scheduledFor, trigger } satisfies PoolBackupPayload,
          opts: { target: { type: 'pool', id: pool.id }, startedBy: `schedule:${policy.id}` },
        })),
        { scheduleRunId: runId, inTransaction: (trx) => runs.insertIn(trx, run) },
      );
    } catch (err) {
      if (isUniqueViolation(err)) {
        logger.debug({ policyId: policy.id, scheduledFor }, 'schedule occurrence already fired elsewhere');
        return 'duplicate';
      }
      throw err;
    }
    logger.info({ policyId: policy.id, scheduledFor, trigger, pools: pools.length }, 'schedule fired');
    return 'fired';
  }

  async lastRuns(policyIds: string[]): Promise<Map<string, PolicyRunView>> {
    const latest = await this.deps.runs.latest(policyIds);
    const views = await this.views([...latest.values()]);
    return new Map(views.map((v, i) => [[...latest.keys()][i]!, v]));
  }

  async history(policyId: string, page: PageRequest): Promise<PageResult<PolicyRunView>> {
    const res = await this.deps.runs.list(policyId, page);
    return { ...res, items: await this.views(res.items) };
  }

  private async views(runs: ScheduleRunRecord[]): Promise<PolicyRunView[]> {
    const tasks = await this.deps.taskRepo.tasksOfScheduleRuns(runs.map((r) => r.id));
    return runs.map((r) => {
      const own = tasks.filter((t) => t.runId === r.id);
      return {
        id: r.id,
        scheduledFor: r.scheduledFor,
        recordedAt: r.recordedAt,
        trigger: r.outcome === 'missed' ? 'missed' : r.outcome === 'caught_up' ? 'catch_up' : 'schedule',
        outcome: runOutcome(r.outcome, own.map((t) => t.state)),
        tasks: own.map((t) => ({ id: t.id, state: t.state })),
      };
    });
  }
}
