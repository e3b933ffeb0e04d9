/**
 * Registers the restore task kind. One kind, `vm.restore`, with the mode in the payload:
 *   { vmId, restorePointId, mode: 'in-place' | 'new-vm' | 'directory', newName?, hostId?, start?, directory? }
 * Wired at start-up next to the backup module (see index.ts):
 *   registerRestoreHandlers(services.tasks, createRestoreModule({ db, backup, submit }).service)
 */
import type { TaskService } from '../tasks/task.service.js';
import type { RestorePayload } from './restore.model.js';
import { RESTORE_KIND, type RestoreService } from './restore.service.js';

export function registerRestoreHandlers(tasks: Pick<TaskService, 'registerHandler'>, restores: RestoreService): void {
  tasks.registerHandler<RestorePayload>(RESTORE_KIND, (payload, ctx) => restores.run(payload, ctx), {
    notify: { event: 'restore' },
    // A dead worker's restore: put originals back (or drop them if the VM runs on the restored disks), remove temporaries.
    recover: (task, log) => restores.recover(task.payload as RestorePayload, (m) => log('info', m), task.id),
    // Never retried automatically: a restore replaces disks; the operator decides.
    retryInterrupted: false,
  });
}
