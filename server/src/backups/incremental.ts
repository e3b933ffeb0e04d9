/**
 * Changed-block tracking for running VMs (docs/incremental.md): libvirt's pull-mode backup
 * job with a checkpoint per restore point; each disk is written by the image writer as a
 * complete preallocated-qcow2 image, re-using the base archive's chunks where the dirty
 * bitmap since the base's checkpoint says nothing changed.
 *
 * The base is the newest restore point of the VM (in this repository) that still exists,
 * has a checkpoint libvirt knows (or can redefine from the XML Backroll kept), and the same
 * disks (path, virtual size). Anything else is a full read, with the reason logged.
 * The job always ends (domjobabort) and its host directory (NBD socket, scratch files, XML)
 * is removed, on success, failure and cancellation; after a kill -9 the pre-flight clean-up
 * (`cleanupLeftovers`) does it, and deletes checkpoints no restore point records.
 */
import path from 'node:path';
import type { Borg, RepoAccess } from '../adapters/borg/borg.js';
import type { ConfigArchiveResult, ConfigArchiveSpec, ImageWriter, ImageWriteResult } from '../adapters/borg/image-writer.js';
import { DomainBackupJobs, checkpointXml, pullBackupXml } from '../adapters/libvirt/backup-job.js';
import type { ProcessRunner } from '../adapters/process/process-runner.js';
import type { CommandRunner } from '../adapters/qemu-img/qemu-img.js';
import { AppError } from '../errors.js';
import type { TaskContext, TaskLogLevel } from '../tasks/task-context.js';
import { crashPoint } from '../tasks/crash-points.js';
import type { RestorePointRecord, RestorePointRepository } from './restore-point.repository.js';

type Log = (level: TaskLogLevel, message: string) => Promise<void>;

/** borg versions the image writer was verified with (it uses borg's own classes). */
export const VERIFIED_BORG_VERSIONS: readonly string[] = ['1.2.4'];

export const JOB_DIR = /^\.backroll-job-\d+$/;
export const CHECKPOINT = /^backroll-\d+$/;

export interface PullDiskPlan {
  target: string;
  path: string;
  archive: string;
  format: string;
  virtualSize: number;
  backingFiles: number;
  readonly: boolean;
}

export interface PullDiskResult extends ImageWriteResult {
  target: string;
  archive: string;
}

/**
 * How the worker reaches a unix socket the host serves (an NBD export): at the same path
 * (the VM storage is mounted on the worker, or the host is this machine), or through a local
 * socket forwarded over the host's pinned SSH connection.
 */
export interface SocketReach {
  readonly via: 'mount' | 'ssh';
  open(hostSocket: string): Promise<{ path: string; close(): Promise<void> }>;
}

export const sameMachineReach: SocketReach = { via: 'mount', open: async (p) => ({ path: p, close: async () => undefined }) };

export interface PullBackupResult {
  disks: PullDiskResult[];
  mode: 'full' | 'incremental';
  reason: string | null;
  /** null when the read did not create a checkpoint (tracking off, shut-off VM). */
  checkpointName: string | null;
  checkpointXml: string | null;
  /** Epoch of the full read this chain started from (the base's, or this backup's own for a full read). */
  chainFullEpoch: number;
  bytesToRead: number;
  bytesRead: number;
  /** The config archive, when the last disk's image writer wrote it (`run`'s `config`). */
  configArchive?: ConfigArchiveResult;
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}

/** "incremental: 12 MiB of 1 GiB read" (pure). */
export function readSummary(mode: string, bytesRead: number, diskSize: number): string {
  return `${mode}: ${fmtBytes(bytesRead)} of ${fmtBytes(diskSize)} read`;
}

export class PullBackup {
  constructor(
    private readonly deps: { borg: Borg; writer: ImageWriter; runner: ProcessRunner; restorePoints: RestorePointRepository },
  ) {}

  private verifiedBorg: Promise<string | null> | null = null;

