import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import type { TaskResources } from './task.repository.js';

export interface SlotLimits {
  global: number;
  perHost: number;
  perStorage: number;
}

export interface SlotScope {
  scope: string;
  limit: number;
}

/** The concurrency scopes a task needs a slot in, global first. Pure. */
export function scopesOf(resources: Partial<TaskResources>, limits: SlotLimits): SlotScope[] {
  const scopes: SlotScope[] = [{ scope: 'global', limit: limits.global }];
  if (resources.hostId) scopes.push({ scope: `host:${resources.hostId}`, limit: limits.perHost });
  if (resources.storageId) scopes.push({ scope: `storage:${resources.storageId}`, limit: limits.perStorage });
  return scopes;
}

/**
 * Concurrency limits that hold across processes: a running task holds one numbered
 * slot per scope (primary key scope+slot), leased like the task itself. A dead
 * worker's slots expire with its lease and are taken over.
 */
export class TaskSlots {
  constructor(
    private readonly db: Db,
    private readonly limits: SlotLimits,
  ) {}

  /** Takes a slot in every scope the task needs, or none: false when a limit is reached. */
  async acquire(taskId: string, resources: Partial<TaskResources>, expiresAt: string, now: string): Promise<{ ok: true } | { ok: false; scope: string }> {
    const taken: string[] = [];
    for (const { scope, limit } of scopesOf(resources, this.limits)) {
      if (await this.takeOne(taskId, scope, limit, expiresAt, now)) {
        taken.push(scope);
        continue;
      }
      if (taken.length > 0) {
        await this.db.deleteFrom('task_slots').where('task_id', '=', taskId).where('scope', 'in', taken).execute();
      }
      return { ok: false, scope };
    }
    return { ok: true };
  }

  private async takeOne(taskId: string, scope: string, limit: number, expiresAt: string, now: string): Promise<boolean> {
    const rows = await this.db.selectFrom('task_slots').select(['slot', 'task_id', 'expires_at']).where('scope', '=', scope).execute();
    if (rows.some((r) => r.task_id === taskId)) return true;
    const used = new Set(rows.map((r) => Number(r.slot)));
    for (let slot = 0; slot < limit; slot++) {
      if (used.has(slot)) continue;
      try {
        await this.db.insertInto('task_slots').values({ scope, slot, task_id: taskId, expires_at: expiresAt }).execute();
        return true;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
    }
    for (const r of rows) {
      if (Number(r.slot) >= limit || r.expires_at >= now) continue;
      const res = await this.db
        .updateTable('task_slots')
        .set({ task_id: taskId, expires_at: expiresAt })
        .where('scope', '=', scope)
        .where('slot', '=', r.slot)
        .where('expires_at', '<', now)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) return true;
    }
    return false;
  }

  async renew(taskId: string, expiresAt: string): Promise<void> {
    await this.db.updateTable('task_slots').set({ expires_at: expiresAt }).where('task_id', '=', taskId).execute();
  }

  async release(taskId: string): Promise<void> {
    await this.db.deleteFrom('task_slots').where('task_id', '=', taskId).execute();
  }

  /** Slots whose lease ran out (their worker died): freed for everyone. */
  async releaseExpired(now: string): Promise<void> {
    await this.db.deleteFrom('task_slots').where('expires_at', '<', now).execute();
  }
}
