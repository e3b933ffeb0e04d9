/**
 * Restores: validate a request and submit a `vm.restore` task; run it on a worker under the
 * VM's lock; stream one disk of a restore point for download.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { RepoAccess } from '../adapters/borg/borg.js';
import type { BorgReader } from '../adapters/borg/extract.js';
import type { TaskContext, TaskLogLevel } from '../tasks/task-context.js';
import type { SubmitOptions, TaskView } from '../tasks/task.service.js';
import { RestoreEngine, type RestoreEngineDeps, type RestoreResult } from './restore-engine.js';
import { directoryFileNames, newDiskPath, type RestoreMode, type RestorePayload } from './restore.model.js';
import { RestoreErrorCode, restoreError } from './restore.errors.js';
import type { RestoreHost, RestoreLookup, RestorePointRow, RestoreVm } from './restore.repository.js';
import { loadSource } from './restore-source.js';

export const RESTORE_KIND = 'vm.restore';

/** The VM lock of src/locks/vm-lock.ts: one mutating operation per VM, cluster-wide. */
export interface VmLocks {
  withVmLock<T>(vmId: string, owner: string, fn: (lock: { signal: AbortSignal }) => Promise<T>, opts?: { purpose?: string }): Promise<T>;
}

export interface RestoreServiceDeps extends RestoreEngineDeps {
  lookup: RestoreLookup;
  borg: BorgReader;
  locks: VmLocks;
  /** How to open the restore point's repository (RepositoryStore.access: encryption, passphrase). */
  repoAccess(rp: RestorePointRow, vm: RestoreVm): Promise<RepoAccess>;
  /**
   * The backup's pre-flight clean-up (BackupEngine.mergeLeftoverOverlays), run under the lock
   * before an in-place restore: a VM left on a Backroll overlay is merged back onto its base
   * disks first, so the restore never swaps a base out from under an overlay.
   */
  mergeLeftoverOverlays?(vmId: string, log: (level: TaskLogLevel, message: string) => Promise<void>): Promise<void>;
  /**
   * Drops the VM's changed-block-tracking checkpoints (BackupEngine.dropCheckpoints) before an
   * in-place restore replaces its disks: their bitmaps describe the old disks, so the next
   * backup must read everything (docs/incremental.md).
   */
  dropCheckpoints?(vmId: string, log: (level: TaskLogLevel, message: string) => Promise<void>): Promise<void>;
  /** Task submission (TaskService.submit). */
  submit?(kind: string, payload: unknown, opts: SubmitOptions): Promise<TaskView>;
  /**
   * Check a directory request on submit too (the API runs where the workers run: embedded).
   * Default true; distributed deployments whose API machines lack the storage set false.
   */
  checkDirectoriesOnSubmit?: boolean;
}

export interface RestoreRequest {
  restorePointId: string;
  mode: RestoreMode;
  newName?: string;
  hostId?: string;
  start?: boolean;
  directory?: string;
}

export interface DiskDownload {
  fileName: string;
  size: number;
  stream: Readable;
  /** Stops borg (client gone). */
  abort(): void;
  done: Promise<void>;
}

const MODES: readonly RestoreMode[] = ['in-place', 'new-vm', 'directory'];

export class RestoreService {
  readonly engine: RestoreEngine;

  constructor(private readonly deps: RestoreServiceDeps) {
    this.engine = new RestoreEngine(deps);
  }

  /** Validates and submits the task (202 with it). */
  async request(vmId: string, req: RestoreRequest, startedBy: string | null): Promise<TaskView> {
    const payload = await this.validate(vmId, req);
    if (!this.deps.submit) throw new Error('RestoreService has no task submission wired');
    const vm = (await this.deps.lookup.vm(vmId))!;
    const rp = (await this.deps.lookup.restorePoint(vmId, req.restorePointId))!;
    return this.deps.submit(RESTORE_KIND, payload, {
      target: { type: 'vm', id: vmId },
      resources: { hostId: payload.hostId ?? vm.hostId, storageId: rp.storageId },
      startedBy,
    });
  }

