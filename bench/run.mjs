#!/usr/bin/env node
/**
 * Backroll backup benchmark on the KVM lab (scripts/lab/up.sh), not part of the test suite.
 *
 *   npm run bench                 # 1 GiB disk
 *   npm run bench -- --size-gib 4
 *
 * Creates a running VM `bench-<random>` under kvmhost1 with a qcow2 disk of N GiB of random
 * data, then measures (warm page cache, same machine, same options: lz4):
 *   cat of the disk file > /dev/null
 *   borg create of the disk file into a fresh repository (plain borg, no Backroll)
 *   Backroll vm.backup of the VM (snapshot, borg create, block-commit, config archive, prune, compact)
 *   after 1% of the disk changed (guest writes): borg create again vs Backroll backup again
 *   restore in place (Backroll vm.restore) vs borg extract of the same archive
 * and prints the times and ratios. Everything it created is removed at the end.
 * Uses the compiled server (server/dist: `npm run build` runs first).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'server', 'dist');
const args = process.argv.slice(2);
const sizeArg = args.indexOf('--size-gib');
const sizeGiB = Number(sizeArg >= 0 ? args[sizeArg + 1] : (process.env.BENCH_SIZE_GIB ?? 1));
if (!(sizeGiB > 0)) throw new Error('--size-gib must be a positive number');
const withRestore = !args.includes('--no-restore');
const profile = args.includes('--profile');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const { loadLab, labHost, runAsHostUser } = await import(path.join(dist, 'adapters/ssh/test-lab.js'));
const { openDatabase, migrateToLatest } = await import(path.join(dist, 'db/database.js'));
const { createBackupModule } = await import(path.join(dist, 'backups/index.js'));
const { sshHostAccess } = await import(path.join(dist, 'backups/host-access.js'));
const { BackupLookup } = await import(path.join(dist, 'backups/backup.lookup.js'));
const { insertInventory, fakeContext, writeGuest } = await import(path.join(dist, 'backups/lab-fixtures.js'));

const lab = loadLab();
if (!lab) {
  console.error('no lab: run scripts/lab/up.sh first');
  process.exit(2);
}
const h = labHost(lab, 'kvmhost1');
const name = `bench-${randomBytes(3).toString('hex')}`;
const disk = path.join(h.home, 'vms', `${name}-vda.qcow2`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-bench-'));
const dataDir = path.join(tmp, 'data');
const storage = path.join(tmp, 'storage');
fs.mkdirSync(dataDir, { mode: 0o700 });
fs.mkdirSync(storage);

const asHost = (...argv) => {
  const r = runAsHostUser(h, argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const run = (cmd, argv, opts = {}) => {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 * MiB, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const time = async (fn) => {
  const t0 = process.hrtime.bigint();
  const out = await fn();
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, out };
};
const borgEnv = { ...process.env, BORG_BASE_DIR: path.join(tmp, 'plain-borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'no', LANG: 'C.UTF-8', TZ: 'UTC' };
/** A task context that keeps the log lines with their time, to print the steps of a backup. */
const timedContext = () => {
  const t0 = Date.now();
  const ctx = fakeContext();
  const log = ctx.log.bind(ctx);
  ctx.steps = [];
  ctx.log = async (level, message) => {
    ctx.steps.push(`${((Date.now() - t0) / 1000).toFixed(2).padStart(6)} s  ${message.slice(0, 150)}`);
    return log(level, message);
  };
  return ctx;
};
const fmt = (s) => `${s.toFixed(2)} s`;
const rate = (s, bytes) => `${(bytes / MiB / s).toFixed(0)} MiB/s`;

