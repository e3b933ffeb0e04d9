/**
 * When a backup compacts its borg repository (docs/incremental.md, "fixed cost").
 *
 * `borg compact` frees the segments of deleted archives. It costs a borg process that opens
 * and scans the repository (~0.6 s on a small repository here, more on a large one), and it
 * reclaims nothing when nothing was deleted. So a backup compacts only when archives were
 * deleted since the last compaction (its retention pruned, an earlier failed backup removed
 * its archives) and the last compaction is at least the interval old
 * (BACKROLL_COMPACT_INTERVAL_HOURS, default 24; 0: whenever something was deleted). Until then
 * the deleted archives' chunks still take their space. Deleting a restore point by hand
 * compacts at once (the operator asked for the space).
 */
import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';

export const DEFAULT_COMPACT_INTERVAL_HOURS = 24;

export interface CompactionState {
  compactedAt: Date | null;
  /** When archives were first deleted since the last compaction; null: nothing to reclaim. */
  deletedSince: Date | null;
}

export interface CompactionDecision {
  compact: boolean;
  /** For the task log. */
  why: string;
}

/** Whether to compact now (pure). */
export function compactionDecision(state: CompactionState, now: Date, intervalMs: number): CompactionDecision {
  if (state.deletedSince === null) return { compact: false, why: 'no archive was deleted since the last compaction: nothing to reclaim' };
  if (intervalMs <= 0) return { compact: true, why: 'archives were deleted (compaction interval 0: after every deletion)' };
  if (state.compactedAt === null) return { compact: true, why: 'archives were deleted and the repository was never compacted by Backroll' };
  const age = now.getTime() - state.compactedAt.getTime();
  if (age >= intervalMs) return { compact: true, why: `archives were deleted and the last compaction was ${hours(age)} ago` };
  const next = new Date(state.compactedAt.getTime() + intervalMs);
  return {
    compact: false,
    why: `the last compaction was ${hours(age)} ago (interval ${hours(intervalMs)}): the space of the archives deleted since ${state.deletedSince.toISOString()} is freed by the first backup after ${next.toISOString()}`,
  };
}

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 1 ? `${h.toFixed(h < 10 ? 1 : 0)} h` : `${Math.round(ms / 60_000)} min`;
}

const keyOf = (repository: string) => createHash('sha256').update(repository).digest('hex');

/** The bookkeeping row of each repository (table repository_compactions, migration 0011). */
export class CompactionLedger {
  constructor(private readonly db: Db) {}

  async state(repository: string): Promise<CompactionState> {
    const row = await this.db.selectFrom('repository_compactions').select(['compacted_at', 'deleted_since']).where('repository_key', '=', keyOf(repository)).executeTakeFirst();
    return { compactedAt: row?.compacted_at ? new Date(row.compacted_at) : null, deletedSince: row?.deleted_since ? new Date(row.deleted_since) : null };
  }

  /** Archives were deleted: keeps the first such instant until a compaction. */
  async deleted(repository: string, at: Date): Promise<void> {
    const key = keyOf(repository);
    const r = await this.db.updateTable('repository_compactions').set({ deleted_since: at.toISOString() }).where('repository_key', '=', key).where('deleted_since', 'is', null).executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) return;
    await this.insertOr(repository, { compacted_at: null, deleted_since: at.toISOString() }, async () => undefined);
  }

  async compacted(repository: string, at: Date): Promise<void> {
    const key = keyOf(repository);
    const set = { compacted_at: at.toISOString(), deleted_since: null };
    const r = await this.db.updateTable('repository_compactions').set(set).where('repository_key', '=', key).executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) return;
    await this.insertOr(repository, set, async () => {
      await this.db.updateTable('repository_compactions').set(set).where('repository_key', '=', key).execute();
    });
  }

  /** Inserts the row; when it exists already (a concurrent insert, or an update that matched no row), `existing` runs. */
  private async insertOr(repository: string, values: { compacted_at: string | null; deleted_since: string | null }, existing: () => Promise<void>): Promise<void> {
    const key = keyOf(repository);
    const there = await this.db.selectFrom('repository_compactions').select('repository_key').where('repository_key', '=', key).executeTakeFirst();
    if (there) return existing();
    try {
      await this.db.insertInto('repository_compactions').values({ repository_key: key, repository, ...values }).execute();
    } catch (err) {
      const again = await this.db.selectFrom('repository_compactions').select('repository_key').where('repository_key', '=', key).executeTakeFirst();
      if (!again) throw err;
      await existing();
    }
  }
}
