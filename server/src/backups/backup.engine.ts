/**
 * One VM backup, as the `vm.backup` task handler runs it (see ARCHITECTURE.md, data flow):
 * lock → pre-flight clean-up → external snapshot (running VM) → borg create of each frozen
 * base file + the config archive → block-commit back (always, in the error path too) →
 * restore point in the database → prune → compact.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Borg, RepoAccess } from '../adapters/borg/borg.js';
import { CreateProgressTracker, type BorgEvent } from '../adapters/borg/log-json.js';
import { parseDomainXml, type DomainDisk, type DomainInfo } from '../adapters/libvirt/domain-xml.js';
import { DomainSnapshots } from '../adapters/libvirt/snapshots.js';
import { LibvirtErrorCode } from '../adapters/libvirt/libvirt-errors.js';
import { DomainBackupJobs } from '../adapters/libvirt/backup-job.js';
import { Virsh, type DomainState } from '../adapters/libvirt/virsh.js';
import type { ProcessRunner } from '../adapters/process/process-runner.js';
import type { Clock } from '../clock.js';
import type { HostTable, PolicyTable, VirtualMachineTable } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { VmLocks } from '../locks/vm-lock.js';
import type { TaskContext, TaskLogLevel } from '../tasks/task-context.js';
import { crashPoint } from '../tasks/crash-points.js';
import { VERSION } from '../version.js';
import type { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { asDomainDisk } from '../cloudstack/cloudstack-access.js';
import { CloudStackVmErrorCode, isStopped, parseVmInfo, type CloudStackVmInfo } from '../cloudstack/cloudstack-vm.rules.js';
import { toBool } from '../db/errors.js';
import type { BackupLookup } from './backup.lookup.js';
import { imageChain, type ImageInfo } from './disk-image.js';
import type { HostAccess } from './host-access.js';
import { CHECKPOINT, readSummary, sameMachineReach, type PullBackup, type PullBackupResult, type PullDiskPlan, type SocketReach } from './incremental.js';
import type { CommandRunner } from '../adapters/qemu-img/qemu-img.js';
import type { SshExecutor } from '../adapters/ssh/ssh-client.js';
import { forwardUnixSocket } from '../adapters/ssh/unix-forward.js';
import { configArchiveName, diskArchiveName, groupByEpoch, isOverlayPath, overlayPath, overlaysOfDisk, repositoryPath } from './naming.js';
import type { RepositoryStore } from './repository-store.js';
import type { RestorePointDisk, RestorePointRecord, RestorePointRepository } from './restore-point.repository.js';
import { pruneRestorePoints } from './retention.js';
import { compactionDecision, DEFAULT_COMPACT_INTERVAL_HOURS, type CompactionLedger } from './compaction.js';

export interface VmBackupPayload {
  vmId: string;
  policyId?: string | null;
}

export interface VmBackupResult {
  restorePointId: string;
  epoch: number;
  repository: string;
  archives: string[];
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
  durationMs: number;
  pruned: number[];
}

export interface BackupEngineDeps {
  clock: Clock;
  dataDir: string;
  borg: Borg;
  runner: ProcessRunner;
  hosts: HostAccess;
  locks: VmLocks;
  lookup: BackupLookup;
  restorePoints: RestorePointRepository;
  store: RepositoryStore;
  /** Changed-block tracking (pull-mode backup jobs + the image writer); docs/incremental.md. */
  pull: PullBackup;
  /** VM lock lease. Default: VmLocks' (the default task lease, 30 s). */
  lockLeaseMs?: number;
  /** When each repository was compacted (compaction.ts). */
  compactions: CompactionLedger;
  /** Minimum time between two compactions of a repository by backups. Default 24 h; 0: whenever archives were deleted. */
  compactIntervalMs?: number;
  /** The pools' CloudStack connectors: VMs CloudStack stopped are backed up from their volumes. */
  cloudStack?: Pick<CloudStackAccess, 'requireClient' | 'settledInstance' | 'volumeDisks'>;
}

type Log = (level: TaskLogLevel, message: string) => Promise<void>;

interface ReadInfo {
  mode: 'full' | 'incremental';
  reason: string | null;
  bytesToRead: number;
  bytesRead: number;
  checkpointName: string | null;
  checkpointXml: string | null;
  chainFullEpoch: number;
}

const LIVE: ReadonlySet<DomainState> = new Set(['running', 'idle', 'paused']);

interface PlannedDisk {
  disk: DomainDisk;
  path: string;
  chain: ImageInfo[];
  size: number;
  archive: string;
  /** Overlay to create while the VM runs; null when the disk is not snapshotted (read-only, shareable). */
  overlay: string | null;
}

interface Domain {
  virsh: Virsh;
  ops: DomainSnapshots;
  jobs: DomainBackupJobs;
  /** qemu-img (and other read-only looks) on the host, over SSH. */
  onHost: CommandRunner;
  exec: SshExecutor;
}

export class BackupEngine {
  constructor(private readonly deps: BackupEngineDeps) {}

  private domain(host: HostTable): Domain {
    const exec = this.deps.hosts.executor(host);
    return {
      virsh: Virsh.overSsh(exec, host.libvirt_uri),
      ops: new DomainSnapshots((argv, o) => exec.exec(argv, o), host.libvirt_uri),
      jobs: new DomainBackupJobs((argv, o) => exec.exec(argv, o), host.libvirt_uri),
      onHost: (argv, o) => exec.exec(argv, o),
      exec,
    };
  }