  /** Why these disks cannot be read through a pull-mode job; null when they can (pure checks + borg version). `onHost`: qemu-img over SSH. */
  async unsupportedReason(disks: readonly PullDiskPlan[], live: boolean, onHost?: CommandRunner): Promise<string | null> {
    if (!live) return 'the VM is not running (a shut-off VM is read whole from its disk file)';
    for (const d of disks) {
      if (d.readonly) return `disk ${d.target} is read-only or shareable (not tracked)`;
      if (d.format !== 'qcow2') return `disk ${d.target} is ${d.format}: only qcow2 v3 disks can hold a dirty bitmap`;
      if (d.backingFiles > 0) return `disk ${d.target} has a backing file (read with its chain by borg create)`;
      const compat = await this.compat(d.path, onHost);
      if (compat !== '1.1') return `disk ${d.target} is qcow2 ${compat === '0.10' ? 'v2 (compat 0.10)' : `compat ${compat ?? 'unknown'}`}: persistent dirty bitmaps need qcow2 v3`;
    }
    return this.writerUnavailable();
  }

  /**
   * Why these disks cannot be read through the host at all (the worker reads over SSH: a
   * backup job or qemu-nbd, then the image writer); null when they can. The archive holds a
   * complete qcow2 image, so only qcow2 disks without backing file qualify.
   */
  async sshUnsupportedReason(disks: readonly PullDiskPlan[]): Promise<string | null> {
    for (const d of disks) {
      if (d.readonly) return `disk ${d.target} is read-only or shareable`;
      if (d.format !== 'qcow2') return `disk ${d.target} is ${d.format} (the archive of a disk read through the host is a qcow2 image)`;
      if (d.backingFiles > 0) return `disk ${d.target} has a backing file (its chain is archived with borg create from the mount)`;
    }
    return this.writerUnavailable();
  }

  private async writerUnavailable(): Promise<string | null> {
    if (!this.deps.writer.python()) return `cannot tell which Python runs ${this.deps.borg.borgCommand}`;
    this.verifiedBorg ??= this.deps.borg.version().then(
      (v) => {
        const ver = /(\d+\.\d+\.\d+\S*)/.exec(v)?.[1] ?? v;
        return VERIFIED_BORG_VERSIONS.includes(ver) ? null : `borg ${ver} is not a version the incremental path was verified with (${VERIFIED_BORG_VERSIONS.join(', ')})`;
      },
      (e: unknown) => `borg --version failed: ${(e as Error).message}`,
    );
    return this.verifiedBorg;
  }

  private async compat(file: string, onHost?: CommandRunner): Promise<string | null> {
    const argv = ['qemu-img', 'info', '-U', '--output=json', '-f', 'qcow2', '--', file];
    const r = onHost ? await onHost(argv, { timeoutMs: 60_000 }) : await this.deps.runner.run(argv[0]!, argv.slice(1), { timeoutMs: 60_000 });
    if (r.code !== 0) return null;
    try {
      const o = JSON.parse(r.stdout) as { 'format-specific'?: { data?: { compat?: string } } };
      return o['format-specific']?.data?.compat ?? null;
    } catch {
      return null;
    }
  }

