/**
 * Restores against the KVM lab: real borg, real libvirt (over the lab's sshd), real qemu-img.
 * Each scenario works on a clone of a lab VM (see restore-lab-fixtures.ts); lab VMs are untouched.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Borg } from '../adapters/borg/borg.js';
import { BorgReader } from '../adapters/borg/extract.js';
import { localImageTool, type ImageTool } from '../adapters/qemu-img/check.js';
import { RepositoryStore } from '../backups/repository-store.js';
import { SshPool } from '../adapters/ssh/ssh-pool.js';
import { canaryPresent, lab, labConnectOptions, labSkipReason, type LabHost } from '../adapters/ssh/test-lab.js';
import type { AppError } from '../errors.js';
import type { TaskContext, TaskProgress } from '../tasks/task-context.js';
import type { HostExec } from './domain-control.js';
import { nodeRestoreFiles, type RestoreFiles } from './restore-files.js';
import {
  backupVm,
  cloneVm,
  domState,
  HAVE_BORG,
  leftovers,
  rawSha,
  removeClone,
  removeVm,
  scribble,
  sha256File,
  storeTemplate,
  virshAs,
  type BackupFixture,
  type CloneVm,
} from './restore-lab-fixtures.js';
import type { RestoreHost, RestoreLookup, RestorePointRow, RestoreVm } from './restore.repository.js';
import { RestoreService, type RestoreServiceDeps, type VmLocks } from './restore.service.js';

const skipReason = !lab ? labSkipReason : !HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root to act as the VM storage owner)' : '';
const EVIL = 'evil$(touch PWNED);\'"`id` x';

interface Ctx extends TaskContext {
  lines: string[];
  progressSeen: TaskProgress[];
  controller: AbortController;
}
function taskContext(): Ctx {
  const controller = new AbortController();
  const lines: string[] = [];
  const progressSeen: TaskProgress[] = [];
  return {
    taskId: randomUUID(),
    signal: controller.signal,
    startedBy: 'user:test',
    controller,
    lines,
    progressSeen,
    async log(level, message) {
      lines.push(`${level}: ${message}`);
    },
    progress(p) {
      progressSeen.push(p);
    },
  };
}

/** In-memory VM locks with the backup engine's contract. */
class MemoryLocks implements VmLocks {
  private readonly held = new Set<string>();
  async withVmLock<T>(vmId: string, _owner: string, fn: (lock: { signal: AbortSignal }) => Promise<T>): Promise<T> {
    if (this.held.has(vmId)) throw new Error(`VM ${vmId} is locked`);
    this.held.add(vmId);
    try {
      return await fn({ signal: new AbortController().signal });
    } finally {
      this.held.delete(vmId);
    }
  }
}

class MemoryLookup implements RestoreLookup {
  vms = new Map<string, RestoreVm>();
  hosts = new Map<string, RestoreHost>();
  rps = new Map<string, RestorePointRow>();
  async vm(id: string) {
    return this.vms.get(id);
  }
  async host(id: string) {
    return this.hosts.get(id);
  }
  async restorePoint(vmId: string, id: string) {
    const r = this.rps.get(id);
    return r && r.vmId === vmId ? r : undefined;
  }
}

async function failure(p: Promise<unknown>): Promise<AppError> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as AppError,
  );
}