  /**
   * Whether this backup reads the disks through the host (NBD over the pinned SSH connection)
   * rather than from the VM storage mounted on the worker at the host's path. Host setting
   * `disk_access`: ssh, mount, or auto (default): mount when every disk is readable here.
   */
  private async readsOverSsh(host: HostTable, disks: readonly DomainDisk[], log: Log): Promise<boolean> {
    const mode = host.disk_access ?? 'auto';
    if (mode === 'ssh') {
      await log('info', `host ${host.name} is set to read disks over SSH: no mount needed on this worker`);
      return true;
    }
    if (mode === 'mount') return false;
    for (const d of disks) {
      if (d.type !== 'file' || !d.path) continue;
      try {
        await fs.access(d.path, fs.constants.R_OK);
      } catch (err) {
        await log('info', `${d.target}: ${d.path} is not readable on this worker (${(err as NodeJS.ErrnoException).code}): reading the disks through host ${host.name} over SSH (host disk access: auto)`);
        return true;
      }
    }
    return false;
  }

  /** How the worker reaches an NBD socket on the host: the same path, or a forward over SSH. */
  private reach(dom: Domain, viaSsh: boolean): SocketReach {
    if (!viaSsh) return sameMachineReach;
    const open = dom.exec.openUnixStream?.bind(dom.exec);
    if (!open) throw new AppError('unavailable', 'BACKUP.SSH_READ_UNSUPPORTED', 'this host connection cannot forward unix sockets');
    return {
      via: 'ssh',
      open: async (hostSocket) => {
        const f = await forwardUnixSocket((p) => open(p), hostSocket, path.join(this.deps.dataDir, 'tmp'));
        return { path: f.localPath, close: () => f.close() };
      },
    };
  }