  /**
   * The base restore point for an incremental read, or the reason for a full one. Redefines
   * the base's checkpoint from the kept XML when libvirt lost it (transient domain, host
   * restart); a checkpoint that cannot be redefined is forgotten.
   */
  async chooseBase(
    c: {
      vmId: string;
      uuid: string;
      repo: string;
      disks: readonly PullDiskPlan[];
      archives: ReadonlySet<string>;
      fullEveryDays: number;
      nowEpoch: number;
      jobs: DomainBackupJobs;
      /** The domain's checkpoint names when the caller just listed them (the pre-flight under the VM's lock). */
      knownCheckpoints?: readonly string[] | null;
    },
    log: Log,
  ): Promise<{ base: RestorePointRecord | null; reason: string | null }> {
    const all = (await this.deps.restorePoints.listByVm(c.vmId)).filter((rp) => rp.repository === c.repo && rp.readMode);
    const candidates = all.filter((rp) => rp.checkpointName && rp.checkpointXml);
    if (candidates.length === 0) return { base: null, reason: 'no earlier restore point with a checkpoint (first backup with changed-block tracking)' };
    const days = c.fullEveryDays;
    if (days <= 0) return { base: null, reason: 'the policy reads everything at every backup (full_every_days 0)' };
    const known = new Set(c.knownCheckpoints ?? (await c.jobs.checkpoints(c.uuid)));
    let reason: string | null = null;
    for (const rp of candidates) {
      const missing = rp.archives.filter((a) => !c.archives.has(a));
      if (missing.length > 0) {
        reason ??= `the base restore point ${rp.epoch} was pruned or deleted (${missing.join(', ')} missing)`;
        continue;
      }
      const same = c.disks.every((d) => rp.disks.some((x) => x.target === d.target && x.path === d.path && x.virtualSize === d.virtualSize)) && rp.disks.length === c.disks.length;
      if (!same) {
        reason ??= `the disks changed since restore point ${rp.epoch} (resized, replaced or added)`;
        continue;
      }
      if (!known.has(rp.checkpointName!)) {
        try {
          await c.jobs.redefine(c.uuid, rp.checkpointXml!);
          await log('info', `libvirt had lost checkpoint ${rp.checkpointName}: redefined it from the XML Backroll kept`);
        } catch (err) {
          reason ??= `checkpoint ${rp.checkpointName} is missing in libvirt and cannot be redefined (${(err as Error).message})`;
          await this.deps.restorePoints.dropCheckpoints(c.vmId, [rp.id]);
          continue;
        }
      }
      const fullEpoch = rp.chainFullEpoch ?? rp.epoch;
      if (c.nowEpoch - fullEpoch >= days * 86400) {
        return { base: null, reason: `periodic full read (the last full read was ${Math.floor((c.nowEpoch - fullEpoch) / 86400)} days ago; the policy reads everything every ${days} days)` };
      }
      return { base: rp, reason: null };
    }
    return { base: null, reason: reason ?? 'no usable checkpoint' };
  }

