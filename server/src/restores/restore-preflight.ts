/**
 * A restore's pre-flight, for the wizard's review step: the same validation as the restore
 * itself (a bad request is the same problem), then what would stop or surprise it — free space
 * where the images go, a VM of the new name on the target host, the VM being stopped, a lock
 * held — and how big it is and how long it should take (from past restores, else past backups).
 * Starts nothing and changes nothing.
 */
import path from 'node:path';
import type { Db } from '../db/database.js';
import { newDiskPath } from './restore.model.js';
import type { RestoreFiles } from './restore-files.js';
import type { RestoreRequest, RestoreService } from './restore.service.js';

export interface PreflightCheck {
  code: string;
  ok: boolean;
  severity: 'error' | 'warning';
  message: string;
}

export interface PreflightResult {
  ok: boolean;
  sizeBytes: number | null;
  estimatedSeconds: number | null;
  estimateBasis: { source: 'restores' | 'backups' | 'none'; samples: number; bytesPerSecond: number | null };
  target: { kind: 'host' | 'directory'; hostId: string | null; directory: string | null; freeBytes: number | null };
  checks: PreflightCheck[];
}

/** As the restore engine keeps in reserve on top of the images. */
const RESERVE_BYTES = 64 * 1024 * 1024;
const FREE_SPACE_TIMEOUT_MS = 5_000;

const human = (n: number) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};

export class RestorePreflight {
  constructor(
    private readonly db: Db,
    private readonly service: RestoreService,
    private readonly files: Pick<RestoreFiles, 'freeBytes'>,
  ) {}

  async check(vmId: string, req: RestoreRequest): Promise<PreflightResult> {
    const payload = await this.service.validate(vmId, req);
    const vm = await this.db.selectFrom('virtual_machines').select(['id', 'name', 'state', 'host_id']).where('id', '=', vmId).executeTakeFirstOrThrow();
    const rp = await this.db.selectFrom('restore_points').select(['original_size', 'disks']).where('id', '=', payload.restorePointId).executeTakeFirstOrThrow();
    const disks = rp.disks ? (JSON.parse(rp.disks) as Array<{ target: string; path: string }>) : [];
    const sizeBytes = rp.original_size === null ? null : Number(rp.original_size);
    const checks: PreflightCheck[] = [];

    // Where the images go.
    let dirs: string[];
    if (payload.mode === 'directory') dirs = [payload.directory!];
    else if (payload.mode === 'new-vm') dirs = disks.map((d) => path.dirname(newDiskPath(d.path, payload.newName!, d.target, payload.directory)));
    else dirs = disks.map((d) => path.dirname(d.path));
    dirs = [...new Set(dirs)];
    const directory = dirs[0] ?? null;
    const freeBytes = directory === null ? null : await this.freeBytes(directory);
    if (sizeBytes !== null && freeBytes !== null) {
      const enough = freeBytes >= sizeBytes + RESERVE_BYTES;
      checks.push({
        code: 'RESTORE.TARGET_SPACE',
        ok: enough,
        severity: 'error',
        message: enough
          ? `${directory} has ${human(freeBytes)} free for ${human(sizeBytes)}`
          : `${directory} has ${human(freeBytes)} free; the restore needs ${human(sizeBytes)} plus ${human(RESERVE_BYTES)} in reserve: free space there, or restore to another directory`,
      });
    } else {
      checks.push({
        code: 'RESTORE.TARGET_SPACE',
        ok: true,
        severity: 'warning',
        message: directory === null ? 'the restore point does not record where its disks were: free space is checked when the restore runs' : `the free space of ${directory} cannot be read now; it is checked again when the restore runs`,
      });
    }

    if (payload.mode === 'new-vm') {
      const clash = await this.db
        .selectFrom('virtual_machines')
        .select(['id'])
        .where('host_id', '=', payload.hostId!)
        .where('name', '=', payload.newName!)
        .where('present', '=', 1)
        .executeTakeFirst();
      checks.push({
        code: 'RESTORE.NAME_TAKEN',
        ok: clash === undefined,
        severity: 'error',
        message: clash ? `a VM named ${payload.newName} already exists on the target host: choose another name` : `no VM named ${payload.newName} on the target host`,
      });
    }
    if (payload.mode === 'in-place') {
      const running = vm.state === 'running' || vm.state === 'paused';
      checks.push({
        code: 'VM.WILL_STOP',
        ok: true,
        severity: 'warning',
        message: `${vm.name} ${running ? 'is stopped (shut down, then powered off after the grace period)' : 'stays stopped'}; its current disks are replaced by the restore point's, and what was written since is lost${running ? '; it is started again afterwards' : ''}`,
      });
    }
    const lock = await this.db.selectFrom('vm_locks').select(['purpose', 'owner', 'expires_at']).where('vm_id', '=', vmId).executeTakeFirst();
    const locked = lock !== undefined && lock.expires_at > new Date().toISOString();
    checks.push({
      code: 'VM.LOCKED',
      ok: !locked,
      severity: 'warning',
      message: locked ? `${vm.name} is busy (${lock!.purpose}); the restore waits for it or fails with VM.LOCKED — try again when it is done` : `${vm.name} is not busy`,
    });

    const basis = await this.rate();
    return {
      ok: checks.every((c) => c.ok || c.severity !== 'error'),
      sizeBytes,
      estimatedSeconds: sizeBytes !== null && basis.bytesPerSecond ? Math.max(1, Math.round(sizeBytes / basis.bytesPerSecond)) : null,
      estimateBasis: basis,
      target: { kind: payload.mode === 'directory' ? 'directory' : 'host', hostId: payload.mode === 'directory' ? null : (payload.hostId ?? vm.host_id), directory, freeBytes },
      checks,
    };
  }