  /** The `vm.backup` handler. */
  async backupVm(payload: VmBackupPayload, ctx: TaskContext): Promise<VmBackupResult> {
    const { vm, host, policy, storage } = await this.deps.lookup.target(payload.vmId, payload.policyId);
    const log: Log = (level, message) => ctx.log(level, message);
    return this.deps.locks.withVmLock(
      vm.id,
      `task:${ctx.taskId}`,
      async (lock) => {
        const signal = AbortSignal.any([ctx.signal, lock.signal]);
        const started = Date.now();
        const dom = this.domain(host);
        // A VM CloudStack stopped is not in libvirt: its volumes are read from the primary storage, like a shut-off VM's disks.
        const stopped = await this.cloudStackStopped(vm, host, signal);
        let inactiveXml: string | null = null;
        let info: { name: string; disks: DomainDisk[] };
        let state: DomainState;
        let knownCheckpoints: string[] | null = null;
        if (stopped) {
          const volumes = await stopped.access.volumeDisks(stopped.client, stopped.instance, { check: true, signal });
          info = { name: vm.name, disks: volumes.map(asDomainDisk) };
          state = 'shut off';
          await log('info', `${vm.name} is stopped in CloudStack (instance ${stopped.info.id}), so libvirt does not have it: backing up its volumes ${volumes.map((v) => `${v.volumeName} (${v.type})`).join(', ')} from the primary storage`);
        } else {
          const seen = await this.preflight(dom, vm.uuid, log, vm.id);
          signal.throwIfAborted();
          knownCheckpoints = seen.checkpoints;
          inactiveXml = await dom.virsh.domainXml(vm.uuid, { inactive: true });
          // What the pre-flight read is still true when it changed nothing (the VM's lock is held); else read again.
          info = seen.unchanged ? seen.info : parseDomainXml(await dom.virsh.domainXml(vm.uuid));
          state = seen.unchanged ? seen.state : await dom.virsh.domainState(vm.uuid);
        }
        signal.throwIfAborted();
        const live = LIVE.has(state);
        // A VM CloudStack stopped is read from the primary storage mounted here (its volumes are checked there).
        const viaSsh = stopped ? false : await this.readsOverSsh(host, info.disks, log);
        if (viaSsh) {
          // What the domain says is enough to refuse before anything is written (the repository included).
          const early = await this.deps.pull.sshUnsupportedReason(
            info.disks.map((d) => ({ target: d.target, path: d.path ?? '', archive: '', format: d.format ?? 'raw', virtualSize: 0, backingFiles: d.backingChain.length, readonly: d.readonly || d.shareable })),
          );
          if (early !== null) throw sshReadUnsupported(info.name, host, vm.id, early);
        }
        const repo = repositoryPath(storage.path, info.name);
        const access = await this.deps.store.ensure(repo, { uuid: vm.uuid, name: info.name }, policy.encryption === 'none' ? 'none' : 'repokey-blake2', (m) => log('info', m));
        const existing = await this.deps.borg.list(access, { signal });
        const lastEpoch = Math.max(0, (await this.deps.restorePoints.maxEpoch(vm.id)) ?? 0, ...groupByEpoch(existing.map((a) => a.name)).map((g) => g.epoch));
        const epoch = Math.max(Math.floor(this.deps.clock.now().getTime() / 1000), lastEpoch + 1);
        const disks = await this.plan(info.disks, epoch, live, viaSsh ? dom.onHost : null);
        await log('info', `backing up ${info.name} (${state}) from host ${host.name}: ${disks.map((d) => `${d.disk.target} ${d.path}`).join(', ')} into ${repo}`);
        const pullPlan: PullDiskPlan[] = disks.map((d) => ({
          target: d.disk.target,
          path: d.path,
          archive: d.archive,
          format: d.chain[0]?.format ?? d.disk.format ?? 'raw',
          virtualSize: d.chain[0]?.virtualSize ?? 0,
          backingFiles: d.chain.length - 1,
          readonly: d.disk.readonly || d.disk.shareable,
        }));
        if (viaSsh) {
          const blocker = await this.deps.pull.sshUnsupportedReason(pullPlan);
          if (blocker !== null) throw sshReadUnsupported(info.name, host, vm.id, blocker);
        }
        const notPull = policy.changed_block_tracking === 0 ? 'changed-block tracking is off in the policy' : await this.deps.pull.unsupportedReason(pullPlan, live, viaSsh ? dom.onHost : undefined);
        let pullBase: { base: RestorePointRecord | null; reason: string | null } | null = null;
        // Over SSH every read goes through the host: a job without checkpoint when tracking is not possible, qemu-nbd for a shut-off VM.
        let track = true;
        const offlineReason = viaSsh && !live ? `the VM is ${state}: read whole through qemu-nbd on the host` : null;
        if (viaSsh && live && notPull !== null) {
          track = false;
          pullBase = { base: null, reason: notPull };
          await log('info', `full read through a backup job without checkpoint: ${notPull}`);
        } else if (offlineReason !== null) {
          await log('info', `full read: ${offlineReason}`);
        } else if (notPull === null) {
          pullBase = await this.deps.pull.chooseBase(
            { vmId: vm.id, uuid: vm.uuid, repo, disks: pullPlan, archives: new Set(existing.map((a) => a.name)), fullEveryDays: policy.full_every_days ?? 30, nowEpoch: epoch, jobs: dom.jobs, knownCheckpoints },
            log,
          );
        } else {
          await log('info', `full read (borg create of the disk files): ${notPull}`);
        }
        let pulled: PullBackupResult | null = null;

        for (const d of disks) {
          for (const img of d.chain.slice(1)) {
            const t = await this.deps.store.storeTemplate(storage.path, img.filename, signal);
            await log('info', `${d.disk.target}: backing file ${img.filename} ${t.copied ? 'stored as' : 'already stored as'} ${t.path} (sha256 ${t.sha256.slice(0, 16)}…)`);
          }
        }

        const created: string[] = [];
        const stats: Array<{ originalSize: number; compressedSize: number; deduplicatedSize: number }> = [];
        const diskRecords: RestorePointDisk[] = [];
        const snapshotted: PlannedDisk[] = [];
        let failure: unknown = null;
        let readInfo: ReadInfo | null = null;
        let snapshotAttempted = false;
        try {
          if (pullBase !== null || offlineReason !== null) {
            const reach = this.reach(dom, viaSsh);
            pulled =
              pullBase !== null
                ? await this.deps.pull.run(
                    {
                      vmId: vm.id,
                      uuid: vm.uuid,
                      jobs: dom.jobs,
                      access,
                      disks: pullPlan,
                      epoch,
                      compression: policy.compression,
                      base: pullBase.base,
                      fullReason: pullBase.reason,
                      onArchive: (a) => created.push(a),
                      reach,
                      track,
                      // The config archive is written by the last disk's image writer (no second borg start).
                      config: async (read) => ({
                        archive: configArchiveName(epoch),
                        timestamp: new Date(epoch * 1000),
                        files: configFiles({ vm, host, policy, info: { name: info.name }, inactiveXml, cloudStack: parseVmInfo(vm.cloudstack), disks: read.disks.map((r) => pulledDiskRecord(r, disks)), epoch, read: readInfoOf(read) }),
                      }),
                    },
                    ctx,
                    signal,
                    log,
                  )
                : await this.deps.pull.runOffline({ jobs: dom.jobs, access, disks: pullPlan, epoch, compression: policy.compression, reason: offlineReason!, onArchive: (a) => created.push(a), reach }, ctx, signal, log);
            for (const r of pulled.disks) {
              stats.push(r);
              diskRecords.push(pulledDiskRecord(r, disks));
            }
          } else if (live) {
            snapshotAttempted = true;
            await this.snapshot(dom, vm, policy, disks, epoch, log, ctx.taskId);
            snapshotted.push(...disks.filter((d) => d.overlay !== null));
          } else {
            await log('info', `the VM is ${state}: no snapshot needed`);
          }
          const total = disks.reduce((s, d) => s + d.size, 0);
          let before = 0;
          for (const d of pulled ? [] : disks) {
            signal.throwIfAborted();
            const st = await this.createDiskArchive(access, d, policy.compression, epoch, { before, total }, ctx, signal);
            created.push(d.archive);
            stats.push(st);
            diskRecords.push({
              target: d.disk.target,
              path: d.path,
              format: d.chain[0]?.format ?? d.disk.format,
              archive: d.archive,
              virtualSize: d.chain[0]?.virtualSize ?? null,
              backingChain: d.chain.slice(1).map((i) => i.filename),
              originalSize: st.originalSize,
              compressedSize: st.compressedSize,
              deduplicatedSize: st.deduplicatedSize,
            });
            before += d.size;
          }
          if (stopped) {
            // CloudStack may have started the VM meanwhile: then what was read is not a consistent image.
            const now = await stopped.access.settledInstance(stopped.client, stopped.info.id, vm.name, signal).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
            if (now instanceof Error || !isStopped(String(now.state))) {
              throw new AppError('conflict', CloudStackVmErrorCode.VM_STARTED, `CloudStack ${now instanceof Error ? `could not confirm that ${vm.name} stayed stopped (${now.message})` : `started ${vm.name} during the backup (state ${now.state})`}: the images read may be inconsistent, so this restore point is dropped; back it up again`, { vmId: vm.id });
            }
          }
          const read = pulled
            ? readInfoOf(pulled)
            : { mode: 'full' as const, reason: notPull, bytesToRead: disks.reduce((s, d) => s + d.size, 0), bytesRead: stats.reduce((s, x) => s + x.originalSize, 0), checkpointName: null, checkpointXml: null, chainFullEpoch: epoch };
          readInfo = read;
          if (pulled?.configArchive) {
            stats.push(pulled.configArchive);
          } else {
            const cfg = await this.createConfigArchive(access, { vm, host, policy, info: { name: info.name }, inactiveXml, cloudStack: stopped?.info ?? parseVmInfo(vm.cloudstack), disks: diskRecords, epoch, read }, ctx, signal);
            created.push(configArchiveName(epoch));
            stats.push(cfg);
          }
        } catch (err) {
          failure = err;
        }
        // Never leave the VM on an overlay: after success, failure and cancellation alike. What is
        // on an overlay is read from the domain, not from `snapshotted`: a snapshot that libvirt
        // took but whose step then failed (a lost answer, a log write) must be merged back too.
        // (A pull-mode read never puts the VM on an overlay: nothing to look at then.)
        const onOverlay = live && snapshotAttempted ? await this.onOverlays(dom, vm.uuid, disks, snapshotted, log) : [];
        const commitErrors = await this.commitAll(dom, vm.uuid, onOverlay, log, ctx.taskId);
        if (failure !== null || commitErrors.length > 0) {
          if (created.length > 0) {
            await this.deps.borg.deleteArchives(access, created).then(
              async () => {
                await this.deps.compactions.deleted(access.repo, this.deps.clock.now()).catch(() => undefined);
                await log('info', `removed the incomplete restore point's archives ${created.join(', ')}`);
              },
              (e: unknown) => log('warn', `could not remove the incomplete archives ${created.join(', ')}: ${(e as Error).message}`),
            );
          }
          if (commitErrors.length > 0) {
            throw new AppError('internal', 'BACKUP.OVERLAY_COMMIT_FAILED', `the VM could not be merged back from its snapshot overlay: ${commitErrors.map((e) => e.message).join('; ')}; the next backup (or recovery) retries`, {
              cause: failure instanceof Error ? failure.message : null,
            });
          }
          throw failure;
        }

        const sum = (k: 'originalSize' | 'compressedSize' | 'deduplicatedSize') => stats.reduce((s, x) => s + x[k], 0);
        const record: RestorePointRecord = {
          id: randomUUID(),
          vmId: vm.id,
          storageId: storage.id,
          repository: repo,
          epoch,
          archives: [...created].sort(),
          disks: diskRecords,
          originalSize: sum('originalSize'),
          compressedSize: sum('compressedSize'),
          deduplicatedSize: sum('deduplicatedSize'),
          durationMs: Date.now() - started,
          taskId: ctx.taskId,
          startedBy: ctx.startedBy,
          source: 'backroll',
          createdAt: new Date(epoch * 1000).toISOString(),
          readMode: readInfo!.mode,
          bytesToRead: readInfo!.bytesToRead,
          bytesRead: readInfo!.bytesRead,
          fullReason: readInfo!.mode === 'full' ? readInfo!.reason : null,
          checkpointName: readInfo!.checkpointName,
          checkpointXml: readInfo!.checkpointXml,
          chainFullEpoch: readInfo!.chainFullEpoch,
        };
        await this.deps.restorePoints.insert(record);
        await log('info', `restore point ${record.id} (epoch ${epoch}): ${record.archives.join(', ')}; ${readSummary(readInfo!.mode, readInfo!.bytesRead, disks.reduce((s, d) => s + (d.chain[0]?.virtualSize ?? d.size), 0))}${readInfo!.mode === 'full' && readInfo!.reason ? ` (${readInfo!.reason})` : ''}, ${record.deduplicatedSize} bytes new after deduplication`);
        ctx.progress({ percent: 100, step: 'prune' });
        const pruned = await this.applyRetention(vm.id, access, policy, [...existing.map((a) => a.name), ...created], log);
        await this.maybeCompact(access, ctx, log);
        return {
          restorePointId: record.id,
          epoch,
          repository: repo,
          archives: record.archives,
          originalSize: record.originalSize ?? 0,
          compressedSize: record.compressedSize ?? 0,
          deduplicatedSize: record.deduplicatedSize ?? 0,
          durationMs: Date.now() - started,
          pruned,
        };
      },
      { purpose: 'backup', leaseMs: this.deps.lockLeaseMs },
    );
  }

