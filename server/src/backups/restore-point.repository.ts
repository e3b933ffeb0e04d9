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
  /** 0008: how the disks were read (null: before incremental backups, a full read). */
  readMode?: 'full' | 'incremental' | null;
  bytesToRead?: number | null;
  bytesRead?: number | null;
  fullReason?: string | null;
  /** 0008: the libvirt checkpoint created with this restore point (name + full XML). */
  checkpointName?: string | null;
  checkpointXml?: string | null;
  /** 0008: epoch of the full read the chain of incrementals started from (own epoch for a full read). */
  chainFullEpoch?: number | null;
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
  readMode: (r.read_mode ?? null) as RestorePointRecord['readMode'],
  bytesToRead: r.bytes_to_read === null || r.bytes_to_read === undefined ? null : Number(r.bytes_to_read),
  bytesRead: r.bytes_read === null || r.bytes_read === undefined ? null : Number(r.bytes_read),
  fullReason: r.full_reason ?? null,
  checkpointName: r.checkpoint_name ?? null,
  checkpointXml: r.checkpoint_xml ?? null,
  chainFullEpoch: r.chain_full_epoch === null || r.chain_full_epoch === undefined ? null : Number(r.chain_full_epoch),
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
        ...(p.readMode ? { read_mode: p.readMode, bytes_to_read: p.bytesToRead ?? null, bytes_read: p.bytesRead ?? null, full_reason: p.fullReason ?? null, checkpoint_name: p.checkpointName ?? null, checkpoint_xml: p.checkpointXml ?? null, chain_full_epoch: p.chainFullEpoch ?? null } : {}),
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

  /** Forgets the VM's checkpoints (after an in-place restore, or a checkpoint found unusable): none is a base any more. */
  async dropCheckpoints(vmId: string, ids?: readonly string[]): Promise<void> {
    let q = this.db.updateTable('restore_points').set({ checkpoint_name: null, checkpoint_xml: null }).where('vm_id', '=', vmId);
    if (ids) {
      if (ids.length === 0) return;
      q = q.where('id', 'in', [...ids]);
    }
    await q.execute();
  }

  async maxEpoch(vmId: string): Promise<number | null> {
    const row = await this.db.selectFrom('restore_points').select((eb) => eb.fn.max('epoch').as('m')).where('vm_id', '=', vmId).executeTakeFirst();
    return row?.m === null || row?.m === undefined ? null : Number(row.m);
  }
}
