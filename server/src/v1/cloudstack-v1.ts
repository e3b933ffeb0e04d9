/**
 * What CloudStack's `backroll` provider asks, answered by the existing services: VMs by
 * libvirt uuid (the inventory), offerings = backup policies, one backup per restore point.
 * No rule of its own beyond the mapping of v1.mapping.ts.
 */
import type { Borg } from '../adapters/borg/borg.js';
import type { BackupService } from '../backups/backup.service.js';
import type { RepositoryStore } from '../backups/repository-store.js';
import type { RestorePointRecord } from '../backups/restore-point.repository.js';
import { restorePointStats } from '../backups/restore-point.stats.js';
import { AppError, notFound } from '../errors.js';
import type { VmLocks } from '../locks/vm-lock.js';
import type { PolicyService } from '../policies/policy.service.js';
import type { RestoreService } from '../restores/restore.service.js';
import type { TaskService, TaskView } from '../tasks/task.service.js';
import type { VmService } from '../virtual-machines/vm.service.js';
import type { VmRecord } from '../virtual-machines/vm.repository.js';
import {
  failure,
  findByName,
  parseQueryId,
  success,
  taskStatus,
  toV1ArchiveStats,
  toV1BackupList,
  toV1Policy,
  toV1RepositoryInfo,
  type V1Policy,
  type V1Query,
  type V1Status,
} from './v1.mapping.js';

/** The services the v1 surface uses (the composition root's `Services` satisfies it). */
export interface V1Services {
  policies: Pick<PolicyService, 'list'>;
  vms: Pick<VmService, 'findByUuid'>;
  backups: Pick<BackupService, 'startBackup' | 'listRestorePoints' | 'reconcile' | 'deleteRestorePoint' | 'repositoryInfo'>;
  backupModule: { borg: Pick<Borg, 'archiveInfo'>; store: Pick<RepositoryStore, 'access' | 'identity'>; locks: Pick<VmLocks, 'withVmLock'> };
  restores: Pick<RestoreService, 'request'>;
  tasks: Pick<TaskService, 'find' | 'retryOf'>;
}

export interface Caller {
  /** `client:<id>` for task records. */
  actor: string | null;
  /** Reconciling the index with the repository writes: admins only. */
  admin: boolean;
}

const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE = 500;
const MAX_RETRY_HOPS = 5;

