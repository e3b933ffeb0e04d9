/**
 * The restore step sequences. The one rule: a restore never destroys the disk it replaces before
 * the new one is in place and verified. Each restored image is written to a temporary file in
 * the destination directory (same file system), checked, given the original's owner and mode,
 * and swapped in with an atomic rename; the original stays (hard link `<disk>.backroll-replaced-
 * <epoch>`) until the VM runs again. Any failure puts every original back and restarts the VM.
 */
import { randomUUID } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { BorgReader } from '../adapters/borg/extract.js';
import type { ImageTool } from '../adapters/qemu-img/check.js';
import { parseDomainXml } from '../adapters/libvirt/domain-xml.js';
import { unsafeBackingName } from '../backups/disk-image.js';
import { isOverlayPath, templatePath } from '../backups/naming.js';
import type { AppError } from '../errors.js';
import type { TaskContext } from '../tasks/task-context.js';
import { crashPoint } from '../tasks/crash-points.js';
import { ACTIVE_STATES, DomainControl, type CurrentDisk, type HostExec, type VmControl } from './domain-control.js';
import { CloudStackVmControl } from './cloudstack-vm-control.js';
import type { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { CloudStackVmErrorCode } from '../cloudstack/cloudstack-vm.rules.js';
import { AppError as Failure } from '../errors.js';
import { rewriteDomainXml } from './domain-xml-rewrite.js';
import { directoryFileNames, newDiskPath, percentOf, replacedPathOf, tmpPathOf } from './restore.model.js';
import { RestoreErrorCode, restoreError } from './restore.errors.js';
import type { FileOwner, RestoreFiles } from './restore-files.js';
import type { RestoreHost, RestorePointRow, RestoreVm } from './restore.repository.js';
import type { RestoreSource, SourceDisk } from './restore-source.js';

export interface RestoreEngineDeps {
  borg: BorgReader;
  images: ImageTool;
  files: RestoreFiles;
  /** Runs argv on a host (SSH): `(argv, o) => pool.exec(hostId, argv, o)`. */
  hostExec(hostId: string): HostExec;
  /** Time a guest gets to shut down (ACPI) before it is powered off. Default 120 s. */
  shutdownGraceMs?: number;
  /** Free space kept in reserve on top of the images. Default 64 MiB. */
  reserveBytes?: number;
  /** The pools' CloudStack connectors: CloudStack instances are stopped and started through CloudStack. */
  cloudStack?: Pick<CloudStackAccess, 'clientForPool' | 'settledInstance' | 'instance' | 'volumeDisks'>;
}

export interface InPlaceResult {
  mode: 'in-place';
  epoch: number;
  disks: Array<{ target: string; path: string; bytes: number; check: string }>;
  stoppedBy: 'already' | 'shutdown' | 'destroyed';
  restarted: boolean;
  backingFilesRestored: string[];
}
export interface NewVmResult {
  mode: 'new-vm';
  epoch: number;
  vm: { name: string; uuid: string; hostId: string; started: boolean };
  disks: Array<{ target: string; path: string; bytes: number }>;
  backingFilesRestored: string[];
}
export interface DirectoryResult {
  mode: 'directory';
  epoch: number;
  directory: string;
  files: string[];
}
export type RestoreResult = InPlaceResult | NewVmResult | DirectoryResult;

/** Bytes extracted of all disks, as task progress (percent, bytes, rate). */
class Meter {
  private done = 0;
  private first = true;
  private readonly started = Date.now();
  constructor(
    private readonly ctx: TaskContext,
    private readonly total: number,
  ) {}
  add(n: number, step: string): void {
    if (this.first) {
      this.first = false;
      crashPoint('restore.extract', this.ctx.taskId);
    }
    this.done += n;
    const secs = (Date.now() - this.started) / 1000;
    this.ctx.progress({
      percent: percentOf(this.done, this.total),
      bytesDone: this.done,
      bytesTotal: this.total,
      rateBytesPerSecond: secs > 0 ? Math.round(this.done / secs) : undefined,
      step,
    });
  }
}

/**
 * Written next to the first disk before an in-place restore stops a running VM, removed once it
 * runs again: the recovery of a restore whose worker died knows from it that the VM must run.
 */
export const wasRunningMarkerOf = (src: { epoch: number; disks: ReadonlyArray<{ path: string }> }): string | null =>
  src.disks[0] ? `${src.disks[0].path}.backroll-restore-${src.epoch}.was-running` : null;

/**
 * The restore point's disks placed onto the VM's current disks, matched by target: the path
 * written is always one of the VM's own disk files, never the item path inside an archive.
 * A disk of the restore point that the VM no longer has is refused (restore it as a new VM or
 * to a directory); a disk the VM has but the restore point lacks is left as it is.
 */
export function onVmDisks(vm: RestoreVm, src: RestoreSource, current: ReadonlyMap<string, CurrentDisk>): RestoreSource & { disks: Array<SourceDisk & { recordedPath: string }> } {
  const disks = src.disks.map((d) => {
    const cur = current.get(d.target);
    if (!cur) {
      throw restoreError(
        RestoreErrorCode.DISKS_CHANGED,
        `the restore point has disk ${d.target}, which VM ${JSON.stringify(vm.name)} no longer has (it has ${[...current.keys()].join(', ') || 'no disks'}): restore it as a new VM or to a directory`,
        { target: d.target, vmDisks: [...current.keys()] },
      );
    }
    if (cur.type !== 'file' || !cur.path || !path.isAbsolute(cur.path) || isOverlayPath(cur.path)) {
      throw restoreError(RestoreErrorCode.UNSUPPORTED_DISK, `disk ${d.target} of VM ${JSON.stringify(vm.name)} is ${cur.path ? `${cur.type} ${cur.path}` : `of type ${cur.type}`}: an in-place restore replaces plain disk files only; restore to a directory or as a new VM`, {
        target: d.target,
        path: cur.path,
      });
    }
    return { ...d, path: cur.path, recordedPath: d.path };
  });
  return { ...src, disks };
}

function throwIfCanceled(signal: AbortSignal): void {
  if (signal.aborted) throw restoreError(RestoreErrorCode.CANCELED, 'the restore was canceled; everything was put back as it was');
}

export class RestoreEngine {
  private readonly graceMs: number;
  private readonly reserve: number;

  constructor(private readonly deps: RestoreEngineDeps) {
    this.graceMs = deps.shutdownGraceMs ?? 120_000;
    this.reserve = deps.reserveBytes ?? 64 * 1024 * 1024;
  }

  control(host: RestoreHost): DomainControl {
    return new DomainControl(this.deps.hostExec(host.id), host.libvirtUri);
  }

  /**
   * Who stops and starts the VM: CloudStack's API for a CloudStack instance whose pool has a
   * connector (never virsh behind CloudStack's back), libvirt otherwise.
   */
  async vmControl(vm: RestoreVm, host: RestoreHost): Promise<VmControl> {
    const libvirt = this.control(host);
    const cs = this.deps.cloudStack;
    const info = vm.cloudStack ?? (vm.cloudStackManaged ? { id: vm.uuid } : null);
    if (!cs || !info || !host.poolId) return libvirt;
    const client = await cs.clientForPool(host.poolId);
    return client ? new CloudStackVmControl(client, cs, libvirt, info, vm.name) : libvirt;
  }

  // ---------------------------------------------------------------- in place

  async inPlace(ctx: TaskContext, vm: RestoreVm, host: RestoreHost, rp: RestorePointRow, src: RestoreSource): Promise<InPlaceResult> {
    const { files } = this.deps;
    const ctl = await this.vmControl(vm, host);
    const log = (m: string) => ctx.log('info', m);
    const state = await ctl.state(vm.uuid);
    const wasActive = ACTIVE_STATES.has(state);
    if (wasActive && ctl.via === 'libvirt' && (vm.cloudStackManaged || vm.cloudStack)) {
      throw new Failure('conflict', CloudStackVmErrorCode.NO_CONNECTOR, `VM ${JSON.stringify(vm.name)} is a running CloudStack instance and its pool has no CloudStack connector: Backroll stops and starts CloudStack instances only through CloudStack. Set the pool's connectorId, or stop the instance in CloudStack first`, { vmId: vm.id });
    }
    await log(`VM ${JSON.stringify(vm.name)} is ${state} (as ${ctl.via} reports it); restoring ${src.disks.length} disk(s) of epoch ${src.epoch} in place`);
    // Written only onto the VM's own disks: each one's path comes from its current definition.
    const current = await ctl.disks(vm.uuid);
    const placed = onVmDisks(vm, src, current);
    for (const d of placed.disks) if (d.path !== d.recordedPath) await log(`${d.target}: the VM's disk is now ${d.path} (the restore point has ${d.recordedPath})`);
    src = placed;
    const chains = await this.expectedChains(src, current);
    const formats = this.formatsInPlace(current, src);

    // Checks before touching anything.
    for (const d of src.disks) {
      if ((await files.deviceOf(path.dirname(d.path))) === null) {
        throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `the directory of disk ${d.target} (${path.dirname(d.path)}) does not exist on this worker`, { reason: 'missing', target: d.target });
      }
      if ((await files.kind(d.path)) === 'other') {
        throw restoreError(RestoreErrorCode.UNSUPPORTED_DISK, `disk ${d.target} (${d.path}) is not a regular file (a block device?): restore it to a directory or as a new VM`, { target: d.target, path: d.path });
      }
      const replaced = replacedPathOf(d.path, src.epoch);
      if (await files.exists(replaced)) {
        throw restoreError(RestoreErrorCode.LEFTOVER, `${replaced} is left from an earlier interrupted restore; check which disk is right, then remove it`, { files: [replaced] });
      }
    }
    await this.checkSpace(src.disks.map((d) => ({ dir: path.dirname(d.path), bytes: d.size })));

    interface Work {
      disk: SourceDisk;
      tmp: string;
      replaced: string;
      owner: FileOwner | null;
      kept: boolean;
      swapped: boolean;
      bytes: number;
      check: string;
    }
    const work: Work[] = src.disks.map((d) => ({ disk: d, tmp: tmpPathOf(d.path, src.epoch), replaced: replacedPathOf(d.path, src.epoch), owner: null, kept: false, swapped: false, bytes: 0, check: '' }));
    const created: string[] = [];
    const backing: string[] = [];
    let stoppedBy: InPlaceResult['stoppedBy'] = 'already';
    const marker = wasRunningMarkerOf(src);
    try {
      if (wasActive && marker) await files.writeFile(marker, `${ctx.taskId}\n`);
      // The VM stops while its new images are extracted and verified beside its disks (temporary
      // files: the disks in use are not touched before the swap), so the restore takes the longer
      // of the two, not their sum. The swap waits for the VM to be off.
      let stopping: Promise<void> | null = null;
      if (wasActive) {
        ctx.progress({ percent: 2, step: 'stopping the VM' });
        stopping = ctl.stop(vm.uuid, this.graceMs, log).then(async (how) => {
          stoppedBy = how;
          await log(`${how === 'shutdown' ? 'the VM shut down' : 'the VM was powered off'} (${ctl.via})`);
        });
        stopping.catch(() => undefined);
      }
      try {
        throwIfCanceled(ctx.signal);
        const meter = new Meter(ctx, src.disks.reduce((s, d) => s + d.size, 0));
        for (const w of work) {
          // A temporary file of ours from an interrupted run: it was never the VM's disk.
          await files.remove(w.tmp);
          created.push(w.tmp);
          w.bytes = await this.extractTo(ctx, src, w.disk, w.tmp, meter, formats.get(w.disk.target)!);
        }
        for (const w of work) {
          throwIfCanceled(ctx.signal);
          w.owner = (await files.ownerOf(w.disk.path)) ?? (await this.dirOwner(w.disk.path));
          const format = formats.get(w.disk.target)!;
          backing.push(...(await this.putBackBacking(ctx, w.tmp, w.disk.target, format, chains.get(w.disk.target)!, w.owner, rp.storagePath, src.epoch, created)));
          w.check = await this.verify(ctx, w.tmp, w.disk.target, format);
          await files.setOwner(w.tmp, w.owner);
        }
      } catch (err) {
        // The rollback restarts the VM: let a stop under way finish first.
        await stopping?.catch(() => undefined);
        throw err;
      }
      await stopping;
      throwIfCanceled(ctx.signal);

      ctx.progress({ percent: 93, step: 'swapping disks' });
      for (const w of work) {
        if (await files.exists(w.disk.path)) {
          await files.link(w.disk.path, w.replaced);
          w.kept = true;
        }
        await files.rename(w.tmp, w.disk.path);
        w.swapped = true;
        created.splice(created.indexOf(w.tmp), 1);
        await log(`${w.disk.target}: ${w.disk.path} restored${w.kept ? ` (the replaced disk is kept as ${path.basename(w.replaced)} until the VM runs)` : ''}`);
        if (w !== work.at(-1)) crashPoint('restore.between-swaps', ctx.taskId);
      }
      crashPoint('restore.before-start', ctx.taskId);

      if (wasActive) {
        ctx.progress({ percent: 96, step: 'starting the VM' });
        await this.startAndConfirm(ctl, vm.uuid);
        await log('the VM runs again on the restored disks');
      }
    } catch (err) {
      await ctx.log('error', `restore failed: ${(err as Error).message}; putting the original disks back`);
      // Restart whenever it ran before: a stop that failed half-way may still have stopped it.
      await this.rollbackInPlace(ctx, ctl, vm, work, created, wasActive);
      if (marker && wasActive) await files.remove(marker).catch(() => undefined);
      throw err;
    }
    for (const w of work) {
      if (w.kept) await files.remove(w.replaced);
    }
    if (marker && wasActive) await files.remove(marker);
    ctx.progress({ percent: 100, step: 'done' });
    return {
      mode: 'in-place',
      epoch: src.epoch,
      disks: work.map((w) => ({ target: w.disk.target, path: w.disk.path, bytes: w.bytes, check: w.check })),
      stoppedBy,
      restarted: wasActive,
      backingFilesRestored: backing,
    };
  }

  private async rollbackInPlace(
    ctx: TaskContext,
    ctl: VmControl,
    vm: RestoreVm,
    work: Array<{ disk: SourceDisk; replaced: string; kept: boolean; swapped: boolean }>,
    created: string[],
    restart: boolean,
  ): Promise<void> {
    const { files } = this.deps;
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        await ctx.log('error', `rollback: ${what} failed: ${(e as Error).message}`).catch(() => {});
      }
    };
    // A VM started on restored disks must not keep them open while the originals come back.
    if (work.some((w) => w.swapped)) {
      await step('stopping the VM', async () => {
        if (ACTIVE_STATES.has(await ctl.state(vm.uuid))) await ctl.powerOff(vm.uuid);
      });
    }
    for (const w of [...work].reverse()) {
      if (w.swapped && w.kept) await step(`putting ${w.disk.path} back`, () => files.rename(w.replaced, w.disk.path));
      else if (w.swapped) await step(`removing ${w.disk.path}`, () => files.remove(w.disk.path));
      else if (w.kept) await step(`removing the extra link ${w.replaced}`, () => files.remove(w.replaced));
    }
    for (const f of created) await step(`removing ${f}`, () => files.remove(f));
    if (restart) {
      await step('restarting the VM', async () => {
        if (!ACTIVE_STATES.has(await ctl.state(vm.uuid))) await ctl.start(vm.uuid);
      });
    }
    await ctx.log('warn', `rollback done: the original disks are in place${restart ? ' and the VM was restarted' : ''}`).catch(() => {});
  }

  /**
   * After a worker died mid-restore (task `interrupted`), decided from the files next to the
   * disks, never from whether the VM runs. Per disk: a kept original (`.backroll-replaced-`)
   * that is another file (inode) than the disk means that disk was swapped; the same file means
   * only the link was made (the disk is still the original). Then:
   *  - every disk swapped (each was verified before its swap): the restore is finished — the VM
   *    is started if it ran before (the `.was-running` marker), and the originals go once it runs;
   *  - some but not all swapped: the VM is stopped if something started it, every swapped disk
   *    gets its original back, and the VM runs again if it ran before — the kept originals are
   *    never deleted then;
   *  - none swapped: temporaries go, the VM runs again if it ran before.
   */
  async recoverInPlace(vm: RestoreVm, host: RestoreHost, src: RestoreSource, log: (m: string) => Promise<void>): Promise<void> {
    const { files } = this.deps;
    const ctl = await this.vmControl(vm, host);
    // The files of the restore are next to the VM's own disks (see inPlace), never at archive paths.
    src = onVmDisks(vm, src, await ctl.disks(vm.uuid));
    const marker = wasRunningMarkerOf(src);
    const wasRunning = marker !== null && (await files.exists(marker));
    const disks = [];
    for (const d of src.disks) {
      const tmp = tmpPathOf(d.path, src.epoch);
      const replaced = replacedPathOf(d.path, src.epoch);
      const hasTmp = await files.exists(tmp);
      const hasReplaced = await files.exists(replaced);
      // Swapped: the kept original is no longer the file at the disk's path (another inode).
      const hasDisk = await files.exists(d.path);
      disks.push({ d, tmp, replaced, hasTmp, hasReplaced, hasDisk, swapped: hasReplaced && hasDisk && !(await sameFile(replaced, d.path)) });
    }
    const swapped = disks.filter((x) => x.swapped);
    const active = () => ctl.state(vm.uuid).then((s) => ACTIVE_STATES.has(s));
    let complete = swapped.length > 0 && swapped.length === disks.length;
    if (complete && wasRunning && !(await active())) {
      try {
        await this.startAndConfirm(ctl, vm.uuid);
        await log('every disk had been swapped for its verified restored image: the VM was started on the restored disks');
      } catch (err) {
        await log(`the VM did not start on the restored disks (${(err as Error).message}): putting the originals back`);
        complete = false;
      }
    }
    if (complete) {
      for (const x of disks) {
        await files.remove(x.replaced);
        await log(`${x.d.target}: the restore had finished swapping; removed the kept original ${x.replaced}`);
      }
    } else {
      if (swapped.length > 0 && (await active())) {
        await ctl.powerOff(vm.uuid);
        await log('the VM ran on a partly restored set of disks: powered it off to put the originals back');
      }
      for (const x of disks) {
        if (x.swapped) {
          await files.rename(x.replaced, x.d.path);
          await log(`${x.d.target}: put the original disk back from ${x.replaced} (the restore did not finish; retry it)`);
        } else if (x.hasReplaced) {
          // Only the link was made: the disk is the very same file, the extra name goes (a vanished disk gets it back).
          if (x.hasDisk) await files.remove(x.replaced);
          else await files.rename(x.replaced, x.d.path);
          await log(`${x.d.target}: ${x.d.path} had not been swapped; dropped the extra link ${x.replaced}`);
        }
      }
    }
    for (const x of disks) {
      if (await files.exists(x.tmp)) {
        await files.remove(x.tmp);
        await log(`removed the unfinished ${x.tmp}`);
      }
      // borg's extraction directory (extractTo).
      if (await files.exists(`${x.tmp}.d`)) {
        await files.removeTree(`${x.tmp}.d`);
        await log(`removed the unfinished ${x.tmp}.d`);
      }
    }
    if (!complete && wasRunning && !(await active())) {
      await this.startAndConfirm(ctl, vm.uuid);
      await log('the VM runs again, on its original disks');
    }
    if (marker && wasRunning) await files.remove(marker);
  }

  /** Temporary files of an interrupted restore as a new VM or to a directory. */
  async recoverCopies(src: RestoreSource, paths: string[], log: (m: string) => Promise<void>): Promise<void> {
    for (const p of paths) {
      for (const f of [tmpPathOf(p, src.epoch), `${p}.tmp`]) {
        if (await this.deps.files.exists(f)) {
          await this.deps.files.remove(f);
          await log(`removed the unfinished ${f}`);
        }
        if (await this.deps.files.exists(`${f}.d`)) {
          await this.deps.files.removeTree(`${f}.d`);
          await log(`removed the unfinished ${f}.d`);
        }
      }
    }
  }

  // ---------------------------------------------------------------- new VM

  async asNewVm(
    ctx: TaskContext,
    vm: RestoreVm,
    target: RestoreHost,
    rp: RestorePointRow,
    src: RestoreSource,
    opts: { newName: string; directory?: string; start: boolean; sourceHost: RestoreHost },
  ): Promise<NewVmResult> {
    const { files } = this.deps;
    const ctl = this.control(target);
    const log = (m: string) => ctx.log('info', m);
    if (await ctl.exists(opts.newName)) {
      throw restoreError(RestoreErrorCode.TARGET_EXISTS, `host ${target.name} already has a VM named ${JSON.stringify(opts.newName)}; choose another name`, { newName: opts.newName });
    }
    let xml = src.domainXml;
    if (xml === null) {
      try {
        xml = await this.control(opts.sourceHost).inactiveXml(vm.uuid);
        await log('the restore point has no domain XML (BackROLL backup): using the current definition of the original VM');
      } catch (err) {
        throw restoreError(RestoreErrorCode.NO_DOMAIN_XML, 'the restore point has no domain XML and the original VM cannot be read; restore to a directory instead', undefined, err);
      }
    }
    const uuid = randomUUID();
    const xmlDisks = parseDomainXml(xml).disks;
    const current = await this.currentDisks(this.control(opts.sourceHost), vm).catch(() => new Map<string, CurrentDisk>());
    const chains = await this.expectedChains(src, current);
    const formatOf = (t: string, recorded: string | null) => recorded ?? xmlDisks.find((x) => x.target === t)?.format ?? 'raw';
    // Next to the disk the restore point recorded (or, BackROLL's, the VM's disk now), never in a directory an archive's item path names.
    const disks = src.disks.map((d) => {
      const beside = d.backingChain !== null ? d.path : current.get(d.target)?.path;
      if (!opts.directory && !beside) {
        throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `the restore point does not record where disk ${d.target} was, and VM ${JSON.stringify(vm.name)} has no disk ${d.target} now: give a directory for the new VM's disks`, { reason: 'missing', target: d.target });
      }
      return { disk: d, path: newDiskPath(beside ?? d.path, opts.newName, d.target, opts.directory) };
    });
    for (const d of disks) {
      if ((await files.deviceOf(path.dirname(d.path))) === null) {
        throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `directory ${path.dirname(d.path)} does not exist on this worker`, { reason: 'missing', directory: path.dirname(d.path) });
      }
      if (await files.exists(d.path)) throw restoreError(RestoreErrorCode.TARGET_EXISTS, `${d.path} already exists; choose another name or directory`, { path: d.path });
    }
    const newXml = rewriteDomainXml(xml, { name: opts.newName, uuid, diskPaths: Object.fromEntries(disks.map((d) => [d.disk.target, d.path])) });
    await this.checkSpace(disks.map((d) => ({ dir: path.dirname(d.path), bytes: d.disk.size })));

    const created: string[] = [];
    const backing: string[] = [];
    const results: NewVmResult['disks'] = [];
    let defined = false;
    try {
      const meter = new Meter(ctx, src.disks.reduce((s, d) => s + d.size, 0));
      for (const d of disks) {
        const tmp = tmpPathOf(d.path, src.epoch);
        await files.remove(tmp);
        created.push(tmp);
        const bytes = await this.extractTo(ctx, src, d.disk, tmp, meter, formatOf(d.disk.target, d.disk.format));
        const sameDir = path.dirname(d.path) === path.dirname(d.disk.path);
        const owner = (sameDir ? await files.ownerOf(d.disk.path) : null) ?? (await this.dirOwner(d.path));
        const format = formatOf(d.disk.target, d.disk.format);
        backing.push(...(await this.putBackBacking(ctx, tmp, d.disk.target, format, chains.get(d.disk.target)!, owner, rp.storagePath, src.epoch, created)));
        await this.verify(ctx, tmp, d.disk.target, format);
        await files.setOwner(tmp, owner);
        // link, not rename: never replace a file that appeared meanwhile.
        await files.link(tmp, d.path);
        created.push(d.path);
        await files.remove(tmp);
        created.splice(created.indexOf(tmp), 1);
        results.push({ target: d.disk.target, path: d.path, bytes });
      }
      throwIfCanceled(ctx.signal);
      ctx.progress({ percent: 94, step: 'defining the VM' });
      await ctl.define(newXml);
      defined = true;
      await log(`VM ${JSON.stringify(opts.newName)} (${uuid}) defined on host ${target.name}`);
      if (opts.start) {
        ctx.progress({ percent: 97, step: 'starting the VM' });
        await this.startAndConfirm(ctl, uuid);
        await log('the new VM runs');
      }
    } catch (err) {
      await ctx.log('error', `restore as a new VM failed: ${(err as Error).message}; removing what was created`);
      if (defined) {
        await ctl.state(uuid).then(
          async (s) => {
            if (ACTIVE_STATES.has(s)) await ctl.destroy(uuid);
            await ctl.undefine(uuid);
          },
          () => undefined,
        ).catch((e: unknown) => ctx.log('error', `could not undefine ${uuid}: ${(e as Error).message}`));
      }
      for (const f of created) await files.remove(f).catch(() => undefined);
      throw err;
    }
    ctx.progress({ percent: 100, step: 'done' });
    return { mode: 'new-vm', epoch: src.epoch, vm: { name: opts.newName, uuid, hostId: target.id, started: opts.start }, disks: results, backingFilesRestored: backing };
  }

  // ---------------------------------------------------------------- directory

  async toDirectory(ctx: TaskContext, src: RestoreSource, directory: string): Promise<DirectoryResult> {
    const { files } = this.deps;
    await this.checkDirectory(directory);
    const names = directoryFileNames(src.disks);
    await this.checkSpace([{ dir: directory, bytes: src.disks.reduce((s, d) => s + d.size, 0) }]);
    const created: string[] = [];
    try {
      const meter = new Meter(ctx, src.disks.reduce((s, d) => s + d.size, 0));
      for (const d of src.disks) {
        const final = path.join(directory, names.get(d.target)!);
        const tmp = `${final}.tmp`;
        created.push(tmp);
        await this.extractTo(ctx, src, d, tmp, meter, d.format ?? 'raw');
        await files.link(tmp, final);
        created.push(final);
        await files.remove(tmp);
        created.splice(created.indexOf(tmp), 1);
      }
      if (src.domainXml !== null) {
        await files.writeFile(path.join(directory, 'domain.xml'), src.domainXml);
        created.push(path.join(directory, 'domain.xml'));
      }
      if (src.manifest !== null) {
        await files.writeFile(path.join(directory, 'backroll.json'), `${JSON.stringify(src.manifest, null, 2)}\n`);
        created.push(path.join(directory, 'backroll.json'));
      }
    } catch (err) {
      for (const f of created) await files.remove(f).catch(() => undefined);
      throw err;
    }
    const list = created.map((f) => path.basename(f));
    await ctx.log('info', `restored into ${directory}: ${list.join(', ')}`);
    ctx.progress({ percent: 100, step: 'done' });
    return { mode: 'directory', epoch: src.epoch, directory, files: list };
  }

  async checkDirectory(directory: string): Promise<void> {
    const problem = await this.deps.files.checkEmptyWritableDir(directory);
    if (problem === null) return;
    const why: Record<string, string> = {
      not_absolute: 'is not an absolute path',
      missing: 'does not exist on the worker',
      not_directory: 'is not a directory',
      not_empty: 'is not empty',
      not_writable: 'is not writable by the worker',
    };
    throw restoreError(RestoreErrorCode.DIRECTORY_INVALID, `directory ${directory} ${why[problem]}; give an existing, empty, writable directory`, { reason: problem, directory });
  }

  // ---------------------------------------------------------------- shared steps

  /**
   * A qcow2 image: `borg extract --sparse` into a private directory beside `file` (`<file>.d`,
   * same file system), then the file is checked (a regular file of the listed size), given the
   * worker's ownership and mode 0600 (the archive's owner, mode, ACLs, xattrs and flags are never
   * applied), linked as `file` and fsync'ed. borg writes the file itself: the bytes do not pass
   * through this process (half the time of a pipe into Node here, measured). borg makes holes of
   * whole chunks that are zeros: 64 KiB for the incremental writer's archives (fixed grid), up to
   * 8 MiB for `borg create`'s; a qcow2 file holds few zero runs (only allocated clusters).
   * Other formats (raw images, whose zero runs are what keeps them thin; unknown formats) go
   * through `borg extract --stdout` into writeSparse, which makes a hole of every 64 KiB block of
   * zeros. Progress, warnings and errors of borg to the task.
   */
  private async extractTo(ctx: TaskContext, src: RestoreSource, d: SourceDisk, file: string, meter: Meter, format: string): Promise<number> {
    const { files } = this.deps;
    await ctx.log('info', `${d.target}: extracting ${d.archive} (${d.size} bytes) to ${file}`);
    const started = Date.now();
    if (format !== 'qcow2') return this.extractThroughPipe(ctx, src, d, file, meter, started);
    const dir = `${file}.d`;
    const components = d.itemPath.split('/').filter((c) => c !== '' && c !== '.');
    const out = path.join(dir, components.at(-1) ?? '');
    // A directory of ours from an interrupted run.
    await files.removeTree(dir);
    await files.makePrivateDir(dir);
    let reported = 0;
    const step = `${d.target}: borg extract`;
    try {
      meter.add(0, step);
      const x = this.deps.borg.extractInto(src.access, d.archive, d.itemPath, dir, components.length - 1, {
        signal: ctx.signal,
        onEvent: (e) => {
          if (e.type === 'progress' && e.msgid === 'extract' && e.current !== null && e.current > reported) {
            meter.add(e.current - reported, step);
            reported = e.current;
          } else if (e.type === 'log' && (e.level === 'warn' || e.level === 'error')) void ctx.log(e.level, `borg: ${e.message}`);
          else if (e.type === 'text') void ctx.log('warn', `borg: ${e.message}`);
        },
      });
      await x.done;
      const bytes = await files.sizeOf(out);
      if (bytes === null) {
        throw restoreError(RestoreErrorCode.VERIFY_FAILED, `${d.target}: borg extract of ${d.archive} left no regular file ${path.basename(out)}`, { target: d.target });
      }
      if (bytes > reported) meter.add(bytes - reported, step);
      if (bytes !== d.size) {
        throw restoreError(RestoreErrorCode.VERIFY_FAILED, `${d.target}: extracted ${bytes} bytes, the archive lists ${d.size}`, { target: d.target, bytes, expected: d.size });
      }
      await files.setOwner(out, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mode: 0o600 });
      // link, not rename: never replace a file that is there.
      await files.link(out, file);
      await files.fsyncFile(file);
      await ctx.log('info', `${d.target}: extracted ${bytes} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return bytes;
    } finally {
      await files.removeTree(dir);
    }
  }

  /** `borg extract --stdout` into writeSparse (holes for every 64 KiB block of zeros). */
  private async extractThroughPipe(ctx: TaskContext, src: RestoreSource, d: SourceDisk, file: string, meter: Meter, started: number): Promise<number> {
    const x = this.deps.borg.extract(src.access, d.archive, d.itemPath, {
      signal: ctx.signal,
      onEvent: (e) => {
        if (e.type === 'log' && (e.level === 'warn' || e.level === 'error')) void ctx.log(e.level, `borg: ${e.message}`);
        else if (e.type === 'text') void ctx.log('warn', `borg: ${e.message}`);
      },
    });
    let bytes: number;
    try {
      bytes = await this.deps.files.writeSparse(x.stdout, file, (n) => meter.add(n, `${d.target}: borg extract`));
    } catch (err) {
      x.abort();
      await x.done.catch(() => undefined);
      throw err;
    }
    await x.done;
    if (bytes !== d.size) {
      throw restoreError(RestoreErrorCode.VERIFY_FAILED, `${d.target}: extracted ${bytes} bytes, the archive lists ${d.size}`, { target: d.target, bytes, expected: d.size });
    }
    await ctx.log('info', `${d.target}: extracted ${bytes} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return bytes;
  }

  /**
   * qemu-img check of a qcow2 (raw images have nothing to check). It reads the image's metadata
   * (header, L1/L2 tables, refcounts), not its data clusters: 0.4 MB of a fully allocated 1 GiB
   * image, 1.3 MB of a 4 GiB preallocated one, 0.01–0.05 s (measured with strace). The data was
   * verified while it was extracted: borg checks every chunk against its id (hash or MAC).
   */
  private async verify(ctx: TaskContext, file: string, target: string, format: string): Promise<string> {
    if (format !== 'qcow2') return `${format}: not checked`;
    const c = await this.deps.images.check(file, format);
    if (!c.ok) {
      throw restoreError(RestoreErrorCode.VERIFY_FAILED, `${target}: the restored image fails qemu-img check: ${c.message}`, { target, exitCode: c.exitCode, corruptions: c.corruptions });
    }
    await ctx.log('info', `${target}: qemu-img check: ${c.message}`);
    return c.message;
  }

  /**
   * A backing file (template) missing from its place is copied back from
   * `<storage>/template/<file name>`, its checksum checked against `<file name>.sha256`.
   * Follows the chain, which must be `chain` (what the restore point recorded for the disk, or
   * the VM's disk has now): a restored image naming any other backing file is refused, so an
   * archive cannot point a VM at, or make Backroll write, a file of its choosing.
   * Returns the files put back (also appended to `created`).
   */
  private async putBackBacking(ctx: TaskContext, image: string, target: string, format: string, chain: readonly string[], owner: FileOwner, storagePath: string, epoch: number, created: string[]): Promise<string[]> {
    const { files, images } = this.deps;
    const restored: string[] = [];
    let current = image;
    let currentFormat = format;
    for (let depth = 0; depth < 16 && currentFormat === 'qcow2'; depth++) {
      const info = await images.info(current, currentFormat);
      if (!info.backingFile) break;
      const backing = info.backingFile;
      if (unsafeBackingName(backing) !== null || chain[depth] !== backing) {
        throw restoreError(
          RestoreErrorCode.MANIFEST_MISMATCH,
          `${target}: the restored image names ${JSON.stringify(backing.slice(0, 200))} as its backing file, but the restore point ${chain[depth] ? `recorded ${JSON.stringify(chain[depth])}` : 'recorded no backing file'} there (and the VM's disk has none other); it is not restored`,
          { target, backingFile: backing.slice(0, 1000), expected: chain[depth] ?? null },
        );
      }
      // Never probe: an unrecorded backing format is treated as raw (no further chain).
      currentFormat = info.backingFormat ?? 'raw';
      if (await files.exists(backing)) {
        current = backing;
        continue;
      }
      const template = templatePath(storagePath, backing);
      const expected = (await files.readText(`${template}.sha256`))?.trim().split(/\s+/)[0]?.toLowerCase();
      if (!(await files.exists(template)) || !expected || !/^[0-9a-f]{64}$/.test(expected)) {
        throw restoreError(RestoreErrorCode.BACKING_MISSING, `backing file ${backing} is missing and ${template} (with its .sha256) is not in the storage`, { backingFile: backing, template });
      }
      if ((await files.deviceOf(path.dirname(backing))) === null) {
        throw restoreError(RestoreErrorCode.BACKING_MISSING, `backing file ${backing} is missing and its directory does not exist`, { backingFile: backing });
      }
      const tmp = tmpPathOf(backing, epoch);
      await files.remove(tmp);
      created.push(tmp);
      await files.copy(template, tmp);
      const actual = await files.sha256(tmp);
      if (actual !== expected) {
        throw restoreError(RestoreErrorCode.VERIFY_FAILED, `template ${template} does not match its checksum (${actual} ≠ ${expected})`, { template });
      }
      await files.setOwner(tmp, { ...owner, mode: owner.mode | 0o444 });
      await files.link(tmp, backing);
      created.push(backing);
      await files.remove(tmp);
      created.splice(created.indexOf(tmp), 1);
      restored.push(backing);
      await ctx.log('info', `backing file ${backing} was missing: put back from ${template} (sha256 verified)`);
      current = backing;
    }
    return restored;
  }

  /** The VM's disks as its persistent definition has them now, by target. */
  private async currentDisks(ctl: DomainControl, vm: RestoreVm): Promise<Map<string, CurrentDisk>> {
    return ctl.disks(vm.uuid);
  }

  /**
   * Per disk, the backing chain a restored image may have: the one the restore point recorded,
   * else (BackROLL restore points) the chain of the VM's current disk of that target, read from
   * its qcow2 header (formats never probed, plain absolute paths only), else none.
   */
  private async expectedChains(src: RestoreSource, current: Map<string, CurrentDisk>): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const d of src.disks) {
      if (d.backingChain !== null) {
        out.set(d.target, d.backingChain);
        continue;
      }
      const chain: string[] = [];
      const cur = current.get(d.target);
      let file = cur?.type === 'file' ? cur.path : null;
      let format = cur?.format ?? 'raw';
      for (let depth = 0; file && format === 'qcow2' && depth < 16; depth++) {
        const info = await this.deps.images.info(file, format).catch(() => null);
        if (!info?.backingFile || unsafeBackingName(info.backingFile) !== null || !info.backingFormat) break;
        chain.push(info.backingFile);
        file = info.backingFile;
        format = info.backingFormat;
      }
      out.set(d.target, chain);
    }
    return out;
  }

  /** Free space for every image on its file system (the replaced disks stay meanwhile). */
  private async checkSpace(needs: Array<{ dir: string; bytes: number }>): Promise<void> {
    const byDev = new Map<number, { dir: string; bytes: number }>();
    for (const n of needs) {
      const dev = (await this.deps.files.deviceOf(n.dir)) ?? -1;
      const e = byDev.get(dev) ?? { dir: n.dir, bytes: 0 };
      e.bytes += n.bytes;
      byDev.set(dev, e);
    }
    for (const { dir, bytes } of byDev.values()) {
      const free = await this.deps.files.freeBytes(dir);
      if (free !== null && free < bytes + this.reserve) {
        throw restoreError(RestoreErrorCode.STORAGE_FULL, `${dir} has ${free} bytes free; the restore needs ${bytes} (+${this.reserve} reserve)`, { directory: dir, freeBytes: free, neededBytes: bytes });
      }
    }
  }

  /** Formats of the disks: as recorded, else as the VM's current definition says, else raw (libvirt's default). */
  private formatsInPlace(current: ReadonlyMap<string, CurrentDisk>, src: RestoreSource): Map<string, string> {
    const out = new Map<string, string>();
    for (const d of src.disks) out.set(d.target, d.format ?? current.get(d.target)?.format ?? 'raw');
    return out;
  }

  private async dirOwner(file: string): Promise<FileOwner> {
    const o = await this.deps.files.ownerOf(path.dirname(file));
    return { uid: o?.uid ?? 0, gid: o?.gid ?? 0, mode: 0o600 };
  }

  private async startAndConfirm(ctl: VmControl, uuid: string): Promise<void> {
    try {
      await ctl.start(uuid);
      const s = await ctl.state(uuid);
      if (s !== 'running' && s !== 'idle') throw new Error(`state after start is "${s}"`);
    } catch (err) {
      throw restoreError(RestoreErrorCode.START_FAILED, `the VM did not start: ${(err as AppError).message}`, undefined, err);
    }
  }
}

/** Whether two paths name the same file (device and inode); false when either is missing. */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([lstat(a), lstat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}
