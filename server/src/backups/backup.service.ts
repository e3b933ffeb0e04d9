/**
 * The backup operations the API offers on one VM: start a backup, list/inspect/delete
 * restore points (from the database index; an admin reconciles it with `borg list`),
 * repository info, break-lock, verify. Long operations are tasks.
 */
import { randomUUID } from 'node:crypto';
import type { RepoAccess, RepoInfo } from '../adapters/borg/borg.js';
import { AppError, notFound } from '../errors.js';
import type { TaskService, TaskView } from '../tasks/task.service.js';
import { toBool } from '../db/errors.js';
import { systemVmError } from './backup.engine.js';
import type { BackupModule } from './index.js';
import { groupByEpoch, repositoryPath } from './naming.js';
import type { RestorePointRecord } from './restore-point.repository.js';

export const VM_BACKUP = 'vm.backup';
export const POOL_BACKUP = 'pool.backup';
export const RESTORE_POINT_DELETE = 'restore-point.delete';
export const REPOSITORY_VERIFY = 'repository.verify';

export interface RestorePointDeletePayload {
  vmId: string;
  restorePointId: string;
}
export interface RepositoryVerifyPayload {
  vmId: string;
  verifyData: boolean;
}

export class BackupService {
  constructor(
    private readonly mod: BackupModule,
    private readonly tasks: Pick<TaskService, 'submit'>,
  ) {}

  /** Starts a `vm.backup` task (202). Fails at once when the VM, its host or its policy is missing. */
  async startBackup(vmId: string, startedBy: string | null, policyId?: string): Promise<TaskView> {
    const t = await this.mod.lookup.target(vmId, policyId);
    if (toBool(t.vm.system_vm)) throw systemVmError(t.vm);
    repositoryPath(t.storage.path, t.vm.name);
    return this.tasks.submit(VM_BACKUP, { vmId, ...(policyId ? { policyId } : {}) }, {
      target: { type: 'vm', id: vmId },
      resources: { hostId: t.host.id, storageId: t.storage.id },
      startedBy,
    });
  }

  /**
   * Starts the parent `pool.backup` task (202): it fans out one `vm.backup` child per
   * backup-eligible VM of the pool's connected hosts. POOL.NOT_FOUND at once for an unknown pool.
   */
  async startPoolBackup(poolId: string, startedBy: string | null): Promise<TaskView> {
    await this.mod.lookup.pool(poolId);
    return this.tasks.submit(POOL_BACKUP, { poolId, trigger: 'manual' }, { target: { type: 'pool', id: poolId }, startedBy });
  }

  /** The index only: a read never runs borg, takes a lock or writes (reconcile is an admin POST). */
  async listRestorePoints(vmId: string): Promise<RestorePointRecord[]> {
    await this.mod.lookup.vm(vmId);
    return this.mod.restorePoints.listByVm(vmId);
  }

  /**
   * Reconciles the index with `borg list` under the VM's lock, so it never interleaves
   * with a backup, restore or delete of the VM (VM.LOCKED 409 while one runs).
   */
  async reconcileLocked(vmId: string, by: string | null): Promise<{ added: number; removed: number; updated: number; items: RestorePointRecord[] }> {
    const vm = await this.mod.lookup.vm(vmId);
    const counts = await this.mod.locks.withVmLock(vm.id, by ?? 'api', () => this.reconcile(vmId), { purpose: 'reconcile' });
    return { ...counts, items: await this.mod.restorePoints.listByVm(vmId) };
  }

  async getRestorePoint(vmId: string, rpId: string): Promise<RestorePointRecord> {
    const rp = await this.mod.restorePoints.find(vmId, rpId);
    if (!rp) throw notFound('RESTORE_POINT.NOT_FOUND', `VM ${vmId} has no restore point ${rpId}`, { vmId, id: rpId });
    return rp;
  }