  /**
   * For a VM the inventory knows as stopped by CloudStack (undefined from libvirt), the pool's
   * client and the instance, when CloudStack still says Stopped; null otherwise (a VM CloudStack
   * has started again is in libvirt and backed up from there). System VMs are refused.
   */
  private async cloudStackStopped(vm: VirtualMachineTable, host: HostTable, signal: AbortSignal) {
    if (toBool(vm.system_vm)) throw systemVmError(vm);
    const info = parseVmInfo(vm.cloudstack);
    if (!info?.stoppedOutsideLibvirt || !this.deps.cloudStack) return null;
    const access = this.deps.cloudStack;
    const client = await access.requireClient(host.pool_id, vm.name);
    const instance = await access.settledInstance(client, info.id, vm.name, signal);
    return isStopped(String(instance.state)) ? { access, client, instance, info: { ...info, state: String(instance.state) } } : null;
  }

  /**
   * Interrupted-task recovery: the pre-flight clean-up of the VM (overlays merged back, the VM
   * left on its base disks in the state it had), under its lock. `taskId` is the interrupted
   * task: its lock is stale (VmLocks) and the recovery takes it over as its successor.
   */
  async recover(vmId: string, taskId?: string, log: Log = async () => {}): Promise<void> {
    const vm = await this.deps.lookup.vm(vmId);
    const host = await this.deps.lookup.host(vm.host_id);
    await this.deps.locks.withVmLock(vmId, taskId ? `recovery:task:${taskId}` : 'recovery', () => this.preflight(this.domain(host), vm.uuid, log, vm.id), { purpose: 'recovery', leaseMs: this.deps.lockLeaseMs });
  }

