/**
 * Restores write only to the VM's own disks (Trust issue, section 3), against the KVM lab with
 * real borg, real libvirt and a real SQLite index: a tampered repository (an archive whose item
 * path points at another file, an image naming a planted backing file) and restore points whose
 * disks no longer match what they recorded.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Borg } from '../adapters/borg/borg.js';
import { BorgReader } from '../adapters/borg/extract.js';
import { localImageTool } from '../adapters/qemu-img/check.js';
import { SshPool } from '../adapters/ssh/ssh-pool.js';
import { canaryPresent, lab, labConnectOptions, labSkipReason, type LabHost } from '../adapters/ssh/test-lab.js';
import { insertInventory } from '../backups/lab-fixtures.js';
import { RepositoryStore } from '../backups/repository-store.js';
import { RestorePointRepository, type RestorePointDisk } from '../backups/restore-point.repository.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import type { TaskContext } from '../tasks/task-context.js';
import { nodeRestoreFiles } from './restore-files.js';
import { backupVm, cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, removeVm, run, sha256File, storeTemplate, type CloneVm } from './restore-lab-fixtures.js';
import { RestoreRepository } from './restore.repository.js';
import { RestoreService, type VmLocks } from './restore.service.js';

const skipReason = !lab ? labSkipReason : !HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root to act as the VM storage owner)' : '';

function taskContext(): TaskContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    taskId: randomUUID(),
    signal: new AbortController().signal,
    startedBy: 'user:test',
    lines,
    async log(level, message) {
      lines.push(`${level}: ${message}`);
    },
    progress() {},
  };
}

const locks: VmLocks = { withVmLock: (_id, _owner, fn) => fn({ signal: new AbortController().signal }) };

describe.skipIf(skipReason !== '')(`restores from a tampered repository, against the KVM lab${skipReason}`, () => {
  const l = lab!;
  const h: LabHost = l.hosts[0]!;
  const tag = randomBytes(3).toString('hex');
  const root = `/var/tmp/backroll-tamper-test-${tag}`;
  const storage = path.join(root, 'storage');
  const dataDir = path.join(root, 'data');
  const env = { BORG_PASSPHRASE: '', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
  const clones: CloneVm[] = [];
  const newVms: string[] = [];
  let pool: SshPool;
  let db: Db;
  let hostId: string;
  let storageId: string;
  let epoch = Math.floor(Date.now() / 1000) - 5000;
  let service: RestoreService;

  /** A clone of a lab VM (shut off), its VM row, and one restore point of it recorded like the backup engine does. */
  async function prepare(sourceVm: string, name: string, running = false) {
    const vm = cloneVm(l, h, sourceVm, name, `${tag}-${clones.length}`, running);
    clones.push(vm);
    const vmId = randomUUID();
    const now = new Date().toISOString();
    await db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'shut off', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    return { vm, vmId };
  }

  async function record(vmId: string, vm: CloneVm, ep: number, opts: { recorded: boolean; backingChain?: (d: CloneVm['disks'][number]) => string[] }) {
    const repository = path.join(storage, vm.name);
    const disks: RestorePointDisk[] = vm.disks.map((d) => ({
      target: d.target,
      path: d.path,
      format: 'qcow2',
      archive: `${d.target}_${path.basename(d.path, '.qcow2')}_${ep}`,
      virtualSize: null,
      backingChain: opts.backingChain?.(d) ?? (d.backing ? [d.backing] : []),
      originalSize: null,
      compressedSize: null,
      deduplicatedSize: null,
    }));
    const id = randomUUID();
    await new RestorePointRepository(db).insert({
      id,
      vmId,
      storageId,
      repository,
      epoch: ep,
      archives: opts.recorded ? [...disks.map((d) => d.archive), `config_${ep}`].sort() : [],
      disks: opts.recorded ? disks : [],
      originalSize: null,
      compressedSize: null,
      deduplicatedSize: null,
      durationMs: null,
      taskId: null,
      startedBy: null,
      source: opts.recorded ? 'backroll' : 'borg',
      createdAt: new Date(ep * 1000).toISOString(),
    });
    return id;
  }

  /** Replaces archive `name` with one holding `file` (at its own absolute path). */
  function replaceArchive(repository: string, name: string, file: string) {
    run('borg', ['delete', `${repository}::${name}`], { env });
    run('borg', ['create', `${repository}::${name}`, file], { env });
  }

  const restore = (vmId: string, restorePointId: string) => service.run({ vmId, restorePointId, mode: 'in-place' }, taskContext());

  beforeAll(async () => {
    expect(canaryPresent(l)).toEqual([]);
    fs.mkdirSync(storage, { recursive: true });
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    pool = new SshPool({ resolveHost: () => labConnectOptions(l, h.user) });
    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const inv = await insertInventory(db, l, storage);
    hostId = inv.hosts.get(h.name)!;
    storageId = inv.storageId;
    service = new RestoreService({
      lookup: new RestoreRepository(db),
      borg: new BorgReader({ baseDir: path.join(dataDir), lockWait: 1 }),
      images: localImageTool(),
      files: nodeRestoreFiles,
      hostExec: () => (argv, o) => pool.exec(h.name, argv, o),
      locks,
      repoAccess: async (rp, vm) => (await new RepositoryStore(dataDir, new Borg({ baseDir: dataDir })).access(rp.repository, vm.uuid))!,
      shutdownGraceMs: 1500,
    });
  });

  afterAll(async () => {
    pool?.closeAll();
    await db?.destroy();
    for (const uuid of newVms) removeVm(h, uuid);
    for (const vm of clones) removeClone(h, vm);
    spawnSync('chattr', ['-R', '-i', root]);
    fs.rmSync(root, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('an archive whose item path points at another file: refused when the restore point recorded its disks; written onto the VM\'s own disk otherwise', async () => {
    const { vm, vmId } = await prepare('vm-running', `tamper-${tag}-a`);
    const ep = ++epoch;
    backupVm(h, storage, vm, ep);
    // The victim: a file of the host user outside the VM's disks.
    const victimDir = path.join(vm.dir, 'victim');
    fs.mkdirSync(victimDir);
    const victim = path.join(victimDir, 'victim.img');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', victim, '64M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', victim]);
    const evilSha = rawSha(victim);
    const archive = `vda_${path.basename(vm.disks[0]!.path, '.qcow2')}_${ep}`;
    replaceArchive(path.join(storage, vm.name), archive, victim);
    // The victim's content as it is before the restore (what must stay).
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 0 1M', victim]);
    const victimBefore = sha256File(victim);
    const diskBefore = sha256File(vm.disks[0]!.path);

    const recorded = await record(vmId, vm, ep, { recorded: true });
    await expect(restore(vmId, recorded)).rejects.toMatchObject({ code: 'RESTORE_POINT.MANIFEST_MISMATCH', message: expect.stringContaining(victim) });
    expect(sha256File(victim)).toBe(victimBefore);
    expect(sha256File(vm.disks[0]!.path)).toBe(diskBefore);
    expect(fs.readdirSync(victimDir)).toEqual(['victim.img']);

    // A restore point found in borg (BackROLL's: nothing recorded) has only the archive to go by:
    // the image goes onto the VM's current vda, never to the item path.
    await db.deleteFrom('restore_points').where('id', '=', recorded).execute();
    const found = await record(vmId, vm, ep, { recorded: false });
    const res = await restore(vmId, found);
    expect(res).toMatchObject({ mode: 'in-place', disks: [{ target: 'vda', path: vm.disks[0]!.path }] });
    expect(sha256File(victim)).toBe(victimBefore);
    expect(fs.readdirSync(victimDir)).toEqual(['victim.img']);
    expect(rawSha(vm.disks[0]!.path)).toBe(evilSha);

    // As a new VM: its disk goes next to the VM's disk, not into the directory the item path names.
    const copy = (await service.run({ vmId, restorePointId: found, mode: 'new-vm', newName: `${vm.name}-copy`, hostId, start: false }, taskContext())) as { vm: { uuid: string }; disks: Array<{ path: string }> };
    newVms.push(copy.vm.uuid);
    expect(path.dirname(copy.disks[0]!.path)).toBe(vm.dir);
    expect(fs.readdirSync(victimDir)).toEqual(['victim.img']);
  });

  it('a restored image naming a backing file the restore point did not record: refused, nothing put back', async () => {
    const { vm, vmId } = await prepare('vm-running', `tamper-${tag}-b`);
    const ep = ++epoch;
    backupVm(h, storage, vm, ep);
    // The attacker controls the storage: a "template" and an image of vda whose backing file it names.
    const planted = path.join(vm.dir, 'planted', 'planted.qcow2');
    fs.mkdirSync(path.dirname(planted));
    run('qemu-img', ['create', '-q', '-f', 'qcow2', planted, '64M']);
    storeTemplate(storage, planted);
    const evil = path.join(root, 'evil', path.basename(vm.disks[0]!.path));
    fs.mkdirSync(path.dirname(evil), { recursive: true });
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', planted, '-F', 'qcow2', evil, '64M']);
    fs.rmSync(planted);
    // Same item path as the real disk, so only the backing file differs from the record.
    fs.copyFileSync(evil, `${vm.disks[0]!.path}.evil`);
    const real = `${vm.disks[0]!.path}.real`;
    fs.renameSync(vm.disks[0]!.path, real);
    fs.renameSync(`${vm.disks[0]!.path}.evil`, vm.disks[0]!.path);
    replaceArchive(path.join(storage, vm.name), `vda_${path.basename(vm.disks[0]!.path, '.qcow2')}_${ep}`, vm.disks[0]!.path);
    fs.renameSync(real, vm.disks[0]!.path);
    const diskBefore = sha256File(vm.disks[0]!.path);

    for (const recorded of [true, false]) {
      const id = await record(vmId, vm, ep, { recorded });
      await expect(restore(vmId, id), `recorded: ${recorded}`).rejects.toMatchObject({ code: 'RESTORE_POINT.MANIFEST_MISMATCH', message: expect.stringContaining(`${JSON.stringify(planted)} as its backing file`) });
      expect(fs.existsSync(planted)).toBe(false);
      expect(sha256File(vm.disks[0]!.path)).toBe(diskBefore);
      await db.deleteFrom('restore_points').where('id', '=', id).execute();
    }
  });

  it('an archive holding a corrupt qcow2 image (zeroed refcount block): refused by qemu-img check before the swap; the disk and the running VM untouched', async () => {
    const { vm, vmId } = await prepare('vm-running', `tamper-${tag}-d`, true);
    const ep = ++epoch;
    backupVm(h, storage, vm, ep);
    const disk = vm.disks[0]!.path;
    // The same image with its first refcount block zeroed: every cluster's refcount 0 (qemu-img check: corruptions).
    const bad = `${disk}.bad`;
    fs.copyFileSync(disk, bad);
    const fd = fs.openSync(bad, 'r+');
    try {
      const header = Buffer.alloc(104);
      fs.readSync(fd, header, 0, 104, 0);
      const clusterSize = 1 << header.readUInt32BE(20);
      const entry = Buffer.alloc(8);
      fs.readSync(fd, entry, 0, 8, Number(header.readBigUInt64BE(48)));
      fs.writeSync(fd, Buffer.alloc(clusterSize), 0, clusterSize, Number(entry.readBigUInt64BE(0)));
    } finally {
      fs.closeSync(fd);
    }
    expect(spawnSync('qemu-img', ['check', '-f', 'qcow2', bad]).status).toBe(2);
    // The archive of vda now holds the corrupt image at the disk's own path.
    const real = `${disk}.real`;
    fs.renameSync(disk, real);
    fs.renameSync(bad, disk);
    replaceArchive(path.join(storage, vm.name), `vda_${path.basename(disk, '.qcow2')}_${ep}`, disk);
    fs.renameSync(real, disk);
    const before = rawSha(disk);
    const inode = fs.statSync(disk).ino;

    const id = await record(vmId, vm, ep, { recorded: true });
    await expect(restore(vmId, id)).rejects.toMatchObject({ code: 'RESTORE.VERIFY_FAILED', message: expect.stringContaining('fails qemu-img check') });
    expect(fs.statSync(disk).ino).toBe(inode);
    expect(rawSha(disk)).toBe(before);
    expect(domState(h, vm.uuid)).toBe('running');
    expect(leftovers(vm.dir)).toEqual([]);
  }, 120_000);

  it('a restore point whose disks no longer match what it recorded (a disk archive pruned alone) is refused', async () => {
    const { vm, vmId } = await prepare('vm-twodisks', `tamper-${tag}-c`);
    const ep = ++epoch;
    backupVm(h, storage, vm, ep);
    const id = await record(vmId, vm, ep, { recorded: true });
    run('borg', ['delete', `${path.join(storage, vm.name)}::vdb_${path.basename(vm.disks[1]!.path, '.qcow2')}_${ep}`], { env });
    const before = vm.disks.map((d) => sha256File(d.path));
    await expect(restore(vmId, id)).rejects.toMatchObject({ code: 'RESTORE_POINT.MANIFEST_MISMATCH', message: expect.stringMatching(/vdb_.* missing/) });
    // Also after a reconcile brought the archive list in line: the recorded disks still say two.
    await db.updateTable('restore_points').set({ archives: JSON.stringify([`config_${ep}`, `vda_${path.basename(vm.disks[0]!.path, '.qcow2')}_${ep}`]) }).where('id', '=', id).execute();
    await expect(restore(vmId, id)).rejects.toMatchObject({ code: 'RESTORE_POINT.MANIFEST_MISMATCH', message: expect.stringContaining('recorded 2 disks, the repository holds 1') });
    expect(vm.disks.map((d) => sha256File(d.path))).toEqual(before);
  });
});
