/**
 * Reading a host's disks over SSH instead of from a mount (host disk access `ssh`;
 * docs/incremental.md "Reading over SSH") against the real KVM lab: the NBD export of the
 * backup job (running VM) or of `qemu-nbd --read-only` (shut-off VM) is reached through a
 * local unix socket forwarded over the host's pinned SSH connection. Full → guest writes →
 * incremental, both restore points equal to the model kept here; a shut-off VM cannot be
 * started while it is read and starts afterwards; a qemu-nbd a killed worker left is stopped
 * by the next backup; a raw disk is refused before anything is written.
 *
 * The lab's host is this machine, so the paths are readable here too: the test sets the host
 * to `ssh` and checks that every read went through forwarded sockets (the log, the forward
 * directories), not that the worker lacks the files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labConnectOptions, labHost, labSkipReason, runAsHostUser, sshKeygenFingerprint, type LabHost } from '../adapters/ssh/test-lab.js';
import { SshPool } from '../adapters/ssh/ssh-pool.js';
import { forwardUnixSocket } from '../adapters/ssh/unix-forward.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createBackupModule, type BackupModule } from './index.js';
import { fakeContext, insertInventory, writeGuest } from './lab-fixtures.js';
import { JOB_DIR } from './incremental.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const skip = !lab || borgMissing;
const reason = labSkipReason || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');
const MiB = 1 << 20;

function run(cmd: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (status) => resolve({ status, stderr }));
  });
}
const SIZE = 64 * MiB;

describe.skipIf(skip)(`reading disks over SSH (host disk access: ssh) against the KVM lab${reason}`, () => {
  const l = lab!;
  let h1: LabHost;
  let db: Db;
  let tmp: string;
  let storage: string;
  let dataDir: string;
  let mod: BackupModule;
  let hostId: string;
  const name = `sshr-${randomBytes(3).toString('hex')}`;
  const rawName = `${name}-raw`;
  let disk: string;
  let rawDisk: string;
  let vmId: string;
  let rawVmId: string;
  const model = Buffer.alloc(SIZE);
  let dayOffset = 0;

  const asHost = (...argv: string[]) => {
    const r = runAsHostUser(h1, argv);
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const virsh = (...args: string[]) => runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, ...args]);
  function write(offsetMiB: number, lengthMiB: number, byte: number) {
    writeGuest(h1, name, `${offsetMiB}M`, `${lengthMiB}M`, byte);
    model.fill(byte, offsetMiB * MiB, (offsetMiB + lengthMiB) * MiB);
  }
  const borgEnv = () => ({ ...process.env, BORG_BASE_DIR: path.join(dataDir, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' });
  const repo = (vm = name) => path.join(storage, vm);
  function extractRaw(archive: string): Buffer {
    const out = fs.mkdtempSync(path.join(tmp, 'x-'));
    const r = spawnSync('borg', ['extract', `${repo()}::${archive}`], { cwd: out, env: borgEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`borg extract ${archive}: ${r.stderr}`);
    const raw = path.join(out, 'disk.raw');
    const c = spawnSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', path.join(out, disk.replace(/^\//, '')), raw], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`qemu-img convert: ${c.stderr}`);
    const buf = fs.readFileSync(raw);
    fs.rmSync(out, { recursive: true, force: true });
    return buf;
  }
  const backup = (id = vmId, ctx = fakeContext()) => mod.engine.backupVm({ vmId: id }, ctx).then((res) => ({ res, ctx }));
  const text = (ctx: ReturnType<typeof fakeContext>) => ctx.lines.map((x) => x.message).join('\n');
  const diskArchive = (archives: string[]) => archives.find((a) => !a.startsWith('config_'))!;
  const noLeftovers = () => {
    expect(fs.readdirSync(path.dirname(disk)).filter((n) => JOB_DIR.test(n))).toEqual([]);
    // Every forwarded socket (and its directory) is gone.
    expect(fs.existsSync(path.join(dataDir, 'tmp')) ? fs.readdirSync(path.join(dataDir, 'tmp')).filter((n) => n.startsWith('fwd-')) : []).toEqual([]);
    expect(spawnSync('pgrep', ['-u', h1.user, '-f', `qemu-nbd.*${path.dirname(disk)}/.backroll-job-`]).status).toBe(1);
  };

  beforeAll(async () => {
    h1 = labHost(l, 'kvmhost1');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-sshr-'));
    storage = path.join(tmp, 'storage');
    dataDir = path.join(tmp, 'data');
    fs.mkdirSync(storage);
    fs.mkdirSync(dataDir, { mode: 0o700 });
    disk = path.join(h1.home, 'vms', `${name}.qcow2`);
    rawDisk = path.join(h1.home, 'vms', `${rawName}.img`);
    asHost('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', disk, String(SIZE));
    asHost('qemu-img', 'create', '-q', '-f', 'raw', rawDisk, String(8 * MiB));
    for (const [n, file, fmt] of [
      [name, disk, 'qcow2'],
      [rawName, rawDisk, 'raw'],
    ] as const) {
      const xmlFile = path.join(h1.home, `${n}.xml`);
      fs.writeFileSync(
        xmlFile,
        `<domain type='${l.domainType}'><name>${n}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='${fmt}'/><source file='${file}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`,
      );
      asHost('virsh', '-c', h1.libvirtUri, 'define', '--file', xmlFile);
      fs.rmSync(xmlFile);
    }
    asHost('virsh', '-c', h1.libvirtUri, 'start', '--domain', name);
    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const inv = await insertInventory(db, { ...l, hosts: l.hosts.map((h) => ({ ...h, vms: [] })) }, storage, { daily: 30 });
    hostId = inv.hosts.get('kvmhost1')!;
    await db.updateTable('hosts').set({ disk_access: 'ssh' }).where('id', '=', hostId).execute();
    const now = new Date().toISOString();
    vmId = randomUUID();
    rawVmId = randomUUID();
    for (const [id, n] of [
      [vmId, name],
      [rawVmId, rawName],
    ] as const) {
      const uuid = asHost('virsh', '-c', h1.libvirtUri, 'domuuid', '--domain', n).trim();
      await db
        .insertInto('virtual_machines')
        .values({ id, host_id: hostId, uuid, name: n, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
    }
    const { sshHostAccess } = await import('./host-access.js');
    const { BackupLookup } = await import('./backup.lookup.js');
    mod = createBackupModule({ db, dataDir, clock: { now: () => new Date(Date.now() + dayOffset * 86_400_000) }, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath), lockLeaseMs: 3000 });
    write(0, 1, 0x5a);
  }, 60_000);

  afterAll(async () => {
    mod?.hosts.close?.();
    await db?.destroy();
    if (h1) {
      for (const n of [name, rawName]) {
        virsh('destroy', '--domain', n);
        virsh('undefine', '--domain', n, '--checkpoints-metadata');
      }
      runAsHostUser(h1, ['pkill', '-u', h1.user, '-f', `qemu-nbd.*${name}`]);
      runAsHostUser(h1, ['rm', '-rf', '--', disk, rawDisk, ...fs.readdirSync(path.dirname(disk)).filter((n) => JOB_DIR.test(n)).map((n) => path.join(path.dirname(disk), n))]);
    }
    if (tmp && !process.env.BACKROLL_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('a unix socket on the host, forwarded over the pinned SSH connection, serves the same bytes as the file (qemu-nbd → qemu-img convert)', async () => {
    const pool = new SshPool({
      resolveHost: () => labConnectOptions(l, h1.user, { pinnedFingerprint: sshKeygenFingerprint(l.hostKeyPath) }),
    });
    const dir = path.join(h1.home, 'vms', `.backroll-job-${Date.now()}`);
    const sock = path.join(dir, 'probe.sock');
    const file = path.join(dir, 'probe.qcow2');
    asHost('mkdir', '-m', '0700', '--', dir);
    try {
      asHost('qemu-img', 'create', '-q', '-f', 'qcow2', file, String(4 * MiB));
      asHost('qemu-io', '-f', 'qcow2', '-c', `write -P 0x3c ${MiB} ${MiB}`, file);
      asHost('qemu-nbd', '--read-only', '--persistent', '--fork', `--pid-file=${path.join(dir, 'probe.nbd.pid')}`, `--socket=${sock}`, '--export-name=vda', '--format=qcow2', '--', file);
      const f = await forwardUnixSocket((p) => pool.openUnixStream('h', p), sock, path.join(tmp, 'fwd-probe'));
      try {
        expect(fs.statSync(path.dirname(f.localPath)).mode & 0o777).toBe(0o700);
        const out = path.join(tmp, 'probe.raw');
        // Asynchronously: the forward runs in this process's event loop.
        const r = await run('qemu-img', ['convert', '-O', 'raw', '--image-opts', `driver=nbd,export=vda,server.type=unix,server.path=${f.localPath}`, out]);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const expected = Buffer.alloc(4 * MiB);
        expected.fill(0x3c, MiB, 2 * MiB);
        expect(fs.readFileSync(out).equals(expected)).toBe(true);
        expect(f.connections).toBeGreaterThanOrEqual(1);
        await new Promise((r) => setTimeout(r, 500));
        expect(pool.stats('h')?.activeChannels).toBe(0);
      } finally {
        await f.close();
      }
      expect(fs.existsSync(f.localPath)).toBe(false);
      // A socket that is not there: the stream is refused with a message naming it.
      const gone = await forwardUnixSocket((p) => pool.openUnixStream('h', p), path.join(dir, 'missing.sock'), path.join(tmp, 'fwd-probe'));
      const r2 = await run('qemu-img', ['info', '--image-opts', `driver=nbd,export=vda,server.type=unix,server.path=${gone.localPath}`]);
      expect(r2.status).not.toBe(0);
      await gone.close();
      await expect(pool.openUnixStream('h', path.join(dir, 'missing.sock'))).rejects.toMatchObject({ message: expect.stringContaining('missing.sock') });
    } finally {
      runAsHostUser(h1, ['pkill', '-u', h1.user, '-f', `qemu-nbd.*${sock}`]);
      runAsHostUser(h1, ['rm', '-rf', '--', dir]);
      pool.closeAll();
    }
  }, 60_000);

  it('running VM over SSH: full, then guest writes, then incremental (≤ 5 % read); both restore points equal the model', async () => {
    const a = await backup();
    expect(text(a.ctx)).toMatch(/set to read disks over SSH/);
    expect(text(a.ctx)).toMatch(/reading the job's NBD export over the host's SSH connection/);
    const ra = (await mod.restorePoints.find(vmId, a.res.restorePointId))!;
    expect(ra.readMode).toBe('full');
    const modelA = Buffer.from(model);
    write(20, 1, 0x71);
    write(44, 1, 0x72);
    dayOffset += 1;
    const b = await backup();
    const rb = (await mod.restorePoints.find(vmId, b.res.restorePointId))!;
    expect(rb.readMode).toBe('incremental');
    expect(rb.bytesRead!).toBeGreaterThanOrEqual(2 * MiB);
    expect(rb.bytesRead!).toBeLessThanOrEqual(0.05 * SIZE);
    expect(extractRaw(diskArchive(a.res.archives)).equals(modelA)).toBe(true);
    expect(extractRaw(diskArchive(b.res.archives)).equals(model)).toBe(true);
    noLeftovers();
  }, 240_000);

  it('shut-off VM over SSH: read whole through qemu-nbd on the host, which keeps the VM from starting meanwhile; it starts afterwards', async () => {
    asHost('virsh', '-c', h1.libvirtUri, 'destroy', '--domain', name);
    let startDuringRead: ReturnType<typeof virsh> | null = null;
    const ctx = fakeContext((m) => {
      if (startDuringRead === null && m.includes('served read-only by qemu-nbd')) startDuringRead = virsh('start', '--domain', name);
    });
    dayOffset += 1;
    const c = await backup(vmId, ctx);
    expect(text(ctx)).toMatch(/read whole through qemu-nbd on the host/);
    expect(startDuringRead).not.toBeNull();
    expect(startDuringRead!.status).not.toBe(0);
    const rc = (await mod.restorePoints.find(vmId, c.res.restorePointId))!;
    expect(rc.readMode).toBe('full');
    expect(rc.checkpointName).toBeNull();
    expect(extractRaw(diskArchive(c.res.archives)).equals(model)).toBe(true);
    noLeftovers();
    expect(virsh('start', '--domain', name).status).toBe(0);
    asHost('virsh', '-c', h1.libvirtUri, 'destroy', '--domain', name);
  }, 240_000);

  it('a qemu-nbd a killed worker left serving the disk is stopped by the next backup (the VM can start again)', async () => {
    const dir = path.join(path.dirname(disk), '.backroll-job-42');
    asHost('mkdir', '-m', '0700', '--', dir);
    asHost('qemu-nbd', '--read-only', '--persistent', '--fork', `--pid-file=${path.join(dir, 'vda.nbd.pid')}`, `--socket=${path.join(dir, 'vda.sock')}`, '--export-name=vda', '--format=qcow2', '--', disk);
    expect(virsh('start', '--domain', name).status).not.toBe(0);
    dayOffset += 1;
    const d = await backup();
    expect(text(d.ctx)).toMatch(/stopped the qemu-nbd a previous backup left serving vda/);
    expect(extractRaw(diskArchive(d.res.archives)).equals(model)).toBe(true);
    noLeftovers();
    expect(virsh('start', '--domain', name).status).toBe(0);
  }, 240_000);

  it('a raw disk cannot be read over SSH: BACKUP.SSH_READ_UNSUPPORTED naming the fix, before any repository is written', async () => {
    await expect(backup(rawVmId)).rejects.toMatchObject({ code: 'BACKUP.SSH_READ_UNSUPPORTED', message: expect.stringMatching(/vda is raw.*[Mm]ount the VM storage/) });
    expect(fs.existsSync(repo(rawName))).toBe(false);
  }, 60_000);
});