  async deleteRestorePoint(vmId: string, rpId: string, startedBy: string | null): Promise<TaskView> {
    const rp = await this.getRestorePoint(vmId, rpId);
    return this.tasks.submit(RESTORE_POINT_DELETE, { vmId, restorePointId: rp.id } satisfies RestorePointDeletePayload, {
      target: { type: 'vm', id: vmId },
      resources: { storageId: rp.storageId },
      startedBy,
    });
  }

  async repositoryInfo(vmId: string): Promise<RepoInfo & { path: string; owner: unknown }> {
    const { access } = await this.repository(vmId);
    const info = await this.mod.borg.info(access);
    return { ...info, path: access.repo, owner: await this.mod.store.readOwner(access.repo) };
  }

  async breakLock(vmId: string): Promise<{ repository: string }> {
    const { access } = await this.repository(vmId);
    await this.mod.borg.breakLock(access);
    return { repository: access.repo };
  }

  async verify(vmId: string, verifyData: boolean, startedBy: string | null): Promise<TaskView> {
    const { storageId } = await this.repository(vmId);
    return this.tasks.submit(REPOSITORY_VERIFY, { vmId, verifyData } satisfies RepositoryVerifyPayload, { target: { type: 'vm', id: vmId }, resources: { storageId }, startedBy });
  }

  /** The VM's repository; BORG.REPOSITORY_NOT_FOUND when it has never been backed up. */
  async repository(vmId: string): Promise<{ access: RepoAccess; storageId: string; vmUuid: string }> {
    const t = await this.mod.lookup.target(vmId);
    const repo = repositoryPath(t.storage.path, t.vm.name);
    const access = await this.mod.store.access(repo, t.vm.uuid);
    if (!access) throw new AppError('not_found', 'BORG.REPOSITORY_NOT_FOUND', `VM ${t.vm.name} has no repository at ${repo} yet (never backed up to this storage)`, { repository: repo });
    return { access, storageId: t.storage.id, vmUuid: t.vm.uuid };
  }

  /**
   * Makes the index match the repository: restore points found in borg (BackROLL's, or
   * indexed rows lost) are added with `source: borg`; rows whose archives are all gone
   * are removed. A missing repository changes nothing (the storage may be unmounted).
   */
  async reconcile(vmId: string): Promise<{ added: number; removed: number; updated: number }> {
    const t = await this.mod.lookup.target(vmId);
    const repo = repositoryPath(t.storage.path, t.vm.name);
    const access = await this.mod.store.access(repo, t.vm.uuid);
    if (!access) return { added: 0, removed: 0, updated: 0 };
    const groups = groupByEpoch((await this.mod.borg.list(access)).map((a) => a.name));
    const rows = (await this.mod.restorePoints.listByVm(vmId)).filter((r) => r.repository === repo);
    const byEpoch = new Map(rows.map((r) => [r.epoch, r]));
    let added = 0;
    let updated = 0;
    for (const g of groups) {
      const row = byEpoch.get(g.epoch);
      if (row) {
        if (row.archives.join('\n') !== g.archives.join('\n')) {
          await this.mod.restorePoints.updateArchives(row.id, g.archives);
          updated++;
        }
        continue;
      }
      const inserted = await this.mod.restorePoints.insertIfAbsent({
        id: randomUUID(),
        vmId,
        storageId: t.storage.id,
        repository: repo,
        epoch: g.epoch,
        archives: g.archives,
        disks: [],
        originalSize: null,
        compressedSize: null,
        deduplicatedSize: null,
        durationMs: null,
        taskId: null,
        startedBy: null,
        source: 'borg',
        createdAt: new Date(g.epoch * 1000).toISOString(),
      });
      if (inserted) added++;
    }
    const present = new Set(groups.map((g) => g.epoch));
    const gone = rows.filter((r) => !present.has(r.epoch));
    await this.mod.restorePoints.deleteByIds(gone.map((r) => r.id));
    return { added, removed: gone.length, updated };
  }
}