export class CloudStackV1 {
  constructor(
    private readonly s: V1Services,
    private readonly log?: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void },
  ) {}

  /** POST /tasks/singlebackup/{uuid}: a vm.backup task with the policy of the VM's pool. */
  async startBackup(uuid: string, caller: Caller): Promise<TaskView> {
    const vm = await this.vm(uuid);
    return this.s.backups.startBackup(vm.id, caller.actor);
  }

  /** POST /tasks/restore/{uuid}: restore in place ("single") the restore point named by CloudStack. */
  async startRestore(uuid: string, backupName: string, caller: Caller): Promise<TaskView> {
    const vm = await this.vm(uuid);
    const rp = await this.restorePoint(vm, backupName, caller);
    return this.s.restores.request(vm.id, { restorePointId: rp.id, mode: 'in-place' }, caller.actor);
  }

  /** DELETE /virtualmachines/{uuid}/backups/{name}: the whole restore point (a restore-point.delete task). */
  async startDelete(uuid: string, backupName: string, caller: Caller): Promise<TaskView> {
    const vm = await this.vm(uuid);
    const rp = await this.restorePoint(vm, backupName, caller);
    return this.s.backups.deleteRestorePoint(vm.id, rp.id, caller.actor);
  }

  /** GET /status/{id}: a task, or a read started by a GET; an unknown id is a FAILURE, never an HTTP error. */
  async status(id: string, caller: Caller): Promise<V1Status> {
    const query = parseQueryId(id);
    if (query) {
      try {
        return success(await this.answer(query, caller));
      } catch (err) {
        if (err instanceof AppError) return failure(err.message);
        throw err;
      }
    }
    let task = TASK_ID.test(id) ? await this.s.tasks.find(id.toLowerCase()) : undefined;
    if (!task) return failure(`Backroll has no task ${id} (it never existed, or its record was purged)`);
    // A worker that died mid-backup: Backroll retries the task as a new one; CloudStack
    // knows the first id only, so it follows the retries.
    for (let hops = 0; task.state === 'interrupted' && hops < MAX_RETRY_HOPS; hops++) {
      const retry = await this.s.tasks.retryOf(task.id);
      if (!retry) break;
      task = retry;
    }
    return taskStatus(task);
  }

  private async answer(q: V1Query, caller: Caller): Promise<unknown> {
    switch (q.op) {
      case 'policies':
        return this.policies();
      case 'list':
        return this.listBackups(q.vm, caller);
      case 'stats': {
        const vm = await this.vm(q.vm);
        const rp = await this.restorePoint(vm, q.name, caller);
        return toV1ArchiveStats(await restorePointStats(this.s.backupModule, vm.uuid, rp));
      }
      case 'repository': {
        const vm = await this.vm(q.vm);
        return toV1RepositoryInfo(await this.s.backups.repositoryInfo(vm.id));
      }
    }
  }

  /**
   * Every policy, as BackROLL policies (CloudStack imports each as a backup offering). The
   * client cannot take an empty list: without policies the call fails with a message saying so.
   */
  async policies(): Promise<V1Policy[]> {
    const out: V1Policy[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.s.policies.list({ limit: PAGE, offset });
      out.push(...page.items.map(toV1Policy));
      if (page.items.length < PAGE || out.length >= page.total) break;
    }
    if (out.length === 0) {
      throw new AppError('not_found', 'POLICY.NONE', 'Backroll has no backup policy yet: create one (POST /api/v2/policies), then list the provider offerings again in CloudStack');
    }
    return out;
  }

  /** One entry per restore point; an unknown VM, or one never backed up, lists nothing. */
  async listBackups(uuid: string, caller: Caller) {
    const vm = await this.s.vms.findByUuid(uuid);
    if (!vm) return toV1BackupList([], null);
    const rps = await this.restorePoints(vm, caller, true);
    const repository = rps[0]?.repository;
    const identity = repository ? await this.s.backupModule.store.identity(repository) : null;
    return toV1BackupList(rps, repository ? { location: repository, id: identity?.id ?? '', encryption: identity?.encryption ?? 'none' } : null);
  }

  private async vm(uuid: string): Promise<VmRecord> {
    const vm = await this.s.vms.findByUuid(uuid);
    if (!vm) {
      throw notFound('VM.NOT_FOUND', `Backroll's inventory has no VM with uuid ${uuid}: add its KVM host to a pool and refresh the inventory`, { uuid });
    }
    return vm;
  }

  /** By any archive name of the restore point; a name not in the index yet (BackROLL's) after a reconcile. */
  private async restorePoint(vm: VmRecord, name: string, caller: Caller): Promise<RestorePointRecord> {
    const rp = findByName(await this.s.backups.listRestorePoints(vm.id), name) ?? findByName(await this.restorePoints(vm, caller, true), name);
    if (!rp) throw notFound('RESTORE_POINT.NOT_FOUND', `VM ${vm.name} has no backup named ${name}`, { uuid: vm.uuid, name });
    return rp;
  }

  /**
   * The VM's restore points, after making the index match the repository when the caller
   * may (admins): BackROLL's archives appear without a manual reconcile. While another
   * operation holds the VM (a backup runs) the index alone answers.
   */
  private async restorePoints(vm: VmRecord, caller: Caller, reconcile: boolean): Promise<RestorePointRecord[]> {
    if (reconcile && caller.admin) {
      await this.s.backupModule.locks
        .withVmLock(vm.id, caller.actor ?? 'api:v1', () => this.s.backups.reconcile(vm.id), { purpose: 'reconcile' })
        .catch((err: unknown) => {
          if (!(err instanceof AppError)) throw err;
          // A VM without a policy or repository (most of a CloudStack zone) is routine, not a warning.
          const level = err.kind === 'not_found' ? 'debug' : 'warn';
          this.log?.[level]({ vmId: vm.id, code: err.code, err: err.message }, 'v1: index not reconciled with the repository; listing the index');
        });
    }
    return this.s.backups.listRestorePoints(vm.id);
  }
}
