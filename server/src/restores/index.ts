/**
 * The restore module's composition, on top of the backup module (same borg base dir, SSH
 * access to hosts, VM locks and repository store):
 *
 *   const restores = createRestoreModule({ db, backup, submit: (k, p, o) => services.tasks.submit(k, p, o) });
 *   registerRestoreHandlers(services.tasks, restores.service);   // kind vm.restore
 *   await restoreRoutes(v2, restores.service);                   // under /api/v2
 */
import type { Db } from '../db/database.js';
import { BorgReader } from '../adapters/borg/extract.js';
import { BorgErrorCode, borgError } from '../adapters/borg/borg-errors.js';
import { localImageTool } from '../adapters/qemu-img/check.js';
import type { BackupModule } from '../backups/index.js';
import type { SubmitOptions, TaskView } from '../tasks/task.service.js';
import { nodeRestoreFiles, type RestoreFiles } from './restore-files.js';
import { RestoreRepository } from './restore.repository.js';
import { RestoreService } from './restore.service.js';
import { RestorePreflight } from './restore-preflight.js';

export interface RestoreModuleDeps {
  db: Db;
  backup: Pick<BackupModule, 'dataDir' | 'runner' | 'hosts' | 'lookup' | 'locks' | 'store'> & Partial<Pick<BackupModule, 'engine' | 'cloudStack'>>;
  submit?(kind: string, payload: unknown, opts: SubmitOptions): Promise<TaskView>;
  files?: RestoreFiles;
  /** See RestoreServiceDeps.checkDirectoriesOnSubmit. */
  checkDirectoriesOnSubmit?: boolean;
  shutdownGraceMs?: number;
}

export function createRestoreModule(deps: RestoreModuleDeps) {
  const { backup } = deps;
  const service = new RestoreService({
    lookup: new RestoreRepository(deps.db),
    borg: new BorgReader({ baseDir: backup.dataDir, runner: backup.runner }),
    images: localImageTool(backup.runner),
    files: deps.files ?? nodeRestoreFiles,
    hostExec: (hostId) => async (argv, o) => backup.hosts.executor(await backup.lookup.host(hostId)).exec(argv, o),
    locks: backup.locks,
    mergeLeftoverOverlays: backup.engine ? (vmId, log) => backup.engine!.mergeLeftoverOverlays(vmId, log) : undefined,
    dropCheckpoints: backup.engine ? (vmId, log) => backup.engine!.dropCheckpoints(vmId, log) : undefined,
    repoAccess: async (rp, vm) => {
      const access = await backup.store.access(rp.repository, vm.uuid);
      if (!access) throw borgError(BorgErrorCode.REPOSITORY_NOT_FOUND, `no borg repository at ${rp.repository} (the restore point's repository is gone)`, { repository: rp.repository });
      return access;
    },
    submit: deps.submit,
    checkDirectoriesOnSubmit: deps.checkDirectoriesOnSubmit,
    shutdownGraceMs: deps.shutdownGraceMs,
    cloudStack: backup.cloudStack ?? undefined,
  });
  return { service, preflight: new RestorePreflight(deps.db, service, deps.files ?? nodeRestoreFiles) };
}

export type RestoreModule = ReturnType<typeof createRestoreModule>;
export { registerRestoreHandlers } from './restore.handlers.js';
export { restoreRoutes } from './restore.routes.js';
export { RESTORE_KIND } from './restore.service.js';