  /**
   * The pre-flight clean-up alone, for a caller that holds the VM's lock (an in-place restore
   * must not swap the base of a disk the VM still writes through a Backroll overlay).
   */
  async mergeLeftoverOverlays(vmId: string, log: Log): Promise<void> {
    const vm = await this.deps.lookup.vm(vmId);
    const host = await this.deps.lookup.host(vm.host_id);
    try {
      await this.preflight(this.domain(host), vm.uuid, log, vm.id);
    } catch (err) {
      // A CloudStack instance stopped by CloudStack is not in libvirt: no overlay can be active.
      if (err instanceof AppError && err.code === LibvirtErrorCode.VM_NOT_FOUND && (toBool(vm.cloudstack_managed) || parseVmInfo(vm.cloudstack) !== null)) return;
      throw err;
    }
  }

  /**
   * After an in-place restore: the VM's disks are other files now, its checkpoints describe
   * nothing. Deletes the checkpoint metadata in libvirt and forgets them in the database, so
   * the next backup is a full read.
   */
  async dropCheckpoints(vmId: string, log: Log): Promise<void> {
    const vm = await this.deps.lookup.vm(vmId);
    const host = await this.deps.lookup.host(vm.host_id);
    const dom = this.domain(host);
    await this.deps.restorePoints.dropCheckpoints(vmId);
    let names: string[] = [];
    try {
      names = await dom.jobs.checkpoints(vm.uuid);
    } catch (err) {
      await log('warn', `could not list the VM's checkpoints: ${(err as Error).message}`);
    }
    // Only Backroll's own (another tool's checkpoints are its business).
    for (const n of names.filter((x) => CHECKPOINT.test(x))) {
      await dom.jobs.deleteCheckpoint(vm.uuid, n, true).then(
        () => log('info', `checkpoint ${n} dropped (the disks were restored: the next backup reads them whole)`),
        (e: unknown) => log('warn', `could not drop checkpoint ${n}: ${(e as Error).message}`),
      );
    }
  }

  /** The planned disks the domain runs on their overlay now; `fallback` when the domain cannot be read. */
  private async onOverlays(dom: Domain, uuid: string, disks: PlannedDisk[], fallback: PlannedDisk[], log: Log): Promise<PlannedDisk[]> {
    try {
      const current = new Map((await dom.virsh.diskChain(uuid)).map((c) => [c.target, c.path]));
      return disks.filter((d) => d.overlay !== null && current.get(d.disk.target) === d.overlay);
    } catch (err) {
      await log('warn', `could not read the disk chain of the VM (${(err as Error).message}); merging back the overlays the snapshot reported`);
      return fallback;
    }
  }

  private async plan(domainDisks: DomainDisk[], epoch: number, live: boolean, onHost: CommandRunner | null): Promise<PlannedDisk[]> {
    const out: PlannedDisk[] = [];
    for (const disk of domainDisks) {
      if (disk.type !== 'file' || !disk.path) {
        throw new AppError('invalid', 'BACKUP.DISK_TYPE_UNSUPPORTED', `disk ${disk.target} is of type ${disk.type} (${disk.sourceDescription ?? disk.path ?? 'no source'}): Backroll backs up file disks`, { target: disk.target });
      }
      if (onHost === null) {
        try {
          await fs.access(disk.path, fs.constants.R_OK);
        } catch (err) {
          throw new AppError('unavailable', 'VM.DISK_NOT_ACCESSIBLE', `this worker cannot read disk ${disk.target} at ${disk.path} (${(err as NodeJS.ErrnoException).code}): mount the VM storage on the worker at the same path as on the host, or set the host's disk access to ssh (or auto) to read it through the host`, {
            target: disk.target,
            path: disk.path,
          });
        }
      }
      // The format libvirt declares (never probed) and the chain libvirt reports (backing files only where the host's disk has them).
      const chain = await imageChain(this.deps.runner, disk.path, { format: disk.format, libvirtChain: disk.backingChain }, onHost ?? undefined);
      const size = onHost === null ? (await fs.stat(disk.path)).size : (chain[0]?.actualSize ?? chain[0]?.virtualSize ?? 0);
      const snapshot = live && !disk.readonly && !disk.shareable;
      out.push({ disk, path: disk.path, chain, size, archive: diskArchiveName(disk.target, disk.path, epoch), overlay: snapshot ? overlayPath(disk.path, epoch) : null });
    }
    const names = new Set(out.map((d) => d.archive));
    if (names.size !== out.length) throw new AppError('invalid', 'BACKUP.ARCHIVE_NAME_CLASH', 'two disks of this VM map to the same archive name');
    return out;
  }

