import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import type { PageRequest, PageResult } from '../db/page.js';
import type { Database, ScheduleCursorTable, ScheduleRunTable } from '../db/schema.js';
import type { RunRecordOutcome } from './schedule.rules.js';

export interface ScheduleRunRecord {
  id: string;
  policyId: string;
  scheduledFor: string;
  recordedAt: string;
  outcome: RunRecordOutcome;
  poolCount: number;
  detail: string | null;
}

const toRecord = (r: ScheduleRunTable): ScheduleRunRecord => ({
  id: r.id,
  policyId: r.policy_id,
  scheduledFor: r.scheduled_for,
  recordedAt: r.recorded_at,
  outcome: r.outcome as RunRecordOutcome,
  poolCount: Number(r.pool_count),
  detail: r.detail,
});

/** Schedule occurrences (fired, caught up, missed) and the embedded scheduler's cursors. */
export class ScheduleRunRepository {
  constructor(private readonly db: Db) {}

  /** In the caller's transaction; a duplicate occurrence raises a unique violation. */
  async insertIn(trx: Transaction<Database>, run: ScheduleRunRecord): Promise<void> {
    await trx
      .insertInto('schedule_runs')
      .values({
        id: run.id,
        policy_id: run.policyId,
        scheduled_for: run.scheduledFor,
        recorded_at: run.recordedAt,
        outcome: run.outcome,
        pool_count: run.poolCount,
        detail: run.detail,
      })
      .execute();
  }

  /** Records missed occurrences; one already recorded (fired elsewhere) is left as it is. */
  async insertMissed(policyId: string, dates: Date[], now: string, detail: string): Promise<number> {
    let inserted = 0;
    for (const at of dates) {
      try {
        await this.db
          .insertInto('schedule_runs')
          .values({ id: randomUUID(), policy_id: policyId, scheduled_for: at.toISOString(), recorded_at: now, outcome: 'missed', pool_count: 0, detail })
          .execute();
        inserted++;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    }
    return inserted;
  }

  /** The latest occurrence of each policy. */
  async latest(policyIds: string[]): Promise<Map<string, ScheduleRunRecord>> {
    if (policyIds.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('schedule_runs as r')
      .innerJoin(
        (eb) =>
          eb
            .selectFrom('schedule_runs')
            .select(['policy_id', (e) => e.fn.max<string>('scheduled_for').as('last')])
            .where('policy_id', 'in', policyIds)
            .groupBy('policy_id')
            .as('x'),
        (join) => join.onRef('x.policy_id', '=', 'r.policy_id').onRef('x.last', '=', 'r.scheduled_for'),
      )
      .selectAll('r')
      .execute();
    return new Map(rows.map((r) => [r.policy_id, toRecord(r)]));
  }

  async list(policyId: string, page: PageRequest): Promise<PageResult<ScheduleRunRecord>> {
    const q = this.db.selectFrom('schedule_runs').where('policy_id', '=', policyId);
    const count = await q.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
    const rows = await q.selectAll().orderBy('scheduled_for', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(toRecord), total: Number(count?.n ?? 0), limit: page.limit, offset: page.offset };
  }

  // --- embedded scheduler cursors ---------------------------------------

  async cursors(): Promise<ScheduleCursorTable[]> {
    return this.db.selectFrom('schedule_cursors').selectAll().execute();
  }

  async cursor(policyId: string): Promise<ScheduleCursorTable | undefined> {
    return this.db.selectFrom('schedule_cursors').selectAll().where('policy_id', '=', policyId).executeTakeFirst();
  }

  async saveCursor(c: ScheduleCursorTable): Promise<void> {
    const res = await this.db
      .updateTable('schedule_cursors')
      .set({ schedule: c.schedule, timezone: c.timezone, next_run_at: c.next_run_at, updated_at: c.updated_at })
      .where('policy_id', '=', c.policy_id)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0) return;
    try {
      await this.db.insertInto('schedule_cursors').values(c).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      await this.db.updateTable('schedule_cursors').set(c).where('policy_id', '=', c.policy_id).execute();
    }
  }

  async deleteCursor(policyId: string): Promise<void> {
    await this.db.deleteFrom('schedule_cursors').where('policy_id', '=', policyId).execute();
  }
}
