/**
 * Task kinds of the backup side and their payloads:
 *   vm.backup            { vmId, policyId? }                  one VM (lock, snapshot, borg, commit, prune)
 *   pool.backup          { poolId, policyId?, scheduledFor?, trigger? }  fan-out to vm.backup children
 *   restore-point.delete { vmId, restorePointId }             delete its archives, then compact
 *   repository.verify    { vmId, verifyData }                 borg check [--verify-data]
 */
import type { HandlerOptions } from '../tasks/handler-registry.js';
import type { TaskHandler } from '../tasks/task-context.js';
import type { NewChild } from '../tasks/task.service.js';
import type { VmBackupPayload } from './backup.engine.js';
import { BackupService, POOL_BACKUP, REPOSITORY_VERIFY, RESTORE_POINT_DELETE, VM_BACKUP, type RepositoryVerifyPayload, type RestorePointDeletePayload } from './backup.service.js';
import type { BackupModule } from './index.js';
import { repositoryPath } from './naming.js';

export interface PoolBackupPayload {
  poolId: string;
  policyId?: string | null;
  scheduledFor?: string;
  trigger?: string;
}

export interface HandlerRegistrar {
  registerHandler<P = unknown, R = unknown>(kind: string, handler: TaskHandler<P, R>, options?: HandlerOptions): void;
}

export function registerBackupHandlers(tasks: HandlerRegistrar, mod: BackupModule, service: BackupService): void {
  tasks.registerHandler<VmBackupPayload>(VM_BACKUP, (p, ctx) => mod.engine.backupVm(p, ctx), {
    // A worker that died mid-backup may have left the VM on its overlay: merge it back, as the
    // successor of the dead task's VM lock (no wait for its lease), with no new backup needed.
    recover: async (task, log) => {
      const vmId = (task.payload as VmBackupPayload | null)?.vmId;
      if (vmId) await mod.engine.recover(vmId, task.id, (level, message) => log(level, message));
    },
    retryInterrupted: true,
    notify: { event: 'backup' },
  });

  tasks.registerHandler<PoolBackupPayload>(
    POOL_BACKUP,
    async (p, ctx) => {
      const vms = await mod.lookup.eligibleVmsOfPool(p.poolId);
      const system = await mod.lookup.systemVmsOfPool(p.poolId);
      if (system.length > 0) {
        await ctx.log('info', `skipped ${system.length} CloudStack system VM(s), which CloudStack re-creates and Backroll never backs up: ${system.map((v) => `${v.vm.name}@${v.host.name}`).join(', ')}`);
      }
      if (vms.length === 0) {
        await ctx.log('warn', `pool ${p.poolId} has no backup-eligible VM on a connected host`);
        return { vms: 0, children: [] };
      }
      const children: NewChild[] = [];
      for (const { vm, host } of vms) {
        const t = await mod.lookup.target(vm.id, p.policyId ?? null).catch(() => null);
        children.push({
          kind: VM_BACKUP,
          payload: { vmId: vm.id, ...(p.policyId ? { policyId: p.policyId } : {}) },
          targetType: 'vm',
          targetId: vm.id,
          resources: { hostId: host.id, storageId: t?.storage.id ?? null },
        });
      }
      if (!ctx.spawnChildren) throw new Error('this job system cannot start child tasks');
      const ids = await ctx.spawnChildren(children);
      await ctx.log('info', `started ${ids.length} VM backup(s): ${vms.map((v) => `${v.vm.name}@${v.host.name}`).join(', ')}`);
      return { vms: ids.length, children: ids };
    },
    { notify: { event: 'backup' } },
  );

  tasks.registerHandler<RestorePointDeletePayload>(RESTORE_POINT_DELETE, async (p, ctx) => {
    const rp = await service.getRestorePoint(p.vmId, p.restorePointId);
    const vm = await mod.lookup.vm(p.vmId);
    return mod.locks.withVmLock(
      vm.id,
      `task:${ctx.taskId}`,
      async () => {
        const access = await mod.store.access(rp.repository, vm.uuid);
        if (access) {
          const present = new Set((await mod.borg.list(access, { signal: ctx.signal })).map((a) => a.name));
          const doomed = rp.archives.filter((a) => present.has(a));
          await ctx.log('info', `deleting ${doomed.length} archive(s) of restore point ${rp.id} (epoch ${rp.epoch}): ${doomed.join(', ')}`);
          await mod.borg.deleteArchives(access, doomed, { signal: ctx.signal });
          if (doomed.length > 0) await mod.compactions.deleted(access.repo, mod.clock.now());
          // The operator asked for the space: compact now, whatever the backups' interval.
          await mod.borg.compact(access, { signal: ctx.signal });
          await mod.compactions.compacted(access.repo, mod.clock.now());
        } else {
          await ctx.log('warn', `the repository ${rp.repository} is gone: only the index entry is removed`);
        }
        await mod.restorePoints.deleteByIds([rp.id]);
        return { restorePointId: rp.id, epoch: rp.epoch, archives: rp.archives };
      },
      { purpose: 'delete', leaseMs: undefined },
    );
  });

  tasks.registerHandler<RepositoryVerifyPayload>(
    REPOSITORY_VERIFY,
    async (p, ctx) => {
      const t = await mod.lookup.target(p.vmId);
      const repo = repositoryPath(t.storage.path, t.vm.name);
      return mod.locks.withVmLock(
        t.vm.id,
        `task:${ctx.taskId}`,
        async () => {
          const { access } = await service.repository(p.vmId);
          ctx.progress({ step: p.verifyData ? 'borg check --verify-data' : 'borg check' });
          await mod.borg.check(access, {
            verifyData: p.verifyData,
            signal: ctx.signal,
            onEvent: (e) => {
              if (e.type === 'log' && e.level !== 'debug') void ctx.log(e.level, `borg: ${e.message}`).catch(() => undefined);
              else if (e.type === 'progress' && e.total) ctx.progress({ percent: (100 * (e.current ?? 0)) / e.total });
            },
          });
          await ctx.log('info', `repository ${repo} is consistent${p.verifyData ? ' (all data verified)' : ''}`);
          return { repository: repo, verifyData: p.verifyData, ok: true };
        },
        { purpose: 'verify' },
      );
    },
    { notify: { event: 'verify' } },
  );
}