  private async snapshot(dom: Domain, vm: VirtualMachineTable, policy: PolicyTable, disks: PlannedDisk[], epoch: number, log: Log, taskId: string): Promise<void> {
    const specs = disks.map((d) => ({ target: d.disk.target, overlay: d.overlay }));
    let quiesce = false;
    if (policy.quiesce !== 'off') {
      const agent = await dom.virsh.hasGuestAgent(vm.uuid);
      if (agent) quiesce = true;
      else if (policy.quiesce === 'required') {
        throw new AppError('conflict', 'SNAPSHOT.QUIESCE_UNAVAILABLE', `the policy requires a quiesced snapshot, but the QEMU guest agent of ${vm.name} does not answer: install/start qemu-guest-agent in the VM or set the policy's quiesce to preferred`, { vmId: vm.id });
      } else {
        await log('warn', 'the guest agent does not answer: the snapshot is crash-consistent, not quiesced (policy quiesce: preferred)');
      }
    }
    const name = `backroll-${epoch}`;
    try {
      await dom.ops.createDiskOnly(vm.uuid, name, specs, quiesce);
    } catch (err) {
      if (!quiesce || policy.quiesce === 'required') throw err;
      await log('warn', `the quiesced snapshot failed (${(err as Error).message}); taking a crash-consistent one (policy quiesce: preferred)`);
      quiesce = false;
      await dom.ops.createDiskOnly(vm.uuid, name, specs, false);
    }
    crashPoint('backup.snapshot-taken', taskId);
    await log('info', `external snapshot taken${quiesce ? ' (quiesced)' : ''}: the guest writes to ${specs.filter((s) => s.overlay).map((s) => s.overlay).join(', ')}`);
  }

  private async createDiskArchive(
    access: RepoAccess,
    d: PlannedDisk,
    compression: string,
    epoch: number,
    totals: { before: number; total: number },
    ctx: TaskContext,
    signal: AbortSignal,
  ) {
    const tracker = new CreateProgressTracker(d.size);
    let running = false;
    const step = `${d.disk.target}: borg create`;
    ctx.progress({ step, bytesTotal: totals.total, bytesDone: totals.before, percent: totals.total > 0 ? (100 * totals.before) / totals.total : 0 });
    const st = await this.deps.borg.create(access, {
      archive: d.archive,
      paths: [d.path],
      compression,
      timestamp: new Date(epoch * 1000),
      signal,
      onEvent: (e) => {
        if (!running && e.type === 'archive_progress' && !e.finished) {
          running = true;
          crashPoint('backup.borg-create', ctx.taskId);
        }
        const p = tracker.update(e);
        if (p) {
          const done = totals.before + p.bytesDone;
          ctx.progress({ step, bytesDone: done, bytesTotal: totals.total, percent: totals.total > 0 ? (100 * done) / totals.total : 100, rateBytesPerSecond: p.rateBytesPerSecond ?? undefined });
        } else forwardLog(e, ctx, d.disk.target);
      },
    });
    await ctx.log('info', `${d.disk.target}: archive ${d.archive}: ${st.originalSize} bytes, ${st.compressedSize} compressed, ${st.deduplicatedSize} new, ${st.durationSeconds.toFixed(1)} s`);
    return st;
  }