  /** Runs the pull-mode job and writes one archive per disk. The job and its files are gone when this returns or throws. */
  async run(
    c: {
      vmId: string;
      uuid: string;
      jobs: DomainBackupJobs;
      access: RepoAccess;
      disks: readonly PullDiskPlan[];
      epoch: number;
      compression: string;
      base: RestorePointRecord | null;
      fullReason: string | null;
      /** Called with each archive once written (to delete them when a later step fails). */
      onArchive: (archive: string) => void;
      reach?: SocketReach;
      /** false: no checkpoint (changed-block tracking off): a full read through the job only. */
      track?: boolean;
      /**
       * The restore point's config archive, asked once every disk is read: the last disk's image
       * writer writes it in its own process (no second borg start). Absent: the caller writes it.
       */
      config?: (read: PullBackupResult) => Promise<ConfigArchiveSpec>;
    },
    ctx: TaskContext,
    signal: AbortSignal,
    log: Log,
  ): Promise<PullBackupResult> {
    const reach = c.reach ?? sameMachineReach;
    const track = c.track ?? true;
    const jobDir = path.join(path.dirname(c.disks[0]!.path), `.backroll-job-${c.epoch}`);
    const socket = path.join(jobDir, 'nbd.sock');
    if (Buffer.byteLength(socket) > 100) throw new AppError('invalid', 'BACKUP.SOCKET_PATH_TOO_LONG', `the NBD socket path ${socket} is longer than a unix socket allows`);
    if (/,/.test(socket)) throw new AppError('invalid', 'BACKUP.SOCKET_PATH_INVALID', `the NBD socket path ${socket} contains a comma`);
    const cpName = `backroll-${c.epoch}`;
    const targets = c.disks.map((d) => d.target);
    let base = c.base;
    let reason = c.fullReason;
    let begun = false;
    let cpCreated = false;
    let ok = false;
    let local: { path: string; close(): Promise<void> } | null = null;
    await c.jobs.mkdir(jobDir);
    try {
      const scratch = c.disks.map((d) => ({ target: d.target, scratch: path.join(jobDir, `${d.target}.scratch.qcow2`) }));
      await c.jobs.writeHostFile(path.join(jobDir, 'checkpoint.xml'), checkpointXml({ name: cpName, description: `Backroll restore point ${c.epoch}`, targets, excluded: [] }));
      const begin = async (incremental: string | null) => {
        await c.jobs.writeHostFile(path.join(jobDir, 'backup.xml'), pullBackupXml({ socket, disks: scratch, excluded: [], incremental }));
        await c.jobs.begin(c.uuid, path.join(jobDir, 'backup.xml'), track ? path.join(jobDir, 'checkpoint.xml') : null);
        begun = true;
        cpCreated = track;
      };
      if (base) {
        try {
          await begin(base.checkpointName!);
        } catch (err) {
          // An inconsistent bitmap (QEMU exited uncleanly) or a checkpoint that vanished: read everything.
          reason = `the incremental job from checkpoint ${base.checkpointName} failed (${(err as Error).message}): the bitmap is not trustworthy`;
          await this.deps.restorePoints.dropCheckpoints(c.vmId, [base.id]);
          base = null;
          await c.jobs.abort(c.uuid).catch(() => false);
          await begin(null);
        }
      } else {
        await begin(null);
      }
      await log('info', base ? `pull-mode backup job started: incremental since checkpoint ${base.checkpointName} (restore point ${base.epoch}), new checkpoint ${cpName}` : `pull-mode backup job started: full read (${reason})${track ? `, new checkpoint ${cpName}` : ', no checkpoint'}`);
      const cpXml = track ? await c.jobs.checkpointXml(c.uuid, cpName) : null;
      local = await reach.open(socket);
      if (reach.via === 'ssh') await log('info', `reading the job's NBD export over the host's SSH connection (${socket} on the host → ${local.path} on this worker)`);
      crashPoint('backup.pull-reading', ctx.taskId);
      const results: PullDiskResult[] = [];
      const total = c.disks.reduce((s, d) => s + d.virtualSize, 0);
      let doneBefore = 0;
      const summary = (disks: PullDiskResult[]): PullBackupResult => {
        const mode = disks.every((r) => r.mode === 'incremental') ? 'incremental' : 'full';
        return {
          disks,
          mode,
          reason: mode === 'full' ? (reason ?? disks.find((r) => r.reason)?.reason ?? null) : null,
          checkpointName: track ? cpName : null,
          checkpointXml: cpXml,
          chainFullEpoch: mode === 'incremental' && base ? (base.chainFullEpoch ?? base.epoch) : c.epoch,
          bytesToRead: disks.reduce((s, r) => s + r.bytesToRead, 0),
          bytesRead: disks.reduce((s, r) => s + r.bytesRead, 0),
        };
      };
      let configArchive: PullBackupResult['configArchive'];
      for (const [i, d] of c.disks.entries()) {
        signal.throwIfAborted();
        const baseArchive = base?.disks.find((x) => x.target === d.target)?.archive ?? null;
        const config = c.config;
        const last = i === c.disks.length - 1;
        const r = await this.writeDisk(
          c,
          d,
          {
            baseArchive,
            bitmap: base && baseArchive ? `qemu:dirty-bitmap:backup-${d.target}` : null,
            socket: local.path,
            doneBefore,
            total,
            thenConfig: last && config ? (disk) => config(summary([...results, { ...disk, target: d.target, archive: d.archive }])) : undefined,
          },
          ctx,
          signal,
          log,
        );
        results.push({ ...r, target: d.target, archive: d.archive });
        if (r.config) configArchive = r.config;
        doneBefore += d.virtualSize;
      }
      ok = true;
      return { ...summary(results), ...(configArchive ? { configArchive } : {}) };
    } finally {
      await local?.close().catch(() => undefined);
      if (begun) {
        await c.jobs.abort(c.uuid).then(
          () => log('info', 'backup job ended (domjobabort)'),
          (e: unknown) => log('error', `could not end the backup job: ${(e as Error).message}; the next backup (or recovery) retries`),
        );
      }
      await c.jobs.removeDir(jobDir).catch((e: unknown) => log('error', `could not remove ${jobDir} on the host: ${(e as Error).message}`));
      // A failed backup's checkpoint is never a base (no restore point records it); delete it
      // so its bitmap does not linger (its changes merge into the parent checkpoint).
      if (!ok && cpCreated) await c.jobs.deleteCheckpoint(c.uuid, cpName).catch((e: unknown) => log('warn', `could not delete checkpoint ${cpName}: ${(e as Error).message}`));
    }
  }