describe.skipIf(skipReason !== '')(`restores against the KVM lab${skipReason}`, () => {
  const l = lab!;
  const h: LabHost = l.hosts[0]!;
  const tag = randomBytes(3).toString('hex');
  const storageRoot = `/var/tmp/backroll-restore-test-${tag}`;
  const storage = path.join(storageRoot, 'storage');
  const clones: CloneVm[] = [];
  const extraVms: string[] = [];
  let pool: SshPool;
  const lookup = new MemoryLookup();
  const hostRow: RestoreHost = { id: randomUUID(), name: h.name, libvirtUri: h.libvirtUri };
  let epoch = Math.floor(Date.now() / 1000) - 1000;
  const dataDir = path.join(storageRoot, 'data');

  const hostExec = (): HostExec => (argv, o) => pool.exec(h.name, argv, o);
  const baseDeps = (): RestoreServiceDeps => ({
    lookup,
    borg: new BorgReader({ baseDir: dataDir, lockWait: 1 }),
    images: localImageTool(),
    files: nodeRestoreFiles,
    hostExec: () => hostExec(),
    locks: new MemoryLocks(),
    // The backup engine's store: encryption from the repository, passphrase from the data dir.
    repoAccess: async (rp, vm) => (await new RepositoryStore(dataDir, new Borg({ baseDir: dataDir })).access(rp.repository, vm.uuid))!,
    shutdownGraceMs: 1500,
  });
  const service = (over: Partial<RestoreServiceDeps> = {}) => new RestoreService({ ...baseDeps(), ...over });

  /** Clone + register in the lookup + back up. */
  function prepare(sourceVm: string, name: string, running: boolean, opts: { passphrase?: string; config?: boolean } = {}) {
    const t = `${tag}-${clones.length}`;
    const vm = cloneVm(l, h, sourceVm, name, t, running);
    clones.push(vm);
    const vmId = randomUUID();
    lookup.vms.set(vmId, { id: vmId, hostId: hostRow.id, uuid: vm.uuid, name: vm.name });
    const ep = ++epoch;
    if (opts.passphrase) {
      fs.mkdirSync(path.join(dataDir, 'borg-passphrases'), { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(dataDir, 'borg-passphrases', vm.uuid), `${opts.passphrase}\n`, { mode: 0o600 });
    }
    const backup = backupVm(h, storage, vm, ep, opts);
    const rpId = randomUUID();
    lookup.rps.set(rpId, { id: rpId, vmId, storageId: 'storage', storagePath: storage, repository: backup.repository, epoch: ep, originalSize: null });
    return { vm, vmId, rpId, backup };
  }

  const expectRestored = (vm: CloneVm, backup: BackupFixture) => {
    for (const d of vm.disks) expect(rawSha(d.path), `${d.target} content`).toBe(backup.rawSha[d.target]);
  };
  const expectOwnership = (vm: CloneVm) => {
    const home = fs.statSync(h.home);
    for (const d of vm.disks) {
      const st = fs.statSync(d.path);
      expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }).toEqual({ uid: home.uid, gid: home.gid, mode: 0o640 });
    }
  };

  beforeAll(() => {
    expect(canaryPresent(l)).toEqual([]);
    fs.mkdirSync(storage, { recursive: true });
    fs.mkdirSync(dataDir, { recursive: true });
    lookup.hosts.set(hostRow.id, hostRow);
    pool = new SshPool({ resolveHost: () => labConnectOptions(l, h.user) });
  });

  afterAll(() => {
    pool?.closeAll();
    for (const name of extraVms) removeVm(h, name);
    for (const vm of clones) removeClone(h, vm);
    spawnSync('chattr', ['-R', '-i', storageRoot]);
    fs.rmSync(storageRoot, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('in place: a running two-disk VM is stopped, restored byte-identically (owner, group, mode kept) and running again', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-twodisks', `rst-${tag}-two`, true);
    scribble(h, vm, 'vda', true);
    scribble(h, vm, 'vdb', true, '0xdd');
    expect(rawSha(vm.disks[0]!.path)).not.toBe(backup.rawSha.vda);
    const ctx = taskContext();
    const res = await service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, ctx);
    expect(res).toMatchObject({ mode: 'in-place', restarted: true, stoppedBy: 'destroyed' });
    expect(domState(h, vm.uuid)).toBe('running');
    expectRestored(vm, backup);
    expectOwnership(vm);
    expect(leftovers(vm.dir)).toEqual([]);
    const last = ctx.progressSeen.at(-1)!;
    expect(last.percent).toBe(100);
    expect(ctx.progressSeen.some((p) => p.bytesDone !== undefined && p.rateBytesPerSecond !== undefined && p.bytesTotal === backup.sizes.vda! + backup.sizes.vdb!)).toBe(true);
  }, 120_000);

  it('in place: a backing-file VM whose template was removed gets it back from <storage>/template (checksum verified)', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-template', `rst-${tag}-tpl`, true, { passphrase: 'correct horse battery' });
    storeTemplate(storage, vm.template!);
    const templateSha = sha256File(vm.template!);
    scribble(h, vm, 'vda', true);
    // The running guest keeps the template open; the file name is what is missing.
    fs.rmSync(vm.template!);
    const ctx = taskContext();
    const res = await service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, ctx);
    expect(res).toMatchObject({ mode: 'in-place', backingFilesRestored: [vm.template] });
    expect(sha256File(vm.template!)).toBe(templateSha);
    expect(domState(h, vm.uuid)).toBe('running');
    expectRestored(vm, backup);
    expect(leftovers(vm.dir)).toEqual([]);
  }, 120_000);

  it('in place: a shut-off VM stays shut off', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-stopped', `rst-${tag}-off`, false);
    scribble(h, vm, 'vda', false);
    const res = await service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext());
    expect(res).toMatchObject({ restarted: false, stoppedBy: 'already' });
    expect(domState(h, vm.uuid)).toBe('shut off');
    expectRestored(vm, backup);
    expectOwnership(vm);
  }, 120_000);

  it('in place: the hostile-name VM (repository path with shell metacharacters) — and no canary', async () => {
    const { vm, vmId, rpId, backup } = prepare('evil$(touch PWNED);\'"`id` x', `${EVIL} ${tag}`, true);
    expect(backup.repository).toContain('$(touch PWNED)');
    scribble(h, vm, 'vda', true);
    await service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext());
    expect(domState(h, vm.uuid)).toBe('running');
    expectRestored(vm, backup);
    expect(canaryPresent(l)).toEqual([]);
  }, 120_000);

  it('in place, failing verify: the originals stay, the VM runs as before, nothing left behind', async () => {
    const { vm, vmId, rpId } = prepare('vm-running', `rst-${tag}-badcheck`, true);
    scribble(h, vm, 'vda', true, '0x77');
    const before = rawSha(vm.disks[0]!.path);
    const real = localImageTool();
    const images: ImageTool = { info: real.info, check: async () => ({ ok: false, exitCode: 2, corruptions: 3, leaks: 0, message: 'injected corruption' }) };
    const ctx = taskContext();
    const err = await failure(service({ images }).run({ vmId, restorePointId: rpId, mode: 'in-place' }, ctx));
    expect(err.code).toBe('RESTORE.VERIFY_FAILED');
    expect(domState(h, vm.uuid)).toBe('running');
    expect(rawSha(vm.disks[0]!.path)).toBe(before);
    expect(leftovers(vm.dir)).toEqual([]);
    expect(ctx.lines.some((x) => x.includes('rollback done'))).toBe(true);
  }, 120_000);

  it('in place, unwritable destination (chattr +i on the disk directory): the originals stay and the VM runs', async () => {
    const { vm, vmId, rpId } = prepare('vm-running', `rst-${tag}-immutable`, true);
    scribble(h, vm, 'vda', true, '0x78');
    const before = rawSha(vm.disks[0]!.path);
    const inode = fs.statSync(vm.disks[0]!.path).ino;
    spawnSync('chattr', ['+i', vm.dir]);
    try {
      const err = await failure(service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext()));
      expect(err.message).toMatch(/EPERM|operation not permitted/i);
    } finally {
      spawnSync('chattr', ['-i', vm.dir]);
    }
    expect(domState(h, vm.uuid)).toBe('running');
    expect(fs.statSync(vm.disks[0]!.path).ino).toBe(inode);
    expect(rawSha(vm.disks[0]!.path)).toBe(before);
    expect(leftovers(vm.dir)).toEqual([]);
  }, 120_000);

  it('in place, failure after the swap (the VM refuses to start): originals put back, VM running on them', async () => {
    const { vm, vmId, rpId } = prepare('vm-twodisks', `rst-${tag}-nostart`, true);
    scribble(h, vm, 'vdb', true, '0x79');
    const before = vm.disks.map((d) => rawSha(d.path));
    let starts = 0;
    const failingFirstStart = (): HostExec => async (argv, o) => {
      if (argv.includes('start') && starts++ === 0) return { code: 1, stdout: '', stderr: 'error: injected start failure' };
      return pool.exec(h.name, argv, o);
    };
    const err = await failure(service({ hostExec: failingFirstStart }).run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext()));
    expect(err.code).toBe('RESTORE.START_FAILED');
    expect(domState(h, vm.uuid)).toBe('running');
    expect(vm.disks.map((d) => rawSha(d.path))).toEqual(before);
    expect(leftovers(vm.dir)).toEqual([]);
  }, 120_000);

  it('recovery after a worker died mid-restore decides from the files: every disk swapped = the restore is finished; kept files dropped for a VM that runs', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-stopped', `rst-${tag}-recover`, false);
    const d = vm.disks[0]!;
    const original = rawSha(d.path);
    // As left by a crash between the swap and the start: original kept, restored disk in place, a stray temp file.
    fs.linkSync(d.path, `${d.path}.backroll-replaced-${backup.epoch}`);
    fs.copyFileSync(d.path, `${d.path}.new`);
    scribble(h, { ...vm, disks: [{ ...d, path: `${d.path}.new` }] }, 'vda', false);
    fs.renameSync(`${d.path}.new`, d.path);
    fs.writeFileSync(`${d.path}.backroll-restore-${backup.epoch}.tmp`, 'partial');
    const restored = rawSha(d.path);
    expect(restored).not.toBe(original);
    const lines: string[] = [];
    await service().recover({ vmId, restorePointId: rpId, mode: 'in-place' }, async (m) => void lines.push(m));
    // The only disk was swapped (the kept original is another file): the restore had finished; the VM did not run before.
    expect(rawSha(d.path)).toBe(restored);
    expect(leftovers(vm.dir)).toEqual([]);
    expect(lines.join('\n')).toMatch(/the restore had finished swapping/);
    expect(domState(h, vm.uuid)).toBe('shut off');

    // Running VM: the restore had completed; the kept original goes.
    virshAs(h, 'start', '--domain', vm.uuid);
    fs.linkSync(d.path, `${d.path}.backroll-replaced-${backup.epoch}`);
    await service().recover({ vmId, restorePointId: rpId, mode: 'in-place' }, async () => {});
    expect(leftovers(vm.dir)).toEqual([]);
    expect(domState(h, vm.uuid)).toBe('running');
  }, 120_000);

  it('canceled during extraction: borg stopped, originals in place, VM running again', async () => {
    const { vm, vmId, rpId } = prepare('vm-twodisks', `rst-${tag}-cancel`, true);
    scribble(h, vm, 'vdb', true, '0x7a');
    const before = vm.disks.map((d) => rawSha(d.path));
    const ctx = taskContext();
    const progress = ctx.progress;
    ctx.progress = (p) => {
      progress(p);
      if ((p.bytesDone ?? 0) > 0 && !ctx.signal.aborted) ctx.controller.abort();
    };
    const err = await failure(service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, ctx));
    expect(['TASK.CANCELED', 'RESTORE.CANCELED']).toContain(err.code);
    expect(domState(h, vm.uuid)).toBe('running');
    expect(vm.disks.map((d) => rawSha(d.path))).toEqual(before);
    expect(leftovers(vm.dir)).toEqual([]);
  }, 120_000);

  it('STORAGE.FULL before anything is stopped or written', async () => {
    const { vm, vmId, rpId } = prepare('vm-running', `rst-${tag}-full`, true);
    const files: RestoreFiles = { ...nodeRestoreFiles, freeBytes: async () => 1024 };
    const err = await failure(service({ files }).run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext()));
    expect(err).toMatchObject({ code: 'STORAGE.FULL', details: { freeBytes: 1024 } });
    expect(domState(h, vm.uuid)).toBe('running');
  }, 120_000);

  it('BORG.REPOSITORY_LOCKED while another borg holds the repository', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-stopped', `rst-${tag}-locked`, false);
    const holder = spawn('borg', ['with-lock', backup.repository, 'sleep', '20'], { env: { ...process.env, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' }, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const err = await failure(service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext()));
      expect(err.code).toBe('BORG.REPOSITORY_LOCKED');
    } finally {
      holder.kill('SIGTERM');
    }
    expect(domState(h, vm.uuid)).toBe('shut off');
  }, 120_000);

  it('as a new VM: defined under a new name and uuid, boots, disks independent of the original', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-twodisks', `rst-${tag}-orig`, true);
    const newName = `rst-${tag}-copy "q"`;
    const ctx = taskContext();
    const res = await service().run({ vmId, restorePointId: rpId, mode: 'new-vm', newName, hostId: hostRow.id, start: true }, ctx);
    if (res.mode !== 'new-vm') throw new Error('wrong mode');
    extraVms.push(res.vm.uuid);
    expect(res.vm.uuid).not.toBe(vm.uuid);
    expect(domState(h, res.vm.uuid)).toBe('running');
    const xml = virshAs(h, 'dumpxml', '--domain', res.vm.uuid);
    expect(xml).toContain('<name>rst-');
    expect(xml).not.toContain(vm.uuid);
    for (const d of res.disks) {
      expect(path.dirname(d.path)).toBe(vm.dir);
      expect(xml).toContain(d.path);
      expect(rawSha(d.path)).toBe(backup.rawSha[d.target]);
      expect(fs.statSync(d.path).ino).not.toBe(fs.statSync(vm.disks.find((x) => x.target === d.target)!.path).ino);
    }
    // A write into the copy does not reach the original.
    const origBefore = rawSha(vm.disks[0]!.path);
    const copy: CloneVm = { name: newName, uuid: res.vm.uuid, dir: vm.dir, disks: res.disks.map((d) => ({ target: d.target, path: d.path, backing: null })), template: null };
    scribble(h, copy, 'vda', true, '0x99');
    expect(rawSha(vm.disks[0]!.path)).toBe(origBefore);
    expect(rawSha(res.disks[0]!.path)).not.toBe(backup.rawSha.vda);

    // The same name again: TARGET_EXISTS, nothing created.
    const again = await failure(service().run({ vmId, restorePointId: rpId, mode: 'new-vm', newName, hostId: hostRow.id }, taskContext()));
    expect(again.code).toBe('RESTORE.TARGET_EXISTS');
  }, 180_000);

  it('as a new VM on another host, disks in a chosen directory owned by that host user', async () => {
    const h2 = l.hosts[1]!;
    const host2: RestoreHost = { id: randomUUID(), name: h2.name, libvirtUri: h2.libvirtUri };
    lookup.hosts.set(host2.id, host2);
    const { vmId, rpId, backup } = prepare('vm-stopped', `rst-${tag}-tohost2`, false);
    const dir = path.join(h2.home, `rst-${tag}-in`);
    fs.mkdirSync(dir);
    const st = fs.statSync(h2.home);
    fs.chownSync(dir, st.uid, st.gid);
    const pool2 = new SshPool({ resolveHost: (id) => labConnectOptions(l, l.hosts.find((x) => x.name === id)!.user) });
    const exec = (hostId: string): HostExec => (argv, o) => pool2.exec(hostId === host2.id ? h2.name : h.name, argv, o);
    try {
      const res = await service({ hostExec: exec }).run({ vmId, restorePointId: rpId, mode: 'new-vm', newName: `rst-${tag}-on-h2`, hostId: host2.id, directory: dir, start: true }, taskContext());
      if (res.mode !== 'new-vm') throw new Error('wrong mode');
      try {
        expect(res.vm.hostId).toBe(host2.id);
        expect(domState(h2, res.vm.uuid)).toBe('running');
        const f = fs.statSync(res.disks[0]!.path);
        expect(path.dirname(res.disks[0]!.path)).toBe(dir);
        expect({ uid: f.uid, gid: f.gid }).toEqual({ uid: st.uid, gid: st.gid });
        expect(rawSha(res.disks[0]!.path)).toBe(backup.rawSha.vda);
      } finally {
        removeVm(h2, res.vm.uuid);
      }
    } finally {
      pool2.closeAll();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('to a directory: the disks and the domain XML; refuses a missing, non-empty or unwritable directory', async () => {
    const { vmId, rpId, backup } = prepare('vm-twodisks', `rst-${tag}-dir`, false);
    const svc = service();
    const dir = path.join(storageRoot, 'out');
    fs.mkdirSync(dir);
    const res = await svc.run({ vmId, restorePointId: rpId, mode: 'directory', directory: dir }, taskContext());
    expect(res.mode).toBe('directory');
    const names = fs.readdirSync(dir).sort();
    expect(names).toEqual(['backroll.json', 'domain.xml', `${tag}-${clones.length - 1}-vda.qcow2`, `${tag}-${clones.length - 1}-vdb.qcow2`].sort());
    for (const t of ['vda', 'vdb']) {
      const f = path.join(dir, names.find((n) => n.endsWith(`${t}.qcow2`))!);
      expect(sha256File(f)).toBe(backup.fileSha[t]);
    }
    expect(fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8')).toContain('<domain');

    const reason = async (d: string) => (await failure(svc.run({ vmId, restorePointId: rpId, mode: 'directory', directory: d }, taskContext()))) as AppError;
    expect(await reason(dir)).toMatchObject({ code: 'RESTORE.DIRECTORY_INVALID', details: { reason: 'not_empty' } });
    expect(await reason(path.join(storageRoot, 'nope'))).toMatchObject({ code: 'RESTORE.DIRECTORY_INVALID', details: { reason: 'missing' } });
    const ro = path.join(storageRoot, 'ro');
    fs.mkdirSync(ro);
    spawnSync('chattr', ['+i', ro]);
    try {
      expect(await reason(ro)).toMatchObject({ code: 'RESTORE.DIRECTORY_INVALID', details: { reason: 'not_writable' } });
    } finally {
      spawnSync('chattr', ['-i', ro]);
    }
    // Submit-time validation gives the same answer before any task exists.
    await expect(svc.validate(vmId, { restorePointId: rpId, mode: 'directory', directory: dir })).rejects.toMatchObject({ code: 'RESTORE.DIRECTORY_INVALID' });
  }, 120_000);

  it('a BackROLL repository without config archive: disks found by epoch suffix, path from the archive', async () => {
    const { vm, vmId, rpId, backup } = prepare('vm-stopped', `rst-${tag}-backroll`, false, { config: false });
    scribble(h, vm, 'vda', false);
    await service().run({ vmId, restorePointId: rpId, mode: 'in-place' }, taskContext());
    expectRestored(vm, backup);
  }, 120_000);

  it('download: the stream equals the archived file; aborting stops borg', async () => {
    const { vmId, rpId, backup } = prepare('vm-running', `rst-${tag}-dl`, false);
    const svc = service();
    const dl = await svc.download(vmId, rpId, 'vda');
    expect(dl.size).toBe(backup.sizes.vda);
    const hash = createHash('sha256');
    for await (const c of dl.stream) hash.update(c as Buffer);
    await dl.done;
    expect(hash.digest('hex')).toBe(backup.fileSha.vda);

    const dl2 = await svc.download(vmId, rpId, 'vda');
    dl2.abort();
    await expect(dl2.done).rejects.toMatchObject({ code: 'TASK.CANCELED' });
    await expect(svc.download(vmId, rpId, 'vdz')).rejects.toMatchObject({ code: 'RESTORE_POINT.DISK_NOT_FOUND' });
  }, 120_000);
});
