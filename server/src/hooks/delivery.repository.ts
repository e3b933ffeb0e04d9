/** The delivery history of notification hooks (0007): one row per notification sent, its outcome. */
import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { DeliveryResult } from './hook.notifier.js';

export interface DeliveryRecord {
  id: string;
  event: string;
  test: boolean;
  taskId: string | null;
  delivered: boolean;
  status: number | null;
  error: string | null;
  attempts: number;
  durationMs: number;
  at: string;
}

/** Deliveries kept per hook; older ones are dropped as new ones come. */
export const DELIVERIES_KEPT = 200;

export class DeliveryRepository {
  constructor(private readonly db: Db) {}

  async record(hookId: string, d: { event: string; test: boolean; taskId: string | null; at: string; result: DeliveryResult }): Promise<void> {
    await this.db
      .insertInto('hook_deliveries')
      .values({
        id: d.result.deliveryId,
        hook_id: hookId,
        event: d.event.slice(0, 64),
        test: d.test ? 1 : 0,
        task_id: d.taskId,
        delivered: d.result.delivered ? 1 : 0,
        status: d.result.status ?? null,
        error: d.result.error ? d.result.error.slice(0, 1000) : null,
        attempts: d.result.attempts,
        duration_ms: Math.round(d.result.durationMs),
        at: d.at,
      })
      .execute();
    // Keep the newest DELIVERIES_KEPT: find the oldest kept one, drop what is older.
    const cut = await this.db.selectFrom('hook_deliveries').select('at').where('hook_id', '=', hookId).orderBy('at', 'desc').offset(DELIVERIES_KEPT - 1).limit(1).executeTakeFirst();
    if (cut) await this.db.deleteFrom('hook_deliveries').where('hook_id', '=', hookId).where('at', '<', cut.at).execute();
  }

  async list(hookId: string, limit: number): Promise<DeliveryRecord[]> {
    const rows = await this.db.selectFrom('hook_deliveries').selectAll().where('hook_id', '=', hookId).orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map((r) => ({
      id: r.id,
      event: r.event,
      test: Number(r.test) === 1,
      taskId: r.task_id,
      delivered: Number(r.delivered) === 1,
      status: r.status === null ? null : Number(r.status),
      error: r.error,
      attempts: Number(r.attempts),
      durationMs: Number(r.duration_ms),
      at: r.at,
    }));
  }

  async deleteForHook(hookId: string): Promise<void> {
    await this.db.deleteFrom('hook_deliveries').where('hook_id', '=', hookId).execute();
  }
}
