/**
 * Incremental backups by changed-block tracking against the real KVM lab (docs/incremental.md):
 * libvirt's pull-mode backup job with checkpoints under qemu:///session, then the engine:
 * full → guest writes → incremental (reads ≤ 5 %), every restore point a complete image equal
 * to a model of the guest-visible disk kept here; a write during the job; base pruned;
 * chain breaks → full read with the reason; mixed old/new repository; kill -9 mid-incremental.
 *
 * The test VM is this file's own (64 MiB qcow2 v3 disk), created and removed here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainBackupJobs } from '../adapters/libvirt/backup-job.js';
import { canaryPresent, lab, labHost, labSkipReason, runAsHostUser, type LabHost } from '../adapters/ssh/test-lab.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createBackupModule, type BackupModule } from './index.js';
import { fakeContext, hostVirsh, insertInventory, writeGuest } from './lab-fixtures.js';
import { JOB_DIR } from './incremental.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const skip = !lab || borgMissing;
const reason = labSkipReason || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');
const MiB = 1 << 20;
const SIZE = 64 * MiB;

describe.skipIf(skip)(`incremental backups (changed-block tracking) against the KVM lab${reason}`, () => {
  const l = lab!;
  let h1: LabHost;
  let db: Db;
  let tmp: string;
  let storage: string;
  let mod: BackupModule;
  let inv: Awaited<ReturnType<typeof insertInventory>>;
  const name = `inc-${randomBytes(3).toString('hex')}`;
  let disk: string;
  let uuid: string;
  let vmId: string;
  /** The guest-visible disk as the test wrote it (the model). */
  let model = Buffer.alloc(SIZE);
  /** Days added to the clock: restore points of different days are not pruned by daily retention. */
  let dayOffset = 0;

  const asHost = (...argv: string[]) => {
    const r = runAsHostUser(h1, argv);
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  function write(offsetMiB: number, lengthMiB: number, byte: number) {
    writeGuest(h1, name, `${offsetMiB}M`, `${lengthMiB}M`, byte);
    model.fill(byte, offsetMiB * MiB, (offsetMiB + lengthMiB) * MiB);
  }
  function borgEnv() {
    return { ...process.env, BORG_BASE_DIR: path.join(tmp, 'data', 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' };
  }
  const repo = () => path.join(storage, name);
  /** The guest-visible content of a restore point's disk archive (borg extract + qemu-img convert). */
  function extractRaw(archive: string, format = 'qcow2'): Buffer {
    const out = fs.mkdtempSync(path.join(tmp, 'x-'));
    const r = spawnSync('borg', ['extract', `${repo()}::${archive}`], { cwd: out, env: borgEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`borg extract ${archive}: ${r.stderr}`);
    const file = path.join(out, disk.replace(/^\//, ''));
    const raw = path.join(out, 'disk.raw');
    const c = spawnSync('qemu-img', ['convert', '-f', format, '-O', 'raw', file, raw], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`qemu-img convert: ${c.stderr}`);
    const buf = fs.readFileSync(raw);
    fs.rmSync(out, { recursive: true, force: true });
    return buf;
  }
  const backup = (ctx = fakeContext()) => mod.engine.backupVm({ vmId }, ctx).then((res) => ({ res, ctx }));
  const rp = async (id: string) => (await mod.restorePoints.find(vmId, id))!;
  const diskArchive = (archives: string[]) => archives.find((a) => !a.startsWith('config_'))!;
  const noLeftovers = () => {
    expect(fs.readdirSync(path.dirname(disk)).filter((n) => JOB_DIR.test(n))).toEqual([]);
    expect(hostVirsh(h1, 'domjobinfo', '--domain', name)).toMatch(/Job type:\s+None/);
  };

  beforeAll(async () => {
    h1 = labHost(l, 'kvmhost1');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-incremental-lab-'));
    storage = path.join(tmp, 'storage');
    fs.mkdirSync(storage);
    fs.mkdirSync(path.join(tmp, 'data'), { mode: 0o700 });
    disk = path.join(h1.home, 'vms', `${name}.qcow2`);
    asHost('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', disk, String(SIZE));
    const xml = `<domain type='${l.domainType}'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
    const xmlFile = path.join(h1.home, `${name}.xml`);
    fs.writeFileSync(xmlFile, xml);
    asHost('virsh', '-c', h1.libvirtUri, 'define', '--file', xmlFile);
    fs.rmSync(xmlFile);
    asHost('virsh', '-c', h1.libvirtUri, 'start', '--domain', name);
    uuid = asHost('virsh', '-c', h1.libvirtUri, 'domuuid', '--domain', name).trim();
    db = openDatabase({ dialect: 'sqlite', url: path.join(tmp, 'data', 'backroll.db') });
    await migrateToLatest(db);
    inv = await insertInventory(db, { ...l, hosts: l.hosts.map((h) => (h.name === 'kvmhost1' ? { ...h, vms: [] } : { ...h, vms: [] })) }, storage, { daily: 30 });
    vmId = (await import('node:crypto')).randomUUID();
    const now = new Date().toISOString();
    await db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: inv.hosts.get('kvmhost1')!, uuid, name, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    const { sshHostAccess } = await import('./host-access.js');
    const { BackupLookup } = await import('./backup.lookup.js');
    mod = createBackupModule({ db, dataDir: path.join(tmp, 'data'), clock: { now: () => new Date(Date.now() + dayOffset * 86_400_000) }, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath), lockLeaseMs: 3000 });
    write(0, 1, 0x5a);
  }, 60_000);

  afterAll(async () => {
    mod?.hosts.close?.();
    await db?.destroy();
    if (h1) {
      runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'destroy', '--domain', name]);
      runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'undefine', '--domain', name, '--checkpoints-metadata']);
      runAsHostUser(h1, ['rm', '-rf', '--', disk, ...fs.readdirSync(path.dirname(disk)).filter((n) => JOB_DIR.test(n)).map((n) => path.join(path.dirname(disk), n))]);
    }
    if (tmp && !process.env.BACKROLL_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('backup-begin with a checkpoint works under qemu:///session: pull mode over a unix socket, then an incremental job exposes exactly the dirty blocks', async () => {
    const jobs = new DomainBackupJobs((argv, o) => mod.hosts.executor({ id: inv.hosts.get('kvmhost1')! } as never).exec(argv, o), h1.libvirtUri);
    const dir = path.join(path.dirname(disk), '.backroll-job-1');
    const sock = path.join(dir, 'nbd.sock');
    const { pullBackupXml, checkpointXml } = await import('../adapters/libvirt/backup-job.js');
    const map = (bitmap: string | null) => {
      const opts = `driver=nbd,export=vda,server.type=unix,server.path=${sock}${bitmap ? `,x-dirty-bitmap=${bitmap}` : ''}`;
      const r = spawnSync('qemu-img', ['map', '--output=json', '--image-opts', opts], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as Array<{ start: number; length: number; data: boolean }>;
    };
    const job = async (cp: string, incremental: string | null, during: () => void) => {
      await jobs.mkdir(dir);
      try {
        await jobs.writeHostFile(path.join(dir, 'b.xml'), pullBackupXml({ socket: sock, disks: [{ target: 'vda', scratch: path.join(dir, 'vda.scratch') }], excluded: [], incremental }));
        await jobs.writeHostFile(path.join(dir, 'c.xml'), checkpointXml({ name: cp, description: 'probe', targets: ['vda'], excluded: [] }));
        await jobs.begin(uuid, path.join(dir, 'b.xml'), path.join(dir, 'c.xml'));
        expect(await jobs.hasBackupJob(uuid)).toBe(true);
        during();
      } finally {
        await jobs.abort(uuid);
        await jobs.removeDir(dir);
      }
    };
    await job('probe-1', null, () => {
      expect(map(null).at(-1)).toMatchObject({ start: expect.any(Number) });
    });
    expect(await jobs.checkpoints(uuid)).toEqual(['probe-1']);
    write(10, 2, 0x61);
    await job('probe-2', 'probe-1', () => {
      const dirty = map('qemu:dirty-bitmap:backup-vda').filter((e) => !e.data);
      expect(dirty.map((e) => [e.start, e.length])).toEqual([[10 * MiB, 2 * MiB]]);
      // Point in time: a guest write now does not change what the export serves.
      write(11, 1, 0x62);
      const r = spawnSync('qemu-io', ['-r', '-f', 'raw', '-c', `read -P 0x61 ${11 * MiB} ${MiB}`, `nbd+unix:///vda?socket=${sock}`], { encoding: 'utf8' });
      expect(r.stdout).not.toMatch(/Pattern verification failed/);
      expect(r.status).toBe(0);
    });
    expect(await jobs.hasBackupJob(uuid)).toBe(false);
    for (const cp of ['probe-2', 'probe-1']) await jobs.deleteCheckpoint(uuid, cp);
    expect(await jobs.checkpoints(uuid)).toEqual([]);
  }, 60_000);

  let first: { epoch: number; archive: string; model: Buffer };

  it('full, then guest writes, then incremental: the incremental reads ≤ 5 % and both restore points extract equal to the model', async () => {
    const a = await backup();
    const ra = await rp(a.res.restorePointId);
    expect(ra.readMode).toBe('full');
    expect(ra.checkpointName).toBe(`backroll-${a.res.epoch}`);
    expect(ra.checkpointXml).toContain('<domaincheckpoint>');
    expect(a.ctx.lines.map((x) => x.message).join('\n')).toMatch(/full read \(no earlier restore point with a checkpoint/);
    const modelA = Buffer.from(model);
    write(20, 1, 0x71);
    write(40, 1, 0x72);
    const b = await backup();
    const rb = await rp(b.res.restorePointId);
    expect(rb.readMode).toBe('incremental');
    expect(rb.bytesRead!).toBeGreaterThanOrEqual(2 * MiB);
    expect(rb.bytesRead!).toBeLessThanOrEqual(0.05 * SIZE);
    expect(b.ctx.lines.map((x) => x.message).join('\n')).toMatch(/vda: incremental: [\d.]+ MiB of 64 MiB read/);
    expect(b.ctx.progresses.some((p) => p.step?.includes('incremental:'))).toBe(true);
    expect(extractRaw(diskArchive(a.res.archives)).equals(modelA)).toBe(true);
    expect(extractRaw(diskArchive(b.res.archives)).equals(model)).toBe(true);
    first = { epoch: a.res.epoch, archive: diskArchive(a.res.archives), model: modelA };
    noLeftovers();
    // The config archive keeps the checkpoint XML.
    const cfg = spawnSync('borg', ['extract', '--stdout', `${repo()}::config_${b.res.epoch}`, 'checkpoint.xml'], { env: borgEnv(), encoding: 'utf8' });
    expect(cfg.stdout).toContain(`<name>backroll-${b.res.epoch}</name>`);
  }, 180_000);

  it('a write made while the incremental job runs is absent from that restore point and present in the next', async () => {
    const before = Buffer.from(model);
    let wrote = false;
    const ctx = fakeContext((m) => {
      if (!wrote && m.startsWith('pull-mode backup job started')) {
        wrote = true;
        write(30, 1, 0x81);
      }
    });
    const a = await backup(ctx);
    expect(wrote).toBe(true);
    expect((await rp(a.res.restorePointId)).readMode).toBe('incremental');
    expect(extractRaw(diskArchive(a.res.archives)).equals(before)).toBe(true);
    const b = await backup();
    expect((await rp(b.res.restorePointId)).readMode).toBe('incremental');
    expect(extractRaw(diskArchive(b.res.archives)).equals(model)).toBe(true);
  }, 180_000);

  it('the base restore point deleted: the next backup is incremental from a surviving checkpoint, correct, and borg check --verify-data passes', async () => {
    const rps = await mod.restorePoints.listByVm(vmId);
    const newest = rps[0]!;
    spawnSync('borg', ['delete', repo(), '--', ...newest.archives], { env: borgEnv() });
    await mod.restorePoints.deleteByIds([newest.id]);
    write(50, 1, 0x91);
    const a = await backup();
    const ra = await rp(a.res.restorePointId);
    expect(ra.readMode).toBe('incremental');
    expect(a.ctx.lines.map((x) => x.message).join('\n')).toContain(`incremental since checkpoint ${rps[1]!.checkpointName}`);
    expect(extractRaw(diskArchive(a.res.archives)).equals(model)).toBe(true);
    // The first (full) restore point is unchanged too.
    expect(extractRaw(first.archive).equals(first.model)).toBe(true);
    const chk = spawnSync('borg', ['check', '--verify-data', repo()], { env: borgEnv(), encoding: 'utf8' });
    expect(chk.stderr).toBe('');
    expect(chk.status).toBe(0);
  }, 180_000);

  it('chain breaks read everything and say why: checkpoint metadata lost (redefined, still incremental), periodic full, after an in-place restore', async () => {
    // libvirt lost the metadata (transient domain, host restart): redefined from the kept XML.
    for (const cp of (await mod.restorePoints.listByVm(vmId)).map((r) => r.checkpointName).filter(Boolean)) {
      hostVirsh(h1, 'checkpoint-delete', '--domain', name, '--checkpointname', cp!, '--metadata');
    }
    write(5, 1, 0xa1);
    const a = await backup();
    expect((await rp(a.res.restorePointId)).readMode).toBe('incremental');
    expect(a.ctx.lines.map((x) => x.message).join('\n')).toMatch(/libvirt had lost checkpoint backroll-\d+: redefined it/);
    expect(extractRaw(diskArchive(a.res.archives)).equals(model)).toBe(true);
    // Periodic full (policy: every 0 days = every backup).
    await db.updateTable('policies').set({ full_every_days: 0 }).where('id', '=', inv.policyId).execute();
    const b = await backup();
    await db.updateTable('policies').set({ full_every_days: 30 }).where('id', '=', inv.policyId).execute();
    const rb = await rp(b.res.restorePointId);
    expect(rb.readMode).toBe('full');
    expect(rb.fullReason).toMatch(/reads everything at every backup/);
    expect(extractRaw(diskArchive(b.res.archives)).equals(model)).toBe(true);
    // In-place restore drops the VM's checkpoints: the next backup is a full read.
    await mod.engine.dropCheckpoints(vmId, async () => {});
    expect(hostVirsh(h1, 'checkpoint-list', '--domain', name, '--name').trim()).toBe('');
    write(6, 1, 0xa2);
    const c = await backup();
    const rc = await rp(c.res.restorePointId);
    expect(rc.readMode).toBe('full');
    expect(rc.fullReason).toMatch(/no earlier restore point with a checkpoint/);
    expect(extractRaw(diskArchive(c.res.archives)).equals(model)).toBe(true);
    // A disk resized: full read.
    hostVirsh(h1, 'blockresize', '--domain', name, '--path', 'vda', '--size', `${SIZE + 16 * MiB}B`);
    model = Buffer.concat([model, Buffer.alloc(16 * MiB)]);
    const d = await backup();
    const rd = await rp(d.res.restorePointId);
    expect(rd.readMode).toBe('full');
    expect(rd.fullReason).toMatch(/disks changed since restore point/);
    expect(extractRaw(diskArchive(d.res.archives)).equals(model)).toBe(true);
    noLeftovers();
  }, 300_000);

  it('kill -9 mid-incremental (job running, checkpoint created): the next backup cleans up, never uses that checkpoint as a base, and is correct', async () => {
    write(60, 1, 0xb1);
    const markerFile = path.join(tmp, 'inc-child-marker');
    const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
    const before = (await mod.restorePoints.listByVm(vmId)).length;
    const child = spawn(process.execPath, [path.join(root, '../node_modules/vitest/vitest.mjs'), 'run', '--config', path.join(root, 'src/backups/lab-child/incremental-child.vitest.config.ts')], {
      cwd: root,
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, BACKROLL_CHILD_MARKER: markerFile, BACKROLL_CHILD_DB: path.join(tmp, 'data', 'backroll.db'), BACKROLL_CHILD_DATA: path.join(tmp, 'data'), BACKROLL_CHILD_KEY: l.clientKeyPath, BACKROLL_CHILD_VM: vmId },
    });
    let failedCheckpoint: string;
    try {
      for (let i = 0; i < 240 && !fs.existsSync(markerFile); i++) await new Promise((r) => setTimeout(r, 250));
      expect(fs.existsSync(markerFile)).toBe(true);
      expect(hostVirsh(h1, 'domjobinfo', '--domain', name)).not.toMatch(/Job type:\s+None/);
      const cps = hostVirsh(h1, 'checkpoint-list', '--domain', name, '--name').trim().split('\n');
      failedCheckpoint = cps.sort().at(-1)!;
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    expect((await mod.restorePoints.listByVm(vmId)).length).toBe(before);
    write(61, 1, 0xb2);
    let res;
    for (let i = 0; ; i++) {
      try {
        res = await backup();
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'VM.LOCKED' || i > 20) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const text = res.ctx.lines.map((x) => x.message).join('\n');
    expect(text).toMatch(/ended it \(domjobabort\)/);
    expect(text).toContain(`deleted checkpoint ${failedCheckpoint!}`);
    const r = await rp(res.res.restorePointId);
    expect(r.readMode).toBe('incremental');
    expect(extractRaw(diskArchive(res.res.archives)).equals(model)).toBe(true);
    expect(hostVirsh(h1, 'checkpoint-list', '--domain', name, '--name')).not.toContain(failedCheckpoint!);
    noLeftovers();
  }, 240_000);

  it('a repository with old-style (borg create of the qcow2 file) and new restore points: list, restore, prune', async () => {
    // Shut off: read whole by borg create (the old path), the reason logged.
    // One restore point per day from here on: daily retention keeps them all until the prune below.
    dayOffset += 1;
    // (The lab VM has no OS to shut down: destroy, an unclean QEMU exit for its bitmaps.)
    hostVirsh(h1, 'destroy', '--domain', name);
    await db.updateTable('virtual_machines').set({ state: 'shut off' }).where('id', '=', vmId).execute();
    const old = await backup();
    const ro = await rp(old.res.restorePointId);
    expect(ro.readMode).toBe('full');
    expect(ro.fullReason).toMatch(/not running/);
    expect(ro.checkpointName).toBeNull();
    const oldModel = Buffer.from(model);
    hostVirsh(h1, 'start', '--domain', name);
    write(62, 1, 0xc1);
    dayOffset += 1;
    const next = await backup();
    process.stderr.write(`after the unclean stop: ${(await rp(next.res.restorePointId)).readMode} (${(await rp(next.res.restorePointId)).fullReason ?? ''})\n`);
    expect(extractRaw(diskArchive(next.res.archives)).equals(model)).toBe(true);
    // list: both kinds in borg and in the index.
    const listed = JSON.parse(spawnSync('borg', ['list', '--json', repo()], { env: borgEnv(), encoding: 'utf8' }).stdout) as { archives: Array<{ name: string }> };
    const names = listed.archives.map((a) => a.name);
    expect(names).toContain(diskArchive(old.res.archives));
    expect(names).toContain(diskArchive(next.res.archives));
    // restore: the old-style archive is the VM's qcow2 file itself.
    expect(extractRaw(diskArchive(old.res.archives)).equals(oldModel)).toBe(true);
    // prune: keep the newest only (daily 1: all restore points are of one day); the survivor stays complete.
    await db.updateTable('policies').set({ retention_daily: 1, retention_weekly: 0 }).where('id', '=', inv.policyId).execute();
    write(63, 1, 0xc2);
    dayOffset += 1;
    const last = await backup();
    expect(last.res.pruned.length).toBeGreaterThanOrEqual(2);
    const logOf = (x: { ctx: { lines: Array<{ message: string }> } }) => x.ctx.lines.map((l) => l.message).join('\n');
    // Deleted, and the last compaction (the earlier prune test's, if it ran) is days old on the test's clock: compacted now.
    expect(logOf(last)).toMatch(/repository compacted \(archives were deleted and (the last compaction was \d+ h ago|the repository was never compacted by Backroll)\)/);
    const left = await mod.restorePoints.listByVm(vmId);
    expect(left.map((x) => x.id)).toEqual([last.res.restorePointId]);
    expect(extractRaw(diskArchive(last.res.archives)).equals(model)).toBe(true);
    const chk = spawnSync('borg', ['check', '--verify-data', repo()], { env: borgEnv(), encoding: 'utf8' });
    expect(chk.status).toBe(0);
    // The next backup after the prune: incremental from the survivor.
    write(3, 1, 0xc3);
    const after = await backup();
    expect((await rp(after.res.restorePointId)).readMode).toBe('incremental');
    // It pruned its base (same day, daily 1), but the last compaction is minutes old: deferred (default interval 24 h).
    expect(after.res.pruned).toEqual([last.res.epoch]);
    expect(logOf(after)).toMatch(/no compaction: the last compaction was \d+ min ago \(interval 24 h\)/);
    expect(extractRaw(diskArchive(after.res.archives)).equals(model)).toBe(true);
    // The periodic full (default policy: every 30 days), counted from the chain's full read.
    dayOffset += 31;
    const periodic = await backup();
    const rpp = await rp(periodic.res.restorePointId);
    expect(rpp.readMode).toBe('full');
    expect(rpp.fullReason).toMatch(/periodic full read \(the last full read was 3\d days ago; the policy reads everything every 30 days\)/);
    expect(extractRaw(diskArchive(periodic.res.archives)).equals(model)).toBe(true);
    // 31 days later: what the deferred compaction left is reclaimed now, and the repository is sound.
    expect(periodic.res.pruned).toEqual([after.res.epoch]);
    expect(logOf(periodic)).toMatch(/repository compacted \(archives were deleted and the last compaction was \d+ h ago\)/);
    expect(spawnSync('borg', ['check', '--verify-data', repo()], { env: borgEnv(), encoding: 'utf8' }).status).toBe(0);
  }, 300_000);

  it('QEMU killed (-9): the bitmap is inconsistent, the incremental job is refused, the backup reads everything and says why', async () => {
    const pid = spawnSync('pgrep', ['-u', h1.user, '-f', `guest=${name},`], { encoding: 'utf8' }).stdout.trim().split('\n')[0]!;
    expect(pid).toMatch(/^\d+$/);
    process.kill(Number(pid), 'SIGKILL');
    for (let i = 0; i < 40 && !/shut off/.test(hostVirsh(h1, 'domstate', '--domain', name)); i++) await new Promise((r) => setTimeout(r, 250));
    hostVirsh(h1, 'start', '--domain', name);
    write(7, 1, 0xd1);
    const a = await backup();
    const ra = await rp(a.res.restorePointId);
    expect(ra.readMode).toBe('full');
    expect(ra.fullReason).toMatch(/the incremental job from checkpoint backroll-\d+ failed .*not trustworthy/);
    expect(extractRaw(diskArchive(a.res.archives)).equals(model)).toBe(true);
    write(8, 1, 0xd2);
    const b = await backup();
    expect((await rp(b.res.restorePointId)).readMode).toBe('incremental');
    expect(extractRaw(diskArchive(b.res.archives)).equals(model)).toBe(true);
    noLeftovers();
  }, 300_000);
});
