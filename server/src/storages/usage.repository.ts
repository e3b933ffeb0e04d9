/** Storage usage samples (0007) and the restore-point sums they record. */
import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';

export interface UsageSample {
  at: string;
  capacityBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  backupBytes: number;
  originalBytes: number;
}

export interface StoredBytes {
  /** Sum of the restore points' deduplicated sizes. */
  backupBytes: number;
  originalBytes: number;
  restorePoints: number;
}

const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export class UsageRepository {
  constructor(private readonly db: Db) {}

  async insert(storageId: string, s: UsageSample): Promise<void> {
    await this.db
      .insertInto('storage_usage_samples')
      .values({
        id: randomUUID(),
        storage_id: storageId,
        at: s.at,
        capacity_bytes: s.capacityBytes,
        used_bytes: s.usedBytes,
        free_bytes: s.freeBytes,
        backup_bytes: s.backupBytes,
        original_bytes: s.originalBytes,
      })
      .execute();
  }

  /** Samples since `since`, oldest first, per storage. */
  async since(since: string, storageId?: string): Promise<Map<string, UsageSample[]>> {
    let q = this.db.selectFrom('storage_usage_samples').selectAll().where('at', '>=', since);
    if (storageId) q = q.where('storage_id', '=', storageId);
    const rows = await q.orderBy('at').execute();
    const out = new Map<string, UsageSample[]>();
    for (const r of rows) {
      const list = out.get(r.storage_id) ?? [];
      list.push({ at: r.at, capacityBytes: n(r.capacity_bytes), usedBytes: n(r.used_bytes), freeBytes: n(r.free_bytes), backupBytes: n(r.backup_bytes) ?? 0, originalBytes: n(r.original_bytes) ?? 0 });
      out.set(r.storage_id, list);
    }
    return out;
  }

  /** Drops samples older than `before` (kept: a year). */
  async prune(before: string): Promise<void> {
    await this.db.deleteFrom('storage_usage_samples').where('at', '<', before).execute();
  }

  /** What each storage's restore points hold, by storage id. */
  async storedBytes(): Promise<Map<string, StoredBytes>> {
    const rows = await this.db
      .selectFrom('restore_points')
      .select((eb) => ['storage_id', eb.fn.sum<number | string>('deduplicated_size').as('dedup'), eb.fn.sum<number | string>('original_size').as('orig'), eb.fn.countAll<number | string>().as('n')])
      .groupBy('storage_id')
      .execute();
    return new Map(rows.map((r) => [r.storage_id, { backupBytes: n(r.dedup) ?? 0, originalBytes: n(r.orig) ?? 0, restorePoints: n(r.n) ?? 0 }]));
  }

  /** The VMs using most space on a storage. */
  async topVms(storageId: string, limit: number): Promise<Array<{ vmId: string; vmName: string; restorePoints: number; deduplicatedBytes: number; originalBytes: number }>> {
    const rows = await this.db
      .selectFrom('restore_points as rp')
      .innerJoin('virtual_machines as v', 'v.id', 'rp.vm_id')
      .where('rp.storage_id', '=', storageId)
      .select((eb) => ['rp.vm_id', 'v.name', eb.fn.countAll<number | string>().as('n'), eb.fn.sum<number | string>('rp.deduplicated_size').as('dedup'), eb.fn.sum<number | string>('rp.original_size').as('orig')])
      .groupBy(['rp.vm_id', 'v.name'])
      .orderBy('dedup', 'desc')
      .orderBy('v.name')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ vmId: r.vm_id, vmName: r.name, restorePoints: n(r.n) ?? 0, deduplicatedBytes: n(r.dedup) ?? 0, originalBytes: n(r.orig) ?? 0 }));
  }
}