  /** One disk through the image writer, with progress and log lines; the archive is reported to `onArchive`. */
  private async writeDisk(
    c: { access: RepoAccess; compression: string; epoch: number; onArchive: (archive: string) => void },
    d: PullDiskPlan,
    o: { baseArchive: string | null; bitmap: string | null; socket: string; doneBefore: number; total: number; thenConfig?: (disk: ImageWriteResult) => Promise<ConfigArchiveSpec> },
    ctx: TaskContext,
    signal: AbortSignal,
    log: Log,
  ): Promise<ImageWriteResult> {
    ctx.progress({ step: `${d.target}: ${o.bitmap ? 'incremental' : 'full'} read`, bytesDone: o.doneBefore, bytesTotal: o.total, percent: o.total > 0 ? (100 * o.doneBefore) / o.total : 0 });
    const r = await this.deps.writer.write(c.access, {
      archive: d.archive,
      baseArchive: o.baseArchive,
      bitmap: o.bitmap,
      itemPath: d.path.replace(/^\/+/, ''),
      compression: c.compression,
      timestamp: new Date(c.epoch * 1000),
      socket: o.socket,
      exportName: d.target,
      virtualSize: d.virtualSize,
      signal,
      onProgress: (p) => {
        const frac = p.bytesToRead > 0 ? p.bytesRead / p.bytesToRead : 1;
        const done = o.doneBefore + frac * d.virtualSize;
        ctx.progress({ step: `${d.target}: ${readSummary(p.mode, p.bytesRead, d.virtualSize)} (${fmtBytes(p.bytesToRead)} to read)`, bytesDone: p.bytesRead, bytesTotal: p.bytesToRead, percent: o.total > 0 ? (100 * done) / o.total : 100 });
      },
      onLog: (level, m) => void log(level, `${d.target}: ${m}`).catch(() => undefined),
      // Each archive as soon as it is committed: a later failure deletes it with the rest.
      onWritten: (archive) => c.onArchive(archive),
      ...(o.thenConfig ? { thenConfig: o.thenConfig } : {}),
    });
    if (r.reason && r.mode === 'full') await log('warn', `${d.target}: full read: ${r.reason}`);
    await log('info', `${d.target}: ${readSummary(r.mode, r.bytesRead, r.diskSize)} (${fmtBytes(r.bytesToRead)} to read); archive ${d.archive}: ${r.originalSize} bytes, ${r.deduplicatedSize} new, ${r.durationSeconds.toFixed(1)} s`);
    if (r.phases) await log('debug', `${d.target}: image writer, seconds since start: ${Object.entries(r.phases).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (r.config) await log('info', `config archive ${r.config.archive} written by the same process: ${r.config.originalSize} bytes, ${r.config.deduplicatedSize} new`);
    return r;
  }

  /**
   * A shut-off VM (no backup job possible): each disk is served read-only by `qemu-nbd` on the
   * host — which also keeps QEMU from starting the VM on it meanwhile — and written by the image
   * writer as a complete image (a full read; no tracking without a running QEMU). The servers and
   * the job directory are gone when this returns or throws.
   */
  async runOffline(
    c: {
      jobs: DomainBackupJobs;
      access: RepoAccess;
      disks: readonly PullDiskPlan[];
      epoch: number;
      compression: string;
      reason: string;
      onArchive: (archive: string) => void;
      reach: SocketReach;
    },
    ctx: TaskContext,
    signal: AbortSignal,
    log: Log,
  ): Promise<PullBackupResult> {
    const jobDir = path.join(path.dirname(c.disks[0]!.path), `.backroll-job-${c.epoch}`);
    const servers: Array<{ pidFile: string; socket: string }> = [];
    const locals: Array<{ path: string; close(): Promise<void> }> = [];
    await c.jobs.mkdir(jobDir);
    try {
      const results: PullDiskResult[] = [];
      const total = c.disks.reduce((s, d) => s + d.virtualSize, 0);
      let doneBefore = 0;
      for (const d of c.disks) {
        signal.throwIfAborted();
        const socket = path.join(jobDir, `${d.target}.sock`);
        if (Buffer.byteLength(socket) > 100) throw new AppError('invalid', 'BACKUP.SOCKET_PATH_TOO_LONG', `the NBD socket path ${socket} is longer than a unix socket allows`);
        const pidFile = path.join(jobDir, `${d.target}.nbd.pid`);
        await c.jobs.startNbdServer({ file: d.path, format: d.format, socket, exportName: d.target, pidFile });
        servers.push({ pidFile, socket });
        crashPoint('backup.pull-reading', ctx.taskId);
        const local = await c.reach.open(socket);
        locals.push(local);
        await log('info', `${d.target}: served read-only by qemu-nbd on the host${c.reach.via === 'ssh' ? `, read over the host's SSH connection` : ''} (full read: ${c.reason})`);
        const r = await this.writeDisk(c, d, { baseArchive: null, bitmap: null, socket: local.path, doneBefore, total }, ctx, signal, log);
        results.push({ ...r, target: d.target, archive: d.archive });
        doneBefore += d.virtualSize;
      }
      return {
        disks: results,
        mode: 'full',
        reason: c.reason,
        checkpointName: null,
        checkpointXml: null,
        chainFullEpoch: c.epoch,
        bytesToRead: results.reduce((s, r) => s + r.bytesToRead, 0),
        bytesRead: results.reduce((s, r) => s + r.bytesRead, 0),
      };
    } finally {
      for (const l of locals) await l.close().catch(() => undefined);
      for (const s of servers) {
        await c.jobs.stopNbdServer(s.pidFile, s.socket).catch((e: unknown) => log('error', `could not stop qemu-nbd (${s.pidFile}): ${(e as Error).message}; the next backup (or recovery) stops it`));
      }
      await c.jobs.removeDir(jobDir).catch((e: unknown) => log('error', `could not remove ${jobDir} on the host: ${(e as Error).message}`));
    }
  }

  /**
   * Pre-flight after a crash: ends a backup job a dead worker left, removes its job
   * directories, and deletes Backroll checkpoints no restore point records (a failed backup's).
   */
  async cleanupLeftovers(
    c: { vmId: string | null; uuid: string; live: boolean; diskPaths: readonly string[]; jobs: DomainBackupJobs; listDir?: (dir: string) => Promise<string[]> },
    log: Log,
  ): Promise<string[] | null> {
    const listDir = c.listDir ?? ((d: string) => c.jobs.listDir(d));
    const dirs = new Set<string>();
    for (const dir of new Set(c.diskPaths.map((p) => path.dirname(p)))) {
      for (const name of await listDir(dir)) if (JOB_DIR.test(name)) dirs.add(path.join(dir, name));
    }
    if (dirs.size > 0 && c.live && (await c.jobs.hasBackupJob(c.uuid).catch(() => false))) {
      await c.jobs.abort(c.uuid);
      await log('warn', 'a previous backup left a backup job running: ended it (domjobabort)');
    }
    for (const d of dirs) {
      // A shut-off VM's read (runOffline) leaves qemu-nbd servers holding the image lock.
      for (const name of await c.jobs.listDir(d)) {
        const m = /^(.+)\.nbd\.pid$/.exec(name);
        if (m && (await c.jobs.stopNbdServer(path.join(d, name), path.join(d, `${m[1]}.sock`)).catch(() => false))) await log('warn', `stopped the qemu-nbd a previous backup left serving ${m[1]}`);
      }
      await c.jobs.removeDir(d);
      await log('info', `removed the leftover backup job directory ${d}`);
    }
    if (c.vmId === null) return null;
    let names: string[];
    try {
      names = await c.jobs.checkpoints(c.uuid);
    } catch {
      return null;
    }
    const recorded = new Set((await this.deps.restorePoints.listByVm(c.vmId)).map((rp) => rp.checkpointName).filter((n): n is string => !!n));
    const left = new Set(names);
    for (const n of names.filter((x) => CHECKPOINT.test(x) && !recorded.has(x))) {
      try {
        await c.jobs.deleteCheckpoint(c.uuid, n);
        left.delete(n);
        await log('info', `deleted checkpoint ${n}: no restore point records it (a failed or deleted backup)`);
      } catch (err) {
        await log('warn', `could not delete checkpoint ${n}: ${(err as Error).message}`);
      }
    }
    // What libvirt knows now: the backup that follows chooses its base from it without asking again.
    return [...left];
  }
}