  async validate(vmId: string, req: RestoreRequest): Promise<RestorePayload> {
    const vm = await this.deps.lookup.vm(vmId);
    if (!vm) throw restoreError(RestoreErrorCode.VM_NOT_FOUND, `no virtual machine with id ${vmId}`, { id: vmId });
    const rp = await this.deps.lookup.restorePoint(vmId, req.restorePointId);
    if (!rp) throw restoreError(RestoreErrorCode.RESTORE_POINT_NOT_FOUND, `VM ${vm.name} has no restore point ${req.restorePointId}`, { id: req.restorePointId });
    if (!MODES.includes(req.mode)) throw restoreError(RestoreErrorCode.OPTIONS_INVALID, `mode must be one of ${MODES.join(', ')}`);
    const extra = (names: Array<keyof RestoreRequest>) => {
      const given = names.filter((n) => req[n] !== undefined);
      if (given.length > 0) throw restoreError(RestoreErrorCode.OPTIONS_INVALID, `${given.join(', ')} ${given.length > 1 ? 'do' : 'does'} not apply to mode ${req.mode}`, { options: given });
    };
    const payload: RestorePayload = { vmId, restorePointId: rp.id, mode: req.mode };
    if (req.mode === 'in-place') {
      extra(['newName', 'hostId', 'directory', 'start']);
    } else if (req.mode === 'new-vm') {
      const name = req.newName;
      // libvirt refuses '/' in names; control characters would only make trouble in files and logs.
      if (name === undefined || name.trim() === '' || name !== name.trim() || name.length > 200 || /[/\x00-\x1f\x7f]/.test(name)) {
        throw restoreError(RestoreErrorCode.NEW_NAME_INVALID, 'mode new-vm needs newName: 1–200 characters, no "/", no control characters, no leading/trailing spaces');
      }
      if (name === vm.name) throw restoreError(RestoreErrorCode.NEW_NAME_INVALID, `newName must differ from the original's name "${vm.name}"`);
      if (req.hostId !== undefined && !(await this.deps.lookup.host(req.hostId))) {
        throw restoreError(RestoreErrorCode.HOST_NOT_FOUND, `no host with id ${req.hostId}`, { id: req.hostId });
      }
      if (req.directory !== undefined && !path.isAbsolute(req.directory)) {
        throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `directory ${req.directory} is not an absolute path`, { reason: 'not_absolute', directory: req.directory });
      }
      Object.assign(payload, { newName: name, hostId: req.hostId ?? vm.hostId, start: req.start ?? false }, req.directory !== undefined ? { directory: path.normalize(req.directory) } : {});
    } else {
      extra(['newName', 'hostId', 'start']);
      if (req.directory === undefined) throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, 'mode directory needs directory', { reason: 'missing' });
      if (this.deps.checkDirectoriesOnSubmit ?? true) await this.engine.checkDirectory(req.directory);
      else if (!path.isAbsolute(req.directory)) throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `directory ${req.directory} is not an absolute path`, { reason: 'not_absolute' });
      payload.directory = path.normalize(req.directory);
    }
    return payload;
  }

  /** The `vm.restore` task handler. */
  async run(payload: RestorePayload, ctx: TaskContext): Promise<RestoreResult> {
    const { vm, host, rp } = await this.resolve(payload.vmId, payload.restorePointId);
    return this.deps.locks.withVmLock(vm.id, `task:${ctx.taskId}`, async (lock) => {
      // Canceled, or the lock lost: stop (and roll back) either way.
      const c = withSignal(ctx, AbortSignal.any([ctx.signal, lock.signal]));
      return this.runLocked(payload, c, vm, host, rp);
    }, { purpose: 'restore' });
  }

  private async runLocked(payload: RestorePayload, ctx: TaskContext, vm: RestoreVm, host: RestoreHost, rp: RestorePointRow): Promise<RestoreResult> {
    {
      ctx.progress({ percent: 1, step: 'reading the restore point' });
      const src = await loadSource(this.deps.borg, await this.deps.repoAccess(rp, vm), rp, ctx.signal);
      await ctx.log('info', `restore point ${rp.id}: repository ${rp.repository}, ${src.disks.map((d) => `${d.target} (${d.archive})`).join(', ')}${src.configArchive ? `, ${src.configArchive}` : ', no config archive'}`);
      switch (payload.mode) {
        case 'in-place':
          if (this.deps.mergeLeftoverOverlays) await this.deps.mergeLeftoverOverlays(vm.id, (level, message) => ctx.log(level, message));
          if (this.deps.dropCheckpoints) await this.deps.dropCheckpoints(vm.id, (level, message) => ctx.log(level, message));
          return this.engine.inPlace(ctx, vm, host, rp, src);
        case 'new-vm': {
          const target = payload.hostId ? await this.deps.lookup.host(payload.hostId) : host;
          if (!target) throw restoreError(RestoreErrorCode.HOST_NOT_FOUND, `no host with id ${payload.hostId}`);
          return this.engine.asNewVm(ctx, vm, target, rp, src, { newName: payload.newName!, directory: payload.directory, start: payload.start ?? false, sourceHost: host });
        }
        case 'directory':
          return this.engine.toDirectory(ctx, src, payload.directory!);
      }
    }
  }

  /**
   * Recovery of an interrupted `vm.restore` (HandlerOptions.recover): see RestoreEngine.recoverInPlace.
   * It takes over the VM lock of the interrupted task `taskId` as its successor (that lock is stale).
   */
  async recover(payload: RestorePayload, log: (m: string) => Promise<void>, taskId?: string): Promise<void> {
    const { vm, host, rp } = await this.resolve(payload.vmId, payload.restorePointId);
    await this.deps.locks.withVmLock(vm.id, taskId ? `recovery:task:${taskId}` : 'recovery:vm.restore', async () => {
      const src = await loadSource(this.deps.borg, await this.deps.repoAccess(rp, vm), rp);
      if (payload.mode === 'in-place') return this.engine.recoverInPlace(vm, host, src, log);
      if (payload.mode === 'directory') {
        const names = directoryFileNames(src.disks);
        return this.engine.recoverCopies(src, src.disks.map((d) => path.join(payload.directory!, names.get(d.target)!)), log);
      }
      // new-vm: the copy's disks are only kept once it was defined; temporary files go.
      return this.engine.recoverCopies(src, src.disks.map((d) => newDiskPath(d.path, payload.newName!, d.target, payload.directory)), log);
    }, { purpose: 'restore recovery' });
  }

  /** One disk image of a restore point, streamed from borg. */
  async download(vmId: string, restorePointId: string, target: string): Promise<DiskDownload> {
    const { vm, rp } = await this.resolve(vmId, restorePointId);
    const access = await this.deps.repoAccess(rp, vm);
    // Only the disk archives: the config archive is not needed to stream a disk.
    const src = await loadSource(this.deps.borg, access, rp, undefined, { config: false });
    const disk = src.disks.find((d) => d.target === target);
    if (!disk) {
      throw restoreError(RestoreErrorCode.DISK_NOT_FOUND, `restore point ${rp.id} has no disk ${target}; it has ${src.disks.map((d) => d.target).join(', ')}`, { target });
    }
    const x = this.deps.borg.extract(access, disk.archive, disk.itemPath);
    return { fileName: path.basename(disk.path), size: disk.size, stream: x.stdout, abort: x.abort, done: x.done };
  }

  private async resolve(vmId: string, rpId: string): Promise<{ vm: RestoreVm; host: RestoreHost; rp: RestorePointRow }> {
    const vm = await this.deps.lookup.vm(vmId);
    if (!vm) throw restoreError(RestoreErrorCode.VM_NOT_FOUND, `no virtual machine with id ${vmId}`, { id: vmId });
    const rp = await this.deps.lookup.restorePoint(vmId, rpId);
    if (!rp) throw restoreError(RestoreErrorCode.RESTORE_POINT_NOT_FOUND, `VM ${vm.name} has no restore point ${rpId}`, { id: rpId });
    const host = await this.deps.lookup.host(vm.hostId);
    if (!host) throw restoreError(RestoreErrorCode.HOST_NOT_FOUND, `the host of VM ${vm.name} is gone`, { id: vm.hostId });
    return { vm, host, rp };
  }
}

function withSignal(ctx: TaskContext, signal: AbortSignal): TaskContext {
  return {
    taskId: ctx.taskId,
    startedBy: ctx.startedBy,
    signal,
    log: (level, message) => ctx.log(level, message),
    progress: (p) => ctx.progress(p),
  };
}
