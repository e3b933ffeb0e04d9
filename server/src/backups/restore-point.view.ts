import type { RestorePointRecord } from './restore-point.repository.js';

/** How a restore point's disks were read (issue 11): what the API shows, never the checkpoint XML. */
export interface RestorePointRead {
  /** `incremental`: only the blocks changed since the base were read; `full`: every allocated block; null: made before 0008 or found in borg. */
  mode: 'full' | 'incremental' | null;
  bytesToRead: number | null;
  bytesRead: number | null;
  /** Why a full read was made (first backup, checkpoint lost, periodic full, raw disk, …); null for an incremental read. */
  fullReason: string | null;
  /** Sum of the disks' virtual sizes (null when one is unknown). */
  diskSize: number | null;
}

/** The restore point as the v2 API serialises it: the record without its checkpoint, plus `read`. */
export type RestorePointView = Omit<RestorePointRecord, 'readMode' | 'bytesToRead' | 'bytesRead' | 'fullReason' | 'checkpointName' | 'checkpointXml' | 'chainFullEpoch'> & { read: RestorePointRead };

export function diskSizeOf(r: Pick<RestorePointRecord, 'disks'>): number | null {
  if (r.disks.length === 0) return null;
  let sum = 0;
  for (const d of r.disks) {
    if (d.virtualSize === null || d.virtualSize === undefined || !Number.isFinite(d.virtualSize)) return null;
    sum += d.virtualSize;
  }
  return sum;
}

export function readOf(r: RestorePointRecord): RestorePointRead {
  const mode = r.readMode ?? null;
  return {
    mode,
    bytesToRead: mode ? (r.bytesToRead ?? null) : null,
    bytesRead: mode ? (r.bytesRead ?? null) : null,
    fullReason: mode === 'full' ? (r.fullReason ?? null) : null,
    diskSize: diskSizeOf(r),
  };
}

/** An explicit copy, field by field: a new column never leaks by accident. */
export function restorePointView(r: RestorePointRecord): RestorePointView {
  return {
    id: r.id,
    vmId: r.vmId,
    storageId: r.storageId,
    repository: r.repository,
    epoch: r.epoch,
    archives: r.archives,
    disks: r.disks,
    originalSize: r.originalSize,
    compressedSize: r.compressedSize,
    deduplicatedSize: r.deduplicatedSize,
    durationMs: r.durationMs,
    taskId: r.taskId,
    startedBy: r.startedBy,
    source: r.source,
    createdAt: r.createdAt,
    read: readOf(r),
  };
}