let db;
let mod;
const results = {};
try {
  console.log(`Backroll benchmark: VM ${name} on ${h.name}, disk ${sizeGiB} GiB of random data, lz4, ${os.cpus().length} CPU(s)`);
  // The disk: N GiB of random data in a qcow2 image owned by the host user.
  const rawSrc = path.join(tmp, 'random.raw');
  run('dd', ['if=/dev/urandom', `of=${rawSrc}`, 'bs=16M', `count=${Math.round((sizeGiB * GiB) / (16 * MiB))}`, 'status=none']);
  fs.chmodSync(tmp, 0o755);
  fs.chmodSync(rawSrc, 0o644);
  asHost('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', rawSrc, disk);
  fs.rmSync(rawSrc);
  const xml = path.join(tmp, 'bench.xml');
  fs.writeFileSync(
    xml,
    `<domain type='${lab.domainType}'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>` +
      `<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`,
  );
  fs.chmodSync(xml, 0o644);
  asHost('virsh', '-c', h.libvirtUri, 'define', xml);
  asHost('virsh', '-c', h.libvirtUri, 'start', name);
  const diskBytes = fs.statSync(disk).size;

  db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
  await migrateToLatest(db);
  const benchLab = { ...lab, hosts: [{ ...h, vms: [{ name, state: 'running', disks: [] }] }] };
  const inv = await insertInventory(db, benchLab, storage, { compression: 'lz4', quiesce: 'off', daily: 7, weekly: 0 });
  const vmId = inv.vms.get(`${h.name}/${name}`);
  mod = createBackupModule({ db, dataDir, hosts: sshHostAccess(new BackupLookup(db), lab.clientKeyPath) });

  // Warm the page cache once, then measure each on a warm cache.
  run('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] });
  results.cat = await time(() => run('sh', ['-c', 'cat -- "$1" > /dev/null', 'sh', disk]));
  const plainRepo = path.join(tmp, 'plain-repo');
  run('borg', ['init', '--encryption=none', plainRepo], { env: borgEnv });
  results.borg1 = await time(() => run('borg', ['create', '--compression', 'lz4', `${plainRepo}::vda_1`, disk], { env: borgEnv }));
  const ctx1 = timedContext();
  results.backroll1 = await time(() => mod.engine.backupVm({ vmId }, ctx1));

  // 1% of the disk changes, written by the guest (scattered 1 MiB writes).
  const changes = Math.max(1, Math.round((sizeGiB * 1024) / 100));
  const step = Math.floor((sizeGiB * 1024) / changes);
  for (let i = 0; i < changes; i++) writeGuest(h, name, `${i * step}M`, '1M', 1 + (i % 250));
  run('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] });
  results.borg2 = await time(() => run('borg', ['create', '--compression', 'lz4', `${plainRepo}::vda_2`, disk], { env: borgEnv }));
  const ctx2 = timedContext();
  results.backroll2 = await time(() => mod.engine.backupVm({ vmId }, ctx2));
  if (profile) for (const [label, c] of [['first', ctx1], ['second', ctx2]]) console.log(`\n  ${label} backup, step by step:\n${c.steps.map((x) => `    ${x}`).join('\n')}`);

  // Restore: Backroll in place (the restore engineer's vm.restore) vs borg extract of the same archive.
  const rp = results.backroll2.out;
  const extractDir = path.join(tmp, 'extract');
  fs.mkdirSync(extractDir);
  const bAccess = await mod.store.access(rp.repository, null);
  const archive = rp.archives.find((a) => a.startsWith('vda_'));
  results.extract = await time(() =>
    run('borg', ['extract', `${rp.repository}::${archive}`], { cwd: extractDir, env: { ...borgEnv, BORG_BASE_DIR: path.join(dataDir, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: bAccess.unencrypted ? 'yes' : 'no' } }),
  );
  fs.rmSync(extractDir, { recursive: true, force: true });
  if (withRestore) try {
    const { createRestoreModule } = await import(path.join(dist, 'restores/index.js'));
    // The bench VM has no OS and ignores ACPI shutdown: power it off at once instead of
    // waiting BACKROLL_VM_SHUTDOWN_TIMEOUT_SECONDS, which would only measure that timeout.
    const restores = createRestoreModule({ db, backup: mod, shutdownGraceMs: 0 });
    const ctx3 = timedContext();
    results.restore = await time(() => restores.service.run({ vmId, restorePointId: rp.restorePointId, mode: 'in-place' }, ctx3));
    if (profile) console.log(`\n  restore in place, step by step:\n${ctx3.steps.map((x) => `    ${x}`).join('\n')}`);
  } catch (err) {
    results.restoreError = err instanceof Error ? err.message : String(err);
  }

  const r = results;
  const line = (label, t, bytes = diskBytes) => console.log(`  ${label.padEnd(44)} ${fmt(t.s).padStart(9)}  ${rate(t.s, bytes).padStart(10)}`);
  console.log(`\n  disk file ${(diskBytes / MiB).toFixed(0)} MiB (qcow2, ${sizeGiB} GiB virtual, random data)`);
  line('cat > /dev/null', r.cat);
  line('borg create (lz4), first', r.borg1);
  line('Backroll backup, first', r.backroll1);
  line('borg create (lz4), after 1% changed', r.borg2);
  line('Backroll backup, after 1% changed', r.backroll2);
  line('borg extract', r.extract);
  if (r.restore) line('Backroll restore in place', r.restore);
  else console.log(`  Backroll restore in place                    TODO: not measured (${withRestore ? r.restoreError : '--no-restore'})`);
  console.log('\n  ratios');
  console.log(`    Backroll first backup / borg create        ${(r.backroll1.s / r.borg1.s).toFixed(2)}`);
  console.log(`    Backroll first backup / cat                ${(r.backroll1.s / r.cat.s).toFixed(2)}`);
  console.log(`    borg create / cat                          ${(r.borg1.s / r.cat.s).toFixed(2)}`);
  console.log(`    Backroll 1%-changed backup / borg create   ${(r.backroll2.s / r.borg2.s).toFixed(2)}`);
  console.log(`    Backroll 1%-changed / Backroll first       ${(r.backroll2.s / r.backroll1.s).toFixed(2)}`);
  if (r.restore) console.log(`    Backroll restore in place / borg extract   ${(r.restore.s / r.extract.s).toFixed(2)}`);
  console.log(`\n  restore points: first ${r.backroll1.out.deduplicatedSize} B new, second ${r.backroll2.out.deduplicatedSize} B new (deduplicated)`);
} finally {
  try {
    runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'destroy', name]);
    runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'undefine', name]);
    for (const f of fs.readdirSync(path.dirname(disk))) if (f.startsWith(`${name}-`)) fs.rmSync(path.join(path.dirname(disk), f), { force: true });
  } catch (err) {
    console.error(`cleanup: ${err.message}`);
  }
  mod?.hosts.close?.();
  await db?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}