  /** Bytes per second of the last successful restores; else of the last backups. */
  private async rate(): Promise<PreflightResult['estimateBasis']> {
    const restores = await this.db
      .selectFrom('tasks')
      .select(['bytes_total', 'started_at', 'finished_at'])
      .where('kind', '=', 'vm.restore')
      .where('state', '=', 'succeeded')
      .where('bytes_total', '>', 0)
      .orderBy('created_at', 'desc')
      .limit(20)
      .execute();
    let bytes = 0;
    let ms = 0;
    let samples = 0;
    for (const r of restores) {
      if (!r.started_at || !r.finished_at) continue;
      const d = Date.parse(r.finished_at) - Date.parse(r.started_at);
      if (d <= 0) continue;
      bytes += Number(r.bytes_total);
      ms += d;
      samples++;
    }
    if (samples > 0) return { source: 'restores', samples, bytesPerSecond: Math.round(bytes / (ms / 1000)) };
    const backups = await this.db
      .selectFrom('restore_points')
      .select(['original_size', 'duration_ms'])
      .where('duration_ms', '>', 0)
      .where('original_size', '>', 0)
      .orderBy('created_at', 'desc')
      .limit(20)
      .execute();
    for (const b of backups) {
      bytes += Number(b.original_size);
      ms += Number(b.duration_ms);
      samples++;
    }
    if (samples > 0) return { source: 'backups', samples, bytesPerSecond: Math.round(bytes / (ms / 1000)) };
    return { source: 'none', samples: 0, bytesPerSecond: null };
  }

  /** statfs of the target, bounded in time (a hung mount answers "unknown", not never). */
  private async freeBytes(dir: string): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), FREE_SPACE_TIMEOUT_MS);
      timer.unref();
    });
    // The nearest existing ancestor: a new-vm directory may not exist yet.
    let probe = dir;
    const result = await Promise.race([
      (async () => {
        for (;;) {
          const free = await this.files.freeBytes(probe);
          if (free !== null || path.dirname(probe) === probe) return free;
          probe = path.dirname(probe);
        }
      })(),
      timeout,
    ]);
    clearTimeout(timer);
    return result;
  }
}
