import type { Db } from '../db/database.js';
import { isUniqueViolation, parseJson } from '../db/errors.js';
import type { RestorePointTable } from '../db/schema.js';

export interface RestorePointDisk {
  target: string;
  path: string;
  format: string | null;
  archive: string;
  virtualSize: number | null;
  backingChain: string[];
  originalSize: number | null;
  compressedSize: number | null;
  deduplicatedSize: number | null;
}

export interface RestorePointRecord {
  id: string;
  vmId: string;
  storageId: string;
  repository: string;
  epoch: number;
  archives: string[];
  disks: RestorePointDisk[];
  originalSize: number | null;
  compressedSize: number | null;
  deduplicatedSize: number | null;
  durationMs: number | null;
  taskId: string | null;
  startedBy: string | null;
  /** `backroll`: made by Backroll; `borg`: found in the repository (BackROLL or manual) by a reconcile. */
  source: 'backroll' | 'borg';
  createdAt: string;
}

const toRecord = (r: RestorePointTable): RestorePointRecord => ({
  id: r.id,
  vmId: r.vm_id,
  storageId: r.storage_id,
  repository: r.repository,
  epoch: Number(r.epoch),
  archives: parseJson<string[]>(r.archives, []),
  disks: parseJson<RestorePointDisk[]>(r.disks, []),
  originalSize: r.original_size === null ? null : Number(r.original_size),
  compressedSize: r.compressed_size === null ? null : Number(r.compressed_size),
  deduplicatedSize: r.deduplicated_size === null ? null : Number(r.deduplicated_size),
  durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
  taskId: r.task_id,
  startedBy: r.started_by,
  source: (r.source ?? 'backroll') as RestorePointRecord['source'],
  createdAt: r.created_at,
});

export class RestorePointRepository {
  constructor(private readonly db: Db) {}

  async insert(p: RestorePointRecord): Promise<void> {
    await this.db
      .insertInto('restore_points')
      .values({
        id: p.id,
        vm_id: p.vmId,
        storage_id: p.storageId,
        repository: p.repository,
        epoch: p.epoch,
        archives: JSON.stringify(p.archives),
        disks: JSON.stringify(p.disks),
        original_size: p.originalSize,
        compressed_size: p.compressedSize,
        deduplicated_size: p.deduplicatedSize,
        duration_ms: p.durationMs,
        task_id: p.taskId,
        started_by: p.startedBy,
        source: p.source,
        created_at: p.createdAt,
      })
      .execute();
  }

  /** Inserts unless a row with the same (VM, repository, epoch) exists; false when it did. */
  async insertIfAbsent(p: RestorePointRecord): Promise<boolean> {
    try {
      await this.insert(p);
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async listByVm(vmId: string): Promise<RestorePointRecord[]> {
    const rows = await this.db.selectFrom('restore_points').selectAll().where('vm_id', '=', vmId).orderBy('epoch', 'desc').execute();
    return rows.map(toRecord);
  }

  async find(vmId: string, id: string): Promise<RestorePointRecord | undefined> {
    const row = await this.db.selectFrom('restore_points').selectAll().where('vm_id', '=', vmId).where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async deleteByIds(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.deleteFrom('restore_points').where('id', 'in', [...ids]).execute();
  }

  async updateArchives(id: string, archives: string[]): Promise<void> {
    await this.db.updateTable('restore_points').set({ archives: JSON.stringify(archives) }).where('id', '=', id).execute();
  }

  async maxEpoch(vmId: string): Promise<number | null> {
    const row = await this.db.selectFrom('restore_points').select((eb) => eb.fn.max('epoch').as('m')).where('vm_id', '=', vmId).executeTakeFirst();
    return row?.m === null || row?.m === undefined ? null : Number(row.m);
  }
}
