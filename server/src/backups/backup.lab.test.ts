/**
 * The backup engine against the real KVM lab: real libvirt over SSH, real QEMU, real borg.
 * Handlers run directly with a TaskContext (the job system runs them the same way).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../adapters/ssh/test-lab.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createBackupModule, type BackupModule } from './index.js';
import { EVIL, allBytes, fakeContext, insertInventory, sha256, sourcesOf, toRaw, writeGuest, writeGuestAsync } from './lab-fixtures.js';
import { isOverlayPath, overlaysOfDisk } from './naming.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const skip = !lab || borgMissing;
const reason = labSkipReason || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');
const MiB = 1 << 20;

describe.skipIf(skip)(`vm.backup against the KVM lab${reason}`, () => {
  const l = lab!;
  let h1: LabHost;
  let db: Db;
  let tmp: string;
  let storage: string;
  let mod: BackupModule;
  let inv: Awaited<ReturnType<typeof insertInventory>>;
  const vmId = (name: string) => inv.vms.get(`kvmhost1/${name}`)!;

  function borgEnv() {
    return { ...process.env, BORG_BASE_DIR: path.join(tmp, 'data', 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' };
  }
  /** borg extract of one archive into a fresh directory; returns that directory. */
  function extract(repo: string, archive: string): string {
    const out = fs.mkdtempSync(path.join(tmp, 'x-'));
    const r = spawnSync('borg', ['extract', `${repo}::${archive}`], { cwd: out, env: borgEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`borg extract ${archive}: ${r.stderr}`);
    return out;
  }
  /** Backroll overlays of the given VM's disks (only its own: other VMs of the lab may be in a backup). */
  function noOverlaysLeft(dir: string, vm?: string) {
    const disks = (vm ? h1.vms.filter((v) => v.name === vm) : h1.vms).flatMap((v) => v.disks.map((d) => d.path));
    const names = fs.readdirSync(dir);
    return disks.flatMap((d) => overlaysOfDisk(d, names)).map((f) => path.basename(f)).filter((f) => isOverlayPath(f));
  }

  beforeAll(async () => {
    h1 = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-backup-lab-'));
    storage = path.join(tmp, 'storage');
    fs.mkdirSync(storage);
    fs.mkdirSync(path.join(tmp, 'data'), { mode: 0o700 });
    db = openDatabase({ dialect: 'sqlite', url: path.join(tmp, 'data', 'backroll.db') });
    await migrateToLatest(db);
    inv = await insertInventory(db, l, storage, { quiesce: 'preferred' });
    // This file tests the snapshot + borg create path; changed-block tracking: incremental.lab.test.ts.
    await db.updateTable('policies').set({ changed_block_tracking: 0 }).where('id', '=', inv.policyId).execute();
    const { sshHostAccess } = await import('./host-access.js');
    const { BackupLookup } = await import('./backup.lookup.js');
    mod = createBackupModule({ db, dataDir: path.join(tmp, 'data'), hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath), lockLeaseMs: 3000 });
  });

  afterAll(async () => {
    mod?.hosts.close?.();
    await db?.destroy();
    if (tmp && !process.env.BACKROLL_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('backs up a running VM while the guest writes: the restore point holds exactly what was written before the snapshot', async () => {
    const vm = 'vm-running';
    const disk = h1.vms.find((v) => v.name === vm)!.disks[0]!.path;
    // Patterns distinct from what earlier runs left in the disk: a random base per run.
    const initial = path.join(tmp, 'running-initial.raw');
    toRaw(disk, initial);
    const seed = 0x20 + Math.floor(Math.random() * 0x80);
    const pick = (offset: number, k: number) => {
      for (let b = (seed + k) % 0xff || 1; ; b = (b % 0xfe) + 1) if (!allBytes(initial, offset, MiB, b)) return b;
    };
    const BEFORE = pick(4 * MiB, 0);
    const AFTER = pick(6 * MiB, 1);
    writeGuest(h1, vm, '4M', '1M', BEFORE); // before: must be in the restore point
    // A writer that keeps writing distinct patterns, one MiB each, from 16 MiB on.
    const writes: Array<{ offset: number; byte: number; start: number; end: number }> = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 40; i++) {
        const w = { offset: (16 + i) * MiB, byte: pick((16 + i) * MiB, 2 + i), start: Date.now(), end: 0 };
        await writeGuestAsync(h1, vm, `${16 + i}M`, '1M', w.byte);
        w.end = Date.now();
        writes.push(w);
      }
    })();
    await new Promise((r) => setTimeout(r, 1500)); // some writes land before the snapshot
    let snapshotAt = 0;
    const ctx = fakeContext(async (m) => {
      if (m.startsWith('external snapshot taken')) {
        snapshotAt = Date.now();
        // Written right after the snapshot, before borg reads: must NOT be in the restore point.
        writeGuest(h1, vm, '6M', '1M', AFTER);
        await new Promise((r) => setTimeout(r, 1200)); // let the writer land more writes on the overlay
      }
    });
    const snapshotRequestedAfter = Date.now();
    const res = await mod.engine.backupVm({ vmId: vmId(vm) }, ctx);
    writing = false;
    await writer;
    expect(snapshotAt).toBeGreaterThan(0);
    expect(res.archives).toEqual([`config_${res.epoch}`, `vda_vm-running-vda_${res.epoch}`]);

    // The chain is back on the original file, live and persistent; no overlay remains.
    expect(sourcesOf(h1, vm)).toEqual([disk]);
    expect(sourcesOf(h1, vm, true)).toEqual([disk]);
    expect(noOverlaysLeft(path.dirname(disk), vm)).toEqual([]);

    const x = extract(res.repository, `vda_vm-running-vda_${res.epoch}`);
    const raw = path.join(tmp, 'running.raw');
    toRaw(path.join(x, disk.slice(1)), raw);
    expect(allBytes(raw, 0, MiB, 0x11)).toBe(true); // lab data
    expect(allBytes(raw, 4 * MiB, MiB, BEFORE)).toBe(true); // before
    expect(allBytes(raw, 6 * MiB, MiB, AFTER)).toBe(false); // after
    const before = writes.filter((w) => w.end > 0 && w.end < snapshotRequestedAfter);
    const after = writes.filter((w) => w.start > snapshotAt);
    expect(before.length).toBeGreaterThan(0);
    expect(after.length).toBeGreaterThan(0);
    for (const w of before) expect(allBytes(raw, w.offset, MiB, w.byte)).toBe(true);
    for (const w of after) expect(allBytes(raw, w.offset, MiB, w.byte)).toBe(false);

    // Everything written during the backup is in the disk afterwards.
    const live = path.join(tmp, 'running-live.raw');
    toRaw(disk, live);
    expect(allBytes(live, 6 * MiB, MiB, AFTER)).toBe(true);
    for (const w of writes) expect(allBytes(live, w.offset, MiB, w.byte)).toBe(true);

    // The config archive: domain.xml + backroll.json as relative paths.
    const c = extract(res.repository, `config_${res.epoch}`);
    expect(fs.readdirSync(c).sort()).toEqual(['backroll.json', 'domain.xml']);
    const meta = JSON.parse(fs.readFileSync(path.join(c, 'backroll.json'), 'utf8'));
    expect(meta).toMatchObject({ epoch: res.epoch, vm: { name: vm }, disks: [{ target: 'vda', path: disk, format: 'qcow2', virtualSize: 64 * MiB, backingChain: [] }] });
    const rp = await mod.restorePoints.find(vmId(vm), res.restorePointId);
    expect(rp).toMatchObject({ epoch: res.epoch, taskId: ctx.taskId, startedBy: 'user:lab-test', source: 'backroll' });
    expect(rp!.originalSize).toBeGreaterThan(0);
    expect(ctx.progresses.some((p) => p.step === 'vda: borg create' && (p.percent ?? 0) > 0)).toBe(true);
  }, 180_000);

  it.each([
    ['vm-stopped', ['vda']],
    ['vm-twodisks', ['vda', 'vdb']],
    ['vm-template', ['vda']],
    [EVIL, ['vda']],
  ])('backs up %s: extracted disks match the source', async (vm, targets) => {
    const lv = h1.vms.find((v) => v.name === vm)!;
    const ctx = fakeContext();
    const templates = lv.disks.filter((d) => d.backing).map((d) => [d.backing!, sha256(d.backing!)] as const);
    const res = await mod.engine.backupVm({ vmId: vmId(vm) }, ctx);
    // The overlay is committed into the VM's own disk, never further down into a shared template.
    for (const [t, sum] of templates) expect(sha256(t)).toBe(sum);
    expect(res.repository).toBe(path.join(storage, vm));
    expect(res.archives.filter((a) => !a.startsWith('config_')).map((a) => a.split('_')[0])).toEqual(targets);
    for (const d of lv.disks) {
      const archive = res.archives.find((a) => a.startsWith(`${d.target}_`))!;
      const x = path.join(extract(res.repository, archive), d.path.slice(1));
      const extra: string[] = [];
      if (d.backing) {
        // Restore from the template store: rebase the extracted overlay onto the stored copy.
        const stored = path.join(storage, 'template', path.basename(d.backing));
        expect(fs.readFileSync(`${stored}.sha256`, 'utf8').split(' ')[0]).toBe(sha256(d.backing));
        const rb = spawnSync('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-b', stored, '-F', 'qcow2', x], { encoding: 'utf8' });
        expect(rb.status, rb.stderr).toBe(0);
      }
      const a = path.join(tmp, 'src.raw');
      const b = path.join(tmp, 'ext.raw');
      toRaw(d.path, a);
      toRaw(x, b, extra);
      expect(sha256(b)).toBe(sha256(a));
      for (const data of (d as unknown as { data: Array<{ offset: number; length: number; byte: number }> }).data) {
        expect(allBytes(b, data.offset, data.length, data.byte)).toBe(true);
      }
      expect(sourcesOf(h1, vm)).toEqual(lv.disks.map((x) => x.path));
      if (d.backing) {
        const { hostVirsh } = await import('./lab-fixtures.js');
        // Live: QEMU still reads through the template; persistent: no explicit empty <backingStore/>.
        expect(hostVirsh(h1, 'dumpxml', '--domain', vm)).toContain(`<source file='${d.backing}'/>`);
        expect(hostVirsh(h1, 'dumpxml', '--inactive', '--domain', vm)).not.toContain('<backingStore/>');
      }
      expect(noOverlaysLeft(path.dirname(d.path), vm)).toEqual([]);
    }
    expect(ctx.lines.some((x) => x.message.includes(lv.state === 'shut off' ? 'no snapshot needed' : 'external snapshot taken'))).toBe(true);
  }, 120_000);

  it('refuses a second backup of the same VM at once with VM.LOCKED', async () => {
    const id = vmId('vm-twodisks');
    const results = await Promise.allSettled([mod.engine.backupVm({ vmId: id }, fakeContext()), mod.engine.backupVm({ vmId: id }, fakeContext())]);
    const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toMatchObject({ code: 'VM.LOCKED' });
  }, 120_000);

  it('cancel mid-backup: borg stops, the overlay is committed back, the next backup succeeds from a clean chain', async () => {
    const vm = 'vm-twodisks';
    const lv = h1.vms.find((v) => v.name === vm)!;
    const ctx = fakeContext();
    const orig = ctx.progress;
    ctx.progress = (p) => {
      orig(p);
      if (p.step === 'vda: borg create' && !ctx.controller.signal.aborted) setTimeout(() => ctx.controller.abort(new Error('canceled')), 50);
    };
    const before = (await mod.restorePoints.listByVm(vmId(vm))).length;
    await expect(mod.engine.backupVm({ vmId: vmId(vm) }, ctx)).rejects.toMatchObject({ code: expect.stringMatching(/TASK.CANCELED|ABORT/i) });
    expect(sourcesOf(h1, vm)).toEqual(lv.disks.map((d) => d.path));
    expect(noOverlaysLeft(path.dirname(lv.disks[0]!.path), vm)).toEqual([]);
    expect((await mod.restorePoints.listByVm(vmId(vm))).length).toBe(before);
    const again = await mod.engine.backupVm({ vmId: vmId(vm) }, fakeContext());
    expect(again.archives).toHaveLength(3);
  }, 120_000);

  it('pre-flight of a shut-off VM left on an overlay: offline commit, domain redefined, overlay removed', async () => {
    const vm = 'vm-stopped';
    const disk = h1.vms.find((v) => v.name === vm)!.disks[0]!.path;
    const { hostVirsh, domUuid } = await import('./lab-fixtures.js');
    const overlay = disk.replace(/\.qcow2$/, '.backroll-1700000001.qcow2');
    const before = path.join(tmp, 'stopped-before.raw');
    toRaw(disk, before);
    hostVirsh(h1, 'snapshot-create-as', '--domain', domUuid(h1, vm), '--disk-only', '--atomic', '--no-metadata', '--diskspec', `vda,snapshot=external,file=${overlay}`);
    expect(sourcesOf(h1, vm, true)).toEqual([overlay]);
    await mod.engine.recover(vmId(vm));
    expect(sourcesOf(h1, vm, true)).toEqual([disk]);
    expect(fs.existsSync(overlay)).toBe(false);
    const after = path.join(tmp, 'stopped-after.raw');
    toRaw(disk, after);
    expect(sha256(after)).toBe(sha256(before));
  }, 60_000);

  it('kill -9 of the process mid-backup: the next backup starts from a clean chain and succeeds', async () => {
    const vm = 'vm-twodisks';
    const lv = h1.vms.find((v) => v.name === vm)!;
    const markerFile = path.join(tmp, 'child-marker');
    const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
    const child = spawn(process.execPath, [path.join(root, '../node_modules/vitest/vitest.mjs'), 'run', '--config', path.join(root, 'src/backups/lab-child/vitest.config.ts')], {
      cwd: root,
      detached: true, // its own process group: kill -9 takes node, its workers and borg at once, like a crashed machine
      stdio: 'ignore',
      env: {
        ...process.env,
        BACKROLL_CHILD_MARKER: markerFile,
        BACKROLL_CHILD_DB: path.join(tmp, 'data', 'backroll.db'),
        BACKROLL_CHILD_DATA: path.join(tmp, 'data'),
        BACKROLL_CHILD_KEY: l.clientKeyPath,
        BACKROLL_CHILD_VM: vmId(vm),
      },
    });
    try {
      for (let i = 0; i < 240 && !fs.existsSync(markerFile); i++) await new Promise((r) => setTimeout(r, 250));
      expect(fs.existsSync(markerFile)).toBe(true);
      // Mid-backup: the VM runs on its overlays.
      expect(sourcesOf(h1, vm).every((p) => isOverlayPath(p))).toBe(true);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    expect(sourcesOf(h1, vm).every((p) => isOverlayPath(p))).toBe(true);
    // The dead worker's VM lock expires with its lease (3 s here); until then: VM.LOCKED.
    let res;
    for (let i = 0; ; i++) {
      try {
        res = await mod.engine.backupVm({ vmId: vmId(vm) }, fakeContext());
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'VM.LOCKED' || i > 20) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    expect(res.archives).toHaveLength(3);
    expect(sourcesOf(h1, vm)).toEqual(lv.disks.map((d) => d.path));
    expect(sourcesOf(h1, vm, true)).toEqual(lv.disks.map((d) => d.path));
    expect(noOverlaysLeft(path.dirname(lv.disks[0]!.path), vm)).toEqual([]);
  }, 180_000);

  it('refuses a repository that belongs to another VM with the same name', async () => {
    const vm = 'vm-stopped';
    const owner = path.join(storage, vm, 'backroll-vm.json');
    const saved = fs.readFileSync(owner, 'utf8');
    fs.writeFileSync(owner, JSON.stringify({ ...JSON.parse(saved), vmUuid: '00000000-0000-4000-8000-000000000000' }));
    try {
      await expect(mod.engine.backupVm({ vmId: vmId(vm) }, fakeContext())).rejects.toMatchObject({ code: 'BACKUP.REPOSITORY_OWNED_BY_OTHER_VM' });
    } finally {
      fs.writeFileSync(owner, saved);
    }
  }, 60_000);

  it('quiesce required without a guest agent fails clearly, and leaves no overlay', async () => {
    await db.updateTable('policies').set({ quiesce: 'required' }).where('id', '=', inv.policyId).execute();
    try {
      await expect(mod.engine.backupVm({ vmId: vmId('vm-running') }, fakeContext())).rejects.toMatchObject({ code: 'SNAPSHOT.QUIESCE_UNAVAILABLE' });
      expect(noOverlaysLeft(path.dirname(h1.vms[0]!.disks[0]!.path), 'vm-running')).toEqual([]);
    } finally {
      await db.updateTable('policies').set({ quiesce: 'preferred' }).where('id', '=', inv.policyId).execute();
    }
  }, 60_000);

  it('lists an existing BackROLL repository (unencrypted, no config archive) grouped by epoch', async () => {
    const { BackupService } = await import('./backup.service.js');
    const vm = 'vm-running';
    const repo = path.join(storage, vm);
    fs.rmSync(repo, { recursive: true, force: true });
    await db.deleteFrom('restore_points').where('vm_id', '=', vmId(vm)).execute();
    const env = borgEnv();
    expect(spawnSync('borg', ['init', '--encryption=none', repo], { env }).status).toBe(0);
    const src = path.join(tmp, 'legacy');
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'i-2-34-VM.qcow2'), 'legacy disk');
    for (const epoch of [1732665600, 1732752000]) {
      for (const name of [`vda_i-2-34-VM_${epoch}`, `vdb_data-disk_${epoch}`]) {
        const r = spawnSync('borg', ['create', `${repo}::${name}`, path.join(src, 'i-2-34-VM.qcow2')], { env, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
      }
    }
    const service = new BackupService(mod, { submit: async () => Promise.reject(new Error('no tasks here')) });
    const { items: points } = await service.reconcileLocked(vmId(vm), 'test');
    expect(points.map((p) => [p.epoch, p.archives, p.source])).toEqual([
      [1732752000, ['vda_i-2-34-VM_1732752000', 'vdb_data-disk_1732752000'], 'borg'],
      [1732665600, ['vda_i-2-34-VM_1732665600', 'vdb_data-disk_1732665600'], 'borg'],
    ]);
    // The next backup adopts it (owner record written) and adds to it.
    const res = await mod.engine.backupVm({ vmId: vmId(vm) }, fakeContext());
    expect(JSON.parse(fs.readFileSync(path.join(repo, 'backroll-vm.json'), 'utf8'))).toMatchObject({ adopted: true, encryption: 'none' });
    expect(res.epoch).toBeGreaterThan(1732752000);
  }, 120_000);

  it('pre-flight merges a leftover overlay of an interrupted run (VM still on it) and deletes stale ones', async () => {
    const vm = 'vm-running';
    const disk = h1.vms.find((v) => v.name === vm)!.disks[0]!.path;
    const { hostVirsh, domUuid } = await import('./lab-fixtures.js');
    const uuid = domUuid(h1, vm);
    const overlay = disk.replace(/\.qcow2$/, '.backroll-1700000000.qcow2');
    hostVirsh(h1, 'snapshot-create-as', '--domain', uuid, '--disk-only', '--atomic', '--no-metadata', '--diskspec', `vda,snapshot=external,file=${overlay}`);
    expect(sourcesOf(h1, vm)).toEqual([overlay]);
    const pre = path.join(tmp, 'pre-recover.raw');
    toRaw(disk, pre);
    let B = 0x30 + Math.floor(Math.random() * 0xa0);
    while (allBytes(pre, 8 * MiB, MiB, B)) B = (B % 0xfe) + 1;
    writeGuest(h1, vm, '8M', '1M', B); // lands in the overlay
    const stale = disk.replace(/\.qcow2$/, '.backroll-1600000000.qcow2');
    spawnSync('runuser', ['-u', h1.user, '--', 'qemu-img', 'create', '-f', 'qcow2', stale, '1M']);
    await mod.engine.recover(vmId(vm));
    expect(sourcesOf(h1, vm)).toEqual([disk]);
    expect(fs.existsSync(overlay)).toBe(false);
    expect(fs.existsSync(stale)).toBe(false);
    const live = path.join(tmp, 'recovered.raw');
    toRaw(disk, live);
    expect(allBytes(live, 8 * MiB, MiB, B)).toBe(true);
    const res = await mod.engine.backupVm({ vmId: vmId(vm) }, fakeContext());
    expect(res.archives).toHaveLength(2);
  }, 120_000);
});