  private async createConfigArchive(access: RepoAccess, c: ConfigContent, ctx: TaskContext, signal: AbortSignal) {
    const dir = path.join(this.deps.dataDir, 'tmp', `backup-${ctx.taskId}-${c.epoch}`);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const files = configFiles(c);
      for (const f of files) await fs.writeFile(path.join(dir, f.name), f.data, { mode: 0o600 });
      return await this.deps.borg.create(access, {
        archive: configArchiveName(c.epoch),
        paths: files.map((f) => f.name),
        cwd: dir,
        compression: c.policy.compression,
        timestamp: new Date(c.epoch * 1000),
        signal,
        onEvent: (e) => forwardLog(e, ctx, 'config'),
      });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /** Block-commits every overlay back and deletes it; returns the failures (never throws). */
  private async commitAll(dom: Domain, uuid: string, disks: PlannedDisk[], log: Log, taskId: string): Promise<Error[]> {
    const errors: Error[] = [];
    for (const [i, d] of disks.entries()) {
      if (i > 0) crashPoint('backup.block-commit', taskId);
      try {
        await this.commitOne(dom, uuid, d.disk.target, d.overlay!, d.path, log);
      } catch (err) {
        errors.push(err as Error);
        await log('error', `${d.disk.target}: block-commit of ${d.overlay} failed: ${(err as Error).message}`);
      }
    }
    return errors;
  }

  private async commitOne(dom: Domain, uuid: string, target: string, overlay: string, base: string, log: Log): Promise<void> {
    try {
      await dom.ops.blockCommitActive(uuid, target);
    } catch (err) {
      // A job left by an interrupted commit blocks a new one: abort it, then retry once.
      await log('warn', `${target}: block-commit failed (${(err as Error).message}); aborting any block job and retrying`);
      await dom.ops.blockJobAbort(uuid, target);
      await dom.ops.blockCommitActive(uuid, target);
    }
    const now = (await dom.virsh.diskChain(uuid)).find((x) => x.target === target);
    if (now?.path !== base) throw new AppError('internal', 'BACKUP.OVERLAY_COMMIT_FAILED', `${target} is on ${now?.path ?? 'nothing'} after the block-commit, not on ${base}`);
    await dom.ops.removeFile(overlay);
    await log('info', `${target}: merged back into ${base}; overlay removed`);
  }

  /**
   * Pre-flight clean-up: a Backroll overlay still active in the domain is merged back
   * (block-commit when it runs; qemu-img commit + redefinition when it is shut off) and
   * removed; overlay files next to its disks that no domain of the host uses are deleted.
   */
  private async preflight(dom: Domain, uuid: string, log: Log, vmId: string | null = null): Promise<{ info: DomainInfo; state: DomainState; unchanged: boolean; checkpoints: string[] | null }> {
    const info = await dom.virsh.domainInfo(uuid);
    const state = await dom.virsh.domainState(uuid);
    let unchanged = true;
    // One listing per directory for the whole pre-flight (job directories, then stale overlays).
    const listings = new Map<string, Promise<string[]>>();
    const listDir = (d: string) => {
      if (!listings.has(d)) listings.set(d, dom.jobs.listDir(d));
      return listings.get(d)!;
    };
    const bases: string[] = [];
    for (const disk of info.disks) {
      if (!disk.path) continue;
      if (!isOverlayPath(disk.path)) {
        bases.push(disk.path);
        continue;
      }
      const overlay = disk.path;
      const base = disk.backingChain[0]?.path ?? (await imageChain(this.deps.runner, overlay, {}, dom.onHost))[0]?.backingFilename ?? null;
      if (!base) throw new AppError('internal', 'BACKUP.OVERLAY_WITHOUT_BASE', `${disk.target} runs on the Backroll overlay ${overlay}, whose backing file is unknown`);
      unchanged = false;
      await log('warn', `${disk.target}: a previous backup left the VM on its overlay ${overlay}: merging it back into ${base}`);
      if (LIVE.has(state)) {
        await this.commitOne(dom, uuid, disk.target, overlay, base, log);
      } else {
        await dom.ops.qemuImgCommit(overlay);
        const xml = await dom.virsh.domainXml(uuid, { inactive: true });
        const fixed = xml.split(xmlAttr(overlay)).join(xmlAttr(base));
        if (fixed === xml) throw new AppError('internal', 'BACKUP.OVERLAY_COMMIT_FAILED', `${overlay} is not in the persistent definition of the domain; fix it by hand`);
        await dom.ops.define(fixed);
        await dom.ops.removeFile(overlay);
        await log('info', `${disk.target}: committed offline into ${base}, domain redefined, overlay removed`);
      }
      bases.push(base);
    }
    const checkpoints = await this.deps.pull.cleanupLeftovers({ vmId, uuid, live: LIVE.has(state), diskPaths: bases, jobs: dom.jobs, listDir }, log);
    const seen = { info, state, unchanged, checkpoints };
    const stale: string[] = [];
    for (const base of bases) {
      // Listed on the host (the worker may read over SSH without the storage mounted).
      const names = await listDir(path.dirname(base));
      stale.push(...overlaysOfDisk(base, names));
    }
    if (stale.length === 0) return seen;
    const used = new Set<string>();
    for (const d of await dom.virsh.listDomains()) {
      for (const disk of await dom.virsh.diskChain(d.uuid)) {
        if (disk.path) used.add(disk.path);
        for (const b of disk.backingChain) if (b.path) used.add(b.path);
      }
    }
    for (const file of stale) {
      if (used.has(file)) {
        await log('warn', `overlay ${file} is still used by a domain: left in place`);
        continue;
      }
      await dom.ops.removeFile(file);
      await log('info', `removed the stale overlay ${file}`);
    }
    return seen;
  }

  /**
   * Prunes whole restore points per the policy, then drops the index rows of restore points whose
   * archives are gone. `names`: the repository's archives now (listed at the start under the VM's
   * lock, plus this backup's), so no borg process lists them again.
   */
  private async applyRetention(vmId: string, access: RepoAccess, policy: PolicyTable, names: readonly string[], log: Log): Promise<number[]> {
    const rules = { daily: policy.retention_daily, weekly: policy.retention_weekly, monthly: policy.retention_monthly, yearly: policy.retention_yearly };
    // One decision for whole restore points (every archive of an epoch), never borg prune per archive series.
    const plan = await pruneRestorePoints(this.deps.borg, access, rules, names);
    if (plan.prune.length > 0) await this.deps.compactions.deleted(access.repo, this.deps.clock.now());
    await log('info', `retention (daily ${rules.daily}, weekly ${rules.weekly}, monthly ${rules.monthly}, yearly ${rules.yearly}) keeps ${plan.keep.length} restore point(s), prunes ${plan.prune.length}${plan.prune.length > 0 ? ` (epochs ${plan.prune.map((p) => p.epoch).join(', ')})` : ''}`);
    const deleted = new Set(plan.prune.flatMap((p) => p.archives));
    const left = new Set(groupByEpoch(names.filter((n) => !deleted.has(n))).map((g) => g.epoch));
    const gone = (await this.deps.restorePoints.listByVm(vmId)).filter((rp) => rp.repository === access.repo && !left.has(rp.epoch));
    await this.deps.restorePoints.deleteByIds(gone.map((rp) => rp.id));
    return gone.map((rp) => rp.epoch).sort((a, b) => a - b);
  }

  /** `borg compact` when archives were deleted since the last one and it is old enough (compaction.ts). */
  private async maybeCompact(access: RepoAccess, ctx: TaskContext, log: Log): Promise<void> {
    const now = this.deps.clock.now();
    const decision = compactionDecision(await this.deps.compactions.state(access.repo), now, this.deps.compactIntervalMs ?? DEFAULT_COMPACT_INTERVAL_HOURS * 3_600_000);
    if (!decision.compact) {
      await log('info', `no compaction: ${decision.why}`);
      return;
    }
    ctx.progress({ step: 'compact' });
    const t0 = Date.now();
    await this.deps.borg.compact(access);
    await this.deps.compactions.compacted(access.repo, this.deps.clock.now());
    await log('info', `repository compacted (${decision.why}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

interface ConfigContent {
  vm: VirtualMachineTable;
  host: HostTable;
  policy: PolicyTable;
  info: { name: string };
  inactiveXml: string | null;
  cloudStack: CloudStackVmInfo | null;
  disks: RestorePointDisk[];
  epoch: number;
  read: ReadInfo;
}

/** The files of a restore point's config archive: domain.xml (when libvirt has the VM), backroll.json, checkpoint.xml (when one was made). */
function configFiles(c: ConfigContent): Array<{ name: string; data: Buffer }> {
  const meta = {
    backrollVersion: VERSION,
    epoch: c.epoch,
    createdAt: new Date(c.epoch * 1000).toISOString(),
    vm: { uuid: c.vm.uuid, name: c.info.name, id: c.vm.id },
    host: { id: c.host.id, name: c.host.name, address: c.host.address },
    policy: { id: c.policy.id, name: c.policy.name, compression: c.policy.compression, encryption: c.policy.encryption },
    disks: c.disks.map((d) => ({ target: d.target, path: d.path, format: d.format, backingChain: d.backingChain, virtualSize: d.virtualSize, archive: d.archive })),
    ...(c.cloudStack ? { cloudStack: c.cloudStack } : {}),
    read: { mode: c.read.mode, reason: c.read.reason, bytesToRead: c.read.bytesToRead, bytesRead: c.read.bytesRead, checkpoint: c.read.checkpointName },
  };
  const files: Array<{ name: string; data: Buffer }> = [];
  // A VM CloudStack stopped has no libvirt definition: no domain.xml then (restores use the VM's volumes).
  if (c.inactiveXml !== null) files.push({ name: 'domain.xml', data: Buffer.from(c.inactiveXml) });
  files.push({ name: 'backroll.json', data: Buffer.from(`${JSON.stringify(meta, null, 2)}\n`) });
  if (c.read.checkpointXml) files.push({ name: 'checkpoint.xml', data: Buffer.from(c.read.checkpointXml) });
  return files;
}

function readInfoOf(p: PullBackupResult): ReadInfo {
  return { mode: p.mode, reason: p.reason, bytesToRead: p.bytesToRead, bytesRead: p.bytesRead, checkpointName: p.checkpointName, checkpointXml: p.checkpointXml, chainFullEpoch: p.chainFullEpoch };
}

/** A disk read through the image writer: the archive holds a complete qcow2 image (preallocated metadata), without backing file. */
function pulledDiskRecord(r: PullBackupResult['disks'][number], planned: readonly PlannedDisk[]): RestorePointDisk {
  const d = planned.find((x) => x.disk.target === r.target)!;
  return {
    target: r.target,
    path: d.path,
    format: 'qcow2',
    archive: r.archive,
    virtualSize: r.diskSize,
    backingChain: [],
    originalSize: r.originalSize,
    compressedSize: r.compressedSize,
    deduplicatedSize: r.deduplicatedSize,
  };
}

function sshReadUnsupported(name: string, host: HostTable, vmId: string, why: string): AppError {
  return new AppError('invalid', 'BACKUP.SSH_READ_UNSUPPORTED', `${name} cannot be read through host ${host.name} over SSH: ${why}. Mount the VM storage on the worker at the same path as on the host and set the host's disk access to mount (or auto)`, { vmId, hostId: host.id });
}

/** CloudStack re-creates its system VMs: Backroll lists them and never backs them up. */
export function systemVmError(vm: Pick<VirtualMachineTable, 'id' | 'name'>): AppError {
  return new AppError('conflict', CloudStackVmErrorCode.SYSTEM_VM, `${vm.name} is a CloudStack system VM (virtual router, secondary storage or console proxy): CloudStack re-creates it, so Backroll lists it but never backs it up`, { vmId: vm.id });
}

function forwardLog(e: BorgEvent, ctx: TaskContext, what: string): void {
  if (e.type === 'log' && (e.level === 'warn' || e.level === 'error' || e.level === 'info')) void ctx.log(e.level, `${what}: borg: ${e.message}`).catch(() => undefined);
  else if (e.type === 'text') void ctx.log('warn', `${what}: borg: ${e.message}`).catch(() => undefined);
}

/** A path as libvirt writes it in an XML attribute. */
function xmlAttr(p: string): string {
  return `'${p.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;').replaceAll('"', '&quot;')}'`;
}
