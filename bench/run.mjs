#!/usr/bin/env node
/**
 * Backroll backup benchmark on the KVM lab (scripts/lab/up.sh), not part of the test suite.
 *
 *   npm run bench                       # 1 GiB disk
 *   npm run bench -- --sizes 1,4        # a 1 GiB and a 4 GiB disk, one after the other
 *   npm run bench -- --size-gib 4       # same as --sizes 4
 *   npm run bench -- --no-restore --no-ssh --profile
 *
 * Per size: creates a running VM `bench-<random>` under kvmhost1 with a qcow2 (v3) disk of N GiB
 * of random data, then measures (warm page cache, same machine, same options: lz4):
 *   cat of the disk file > /dev/null
 *   borg create of the disk file into a fresh repository (plain borg, no Backroll)
 *   Backroll vm.backup of the VM (the engine's default path: for a running VM with a qcow2 v3
 *     disk, libvirt's pull-mode backup job and changed-block tracking; the first is a full read)
 *   1 % of the disk changed by the guest, scattered: 64 KiB writes spread evenly over the disk
 *     (through the guest's virtio device, so the dirty bitmap sees them)
 *   borg create of the changed file again vs Backroll backup again (incremental)
 *   restore in place (Backroll vm.restore) vs borg extract of the same archive
 *   the read path: a full read through the backup job from the mounted path vs through the host
 *     over SSH (host disk access ssh: NBD over a forwarded unix socket), then 1 % changed over SSH
 * Bytes read: for Backroll the restore point's read mode and bytes read; for borg create the
 * process's rchar (/proc/<pid>/io: every byte it read, the disk file and borg's own files).
 * Prints times, bytes read and the ratios the aims of issue 11 name. Everything it created
 * (VM, disk, checkpoints, domain log, repositories, temporary files) is removed at the end.
 * Uses the compiled server (server/dist: `npm run build` runs first).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'server', 'dist');
const args = process.argv.slice(2);
const argOf = (name) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : undefined);
const sizes = (argOf('--sizes') ?? argOf('--size-gib') ?? process.env.BENCH_SIZE_GIB ?? '1').split(',').map(Number);
if (sizes.some((x) => !(x > 0))) throw new Error('--sizes takes positive numbers of GiB, e.g. 1,4');
const withRestore = !args.includes('--no-restore');
const withSsh = !args.includes('--no-ssh');
const profile = args.includes('--profile');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const CHANGE_BLOCK = 64 * 1024;

const { loadLab, labHost, runAsHostUser } = await import(path.join(dist, 'adapters/ssh/test-lab.js'));
const { openDatabase, migrateToLatest } = await import(path.join(dist, 'db/database.js'));
const { createBackupModule } = await import(path.join(dist, 'backups/index.js'));
const { sshHostAccess } = await import(path.join(dist, 'backups/host-access.js'));
const { BackupLookup } = await import(path.join(dist, 'backups/backup.lookup.js'));
const { insertInventory, fakeContext } = await import(path.join(dist, 'backups/lab-fixtures.js'));

const lab = loadLab();
if (!lab) {
  console.error('no lab: run scripts/lab/up.sh first');
  process.exit(2);
}
const h = labHost(lab, 'kvmhost1');
const virsh = (...argv) => ['virsh', '-q', '-c', h.libvirtUri, ...argv];

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
/** Runs argv under `sh`, then reads the shell's /proc io (a reaped child's counts are added to its parent): bytes argv read. */
const runCountingReads = (argv, env) => {
  const out = run('sh', ['-c', '"$@" >/dev/null || exit 1; cat /proc/$$/io', 'sh', ...argv], { env });
  return Number(/^rchar: (\d+)/m.exec(out)?.[1] ?? NaN);
};
/** A task context that keeps the log lines with their time, to print the steps of a task. */
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
/** The image writer's seconds in a backup: the sum over its disks' log lines "vda: full: … archive …: N bytes, M new, 4.3 s". */
const writerSeconds = (ctx) => ctx.lines.map((l) => l.message).map((x) => /: (?:full|incremental): .* archive .*, ([\d.]+) s$/.exec(x)?.[1]).filter(Boolean).reduce((a, b) => a + Number(b), 0) || NaN;
const mib = (b) => `${(b / MiB).toFixed(b < 100 * MiB ? 1 : 0)} MiB`;

/**
 * 1 % of the disk written by the guest, scattered: `count` writes of 64 KiB at evenly spread
 * offsets, each through the guest's virtio device (HMP `qemu-io -d <qdev>`, as
 * scripts/lab/write-guest.sh does), all in one virsh session, then one flush. Checks that QEMU
 * reported every write (its domain log). Returns the number of bytes written.
 */
function scatteredGuestWrites(name, sizeBytes) {
  const count = Math.max(1, Math.round((sizeBytes * 0.01) / CHANGE_BLOCK));
  const stride = Math.floor(sizeBytes / count / CHANGE_BLOCK) * CHANGE_BLOCK;
  const blocks = JSON.parse(asHost(...virsh('qemu-monitor-command', '--domain', name, '--cmd', '{"execute":"query-block"}'))).return;
  const qdev = blocks.map((b) => b.qdev).find((q) => typeof q === 'string' && q.includes('virtio-disk0'));
  if (!qdev || !/^[A-Za-z0-9/_-]+$/.test(qdev)) throw new Error(`no qdev for vda in query-block: ${JSON.stringify(blocks)}`);
  const logFile = path.join(h.home, '.cache/libvirt/qemu/log', `${name}.log`);
  const before = fs.statSync(logFile).size;
  const hmp = (cmd) => `qemu-monitor-command --domain ${name} --hmp --cmd '${cmd}'`;
  const lines = [];
  for (let i = 0; i < count; i++) lines.push(hmp(`qemu-io -d ${qdev} "write -P ${1 + (i % 250)} ${i * stride} 64k"`));
  lines.push(hmp(`qemu-io -d ${qdev} flush`));
  const r = spawnSync('runuser', ['-u', h.user, '--', 'env', '-i', `HOME=${h.home}`, 'PATH=/usr/local/bin:/usr/bin:/bin', 'LC_ALL=C', ...virsh()], { input: `${lines.join('\n')}\n`, encoding: 'utf8', cwd: h.home });
  if (r.status !== 0 || /error/i.test(r.stdout + r.stderr)) throw new Error(`guest writes: ${r.stderr}${r.stdout}`);
  let wrote = 0;
  for (let t = 0; t < 100 && wrote < count; t++) {
    wrote = (fs.readFileSync(logFile).subarray(before).toString('utf8').match(/^wrote /gm) ?? []).length;
    if (wrote < count) spawnSync('sleep', ['0.1']);
  }
  if (wrote !== count) throw new Error(`guest writes: QEMU reported ${wrote} of ${count} writes`);
  return count * CHANGE_BLOCK;
}

/** One disk size: everything measured on its own VM, which is removed at the end. */
async function benchOne(sizeGiB) {
  const name = `bench-${randomBytes(3).toString('hex')}`;
  const disk = path.join(h.home, 'vms', `${name}-vda.qcow2`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-bench-'));
  const dataDir = path.join(tmp, 'data');
  const storage = path.join(tmp, 'storage');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  fs.mkdirSync(storage);
  const borgEnv = { ...process.env, BORG_BASE_DIR: path.join(tmp, 'plain-borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'no', LANG: 'C.UTF-8', TZ: 'UTC' };
  let db;
  let mod;
  const r = { sizeGiB, name };
  try {
    console.log(`\n== ${sizeGiB} GiB: VM ${name} on ${h.name}, disk of random data, lz4, ${os.cpus().length} CPU(s)`);
    // The disk: N GiB of random data in a qcow2 v3 image owned by the host user.
    const rawSrc = path.join(tmp, 'random.raw');
    run('dd', ['if=/dev/urandom', `of=${rawSrc}`, 'bs=16M', `count=${Math.round((sizeGiB * GiB) / (16 * MiB))}`, 'status=none']);
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(rawSrc, 0o644);
    asHost('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=1.1', rawSrc, disk);
    fs.rmSync(rawSrc);
    const xml = path.join(tmp, 'bench.xml');
    fs.writeFileSync(
      xml,
      `<domain type='${lab.domainType}'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>` +
        `<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`,
    );
    fs.chmodSync(xml, 0o644);
    asHost(...virsh('define', xml));
    asHost(...virsh('start', name));
    r.diskBytes = fs.statSync(disk).size;
    r.virtualBytes = sizeGiB * GiB;

    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const benchLab = { ...lab, hosts: [{ ...h, vms: [{ name, state: 'running', disks: [] }] }] };
    const inv = await insertInventory(db, benchLab, storage, { compression: 'lz4', quiesce: 'off', daily: 7, weekly: 0 });
    const vmId = inv.vms.get(`${h.name}/${name}`);
    mod = createBackupModule({ db, dataDir, hosts: sshHostAccess(new BackupLookup(db), lab.clientKeyPath) });
    const readOf = async (rp) => {
      const row = await db.selectFrom('restore_points').select(['read_mode', 'bytes_to_read', 'bytes_read']).where('id', '=', rp.restorePointId).executeTakeFirst();
      return { mode: row?.read_mode ?? '?', bytesToRead: Number(row?.bytes_to_read ?? NaN), bytesRead: Number(row?.bytes_read ?? NaN) };
    };

    // Warm the page cache once, then measure each on a warm cache.
    run('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] });
    r.cat = await time(() => run('sh', ['-c', 'cat -- "$1" > /dev/null', 'sh', disk]));
    const plainRepo = path.join(tmp, 'plain-repo');
    run('borg', ['init', '--encryption=none', plainRepo], { env: borgEnv });
    r.borg1 = await time(() => runCountingReads(['borg', 'create', '--compression', 'lz4', `${plainRepo}::vda_1`, disk], borgEnv));
    const ctx1 = timedContext();
    r.backroll1 = await time(() => mod.engine.backupVm({ vmId }, ctx1));
    r.read1 = await readOf(r.backroll1.out);

    // 1 % of the disk changes, written by the guest (scattered 64 KiB writes).
    r.changed = await time(() => scatteredGuestWrites(name, r.virtualBytes));
    run('cat', [disk], { stdio: ['ignore', 'ignore', 'inherit'] });
    r.borg2 = await time(() => runCountingReads(['borg', 'create', '--compression', 'lz4', `${plainRepo}::vda_2`, disk], borgEnv));
    const ctx2 = timedContext();
    r.backroll2 = await time(() => mod.engine.backupVm({ vmId }, ctx2));
    r.read2 = await readOf(r.backroll2.out);
    if (profile) for (const [label, c] of [['first', ctx1], ['second', ctx2]]) console.log(`\n  ${label} backup, step by step:\n${c.steps.map((x) => `    ${x}`).join('\n')}`);

    // Restore: Backroll in place (vm.restore) vs borg extract of the same archive.
    const rp = r.backroll2.out;
    const extractDir = path.join(tmp, 'extract');
    fs.mkdirSync(extractDir);
    const bAccess = await mod.store.access(rp.repository, null);
    const archive = rp.archives.find((a) => a.startsWith('vda_'));
    r.extract = await time(() =>
      run('borg', ['extract', `${rp.repository}::${archive}`], { cwd: extractDir, env: { ...borgEnv, BORG_BASE_DIR: path.join(dataDir, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: bAccess.unencrypted ? 'yes' : 'no' } }),
    );
    // What borg extract leaves in the page cache, written to disk: a restore must fsync before its swap.
    r.extractSync = await time(() => run('sync', ['--', path.join(extractDir, disk.replace(/^\/+/, ''))]));
    fs.rmSync(extractDir, { recursive: true, force: true });
    if (withRestore) {
      try {
        const { createRestoreModule } = await import(path.join(dist, 'restores/index.js'));
        // The bench VM has no OS and ignores ACPI shutdown: power it off at once instead of
        // waiting BACKROLL_VM_SHUTDOWN_TIMEOUT_SECONDS, which would only measure that timeout.
        const restores = createRestoreModule({ db, backup: mod, shutdownGraceMs: 0 });
        const ctx3 = timedContext();
        r.restore = await time(() => restores.service.run({ vmId, restorePointId: rp.restorePointId, mode: 'in-place' }, ctx3));
        if (profile) console.log(`\n  restore in place, step by step:\n${ctx3.steps.map((x) => `    ${x}`).join('\n')}`);
      } catch (err) {
        r.restoreError = err instanceof Error ? err.message : String(err);
      }
    }
    if (withSsh) {
      // The read path: the same full read through libvirt's backup job, from the mounted path and
      // through the host over SSH (NBD over a unix socket forwarded on the pinned connection),
      // then an incremental one over SSH. full_every_days 0 forces the full reads.
      const hostId = (await db.selectFrom('virtual_machines').select('host_id').where('id', '=', vmId).executeTakeFirstOrThrow()).host_id;
      const setPolicy = (days) => db.updateTable('policies').set({ full_every_days: days }).where('id', '=', inv.policyId).execute();
      const setAccess = (mode) => db.updateTable('hosts').set({ disk_access: mode }).where('id', '=', hostId).execute();
      await setPolicy(0);
      await setAccess('mount');
      const ctxMount = timedContext();
      r.fullMount = await time(() => mod.engine.backupVm({ vmId }, ctxMount));
      r.readMount = await readOf(r.fullMount.out);
      await setAccess('ssh');
      const ctxSsh = timedContext();
      r.fullSsh = await time(() => mod.engine.backupVm({ vmId }, ctxSsh));
      r.readSsh = await readOf(r.fullSsh.out);
      r.writerMount = writerSeconds(ctxMount);
      r.writerSsh = writerSeconds(ctxSsh);
      await setPolicy(30);
      scatteredGuestWrites(name, r.virtualBytes);
      r.incSsh = await time(() => mod.engine.backupVm({ vmId }, timedContext()));
      r.readIncSsh = await readOf(r.incSsh.out);
      await setAccess('auto');
      if (profile) console.log(`\n  full read over SSH, step by step:\n${ctxSsh.steps.map((x) => `    ${x}`).join('\n')}`);
    }
    report(r);
    return r;
  } finally {
    mod?.hosts.close?.();
    await db?.destroy();
    cleanup(name, disk);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Removes the VM (with its checkpoints' metadata), its disk and anything beside it, and its domain log. */
function cleanup(name, disk) {
  const problems = [];
  const tryHost = (...argv) => {
    const x = runAsHostUser(h, argv);
    if (x.status !== 0 && !/not found|not running|no domain/i.test(x.stderr)) problems.push(`${argv.slice(3).join(' ')}: ${x.stderr.trim()}`);
  };
  tryHost(...virsh('destroy', name));
  tryHost(...virsh('undefine', '--checkpoints-metadata', '--snapshots-metadata', name));
  for (const f of fs.readdirSync(path.dirname(disk))) if (f.startsWith(`${name}-`)) fs.rmSync(path.join(path.dirname(disk), f), { force: true });
  fs.rmSync(path.join(h.home, '.cache/libvirt/qemu/log', `${name}.log`), { force: true });
  if (runAsHostUser(h, virsh('list', '--all', '--name')).stdout.split('\n').includes(name)) problems.push(`VM ${name} is still defined`);
  if (problems.length) console.error(`cleanup: ${problems.join('; ')}`);
}

function report(r) {
  const line = (label, t, extra = '') => console.log(`  ${label.padEnd(44)} ${fmt(t.s).padStart(9)}  ${extra}`);
  const pct = (b) => `${((b / r.virtualBytes) * 100).toFixed(1)} %`;
  console.log(`\n  disk file ${mib(r.diskBytes)} (qcow2 v3, ${r.sizeGiB} GiB virtual, random data); 1 % change: ${mib(r.changed.out)} in 64 KiB guest writes (${fmt(r.changed.s)})`);
  line('cat > /dev/null', r.cat);
  line('borg create (lz4), first', r.borg1, `read ${mib(r.borg1.out)}`);
  line('Backroll backup, first', r.backroll1, `${r.read1.mode}, read ${mib(r.read1.bytesRead)} (${pct(r.read1.bytesRead)})`);
  line('borg create (lz4), after 1% changed', r.borg2, `read ${mib(r.borg2.out)}`);
  line('Backroll backup, after 1% changed', r.backroll2, `${r.read2.mode}, read ${mib(r.read2.bytesRead)} (${pct(r.read2.bytesRead)})`);
  line('borg extract', r.extract, `+ ${fmt(r.extractSync.s)} to fsync the extracted file`);
  if (r.restore) line('Backroll restore in place', r.restore);
  if (r.fullSsh) {
    const rate = (t, b) => `${(b / MiB / t.s).toFixed(0)} MiB/s`;
    line('Backroll full read, mounted path', r.fullMount, `${r.readMount.mode}, read ${mib(r.readMount.bytesRead)}; read + archive ${fmt(r.writerMount)} = ${rate({ s: r.writerMount }, r.readMount.bytesRead)}`);
    line('Backroll full read, through the host (SSH)', r.fullSsh, `${r.readSsh.mode}, read ${mib(r.readSsh.bytesRead)}; read + archive ${fmt(r.writerSsh)} = ${rate({ s: r.writerSsh }, r.readSsh.bytesRead)}`);
    line('Backroll 1%-changed, through the host (SSH)', r.incSsh, `${r.readIncSsh.mode}, read ${mib(r.readIncSsh.bytesRead)} (${pct(r.readIncSsh.bytesRead)})`);
  }
  else console.log(`  Backroll restore in place                    not measured (${withRestore ? r.restoreError : '--no-restore'})`);
  console.log('\n  ratios (aim)');
  console.log(`    Backroll 1%-changed / Backroll first       ${(r.backroll2.s / r.backroll1.s).toFixed(3)}  (≤ 0.1)`);
  console.log(`    bytes read by the 1%-changed backup        ${pct(r.read2.bytesRead)}  (≤ 5 %)`);
  console.log(`    Backroll first / borg create               ${(r.backroll1.s / r.borg1.s).toFixed(2)}  (≤ 1.10 at 4 GiB)`);
  console.log(`    Backroll 1%-changed / borg create of it    ${(r.backroll2.s / r.borg2.s).toFixed(2)}`);
  if (r.fullSsh) console.log(`    full read over SSH / mounted path          ${(r.fullSsh.s / r.fullMount.s).toFixed(2)} (whole backup); ${(r.writerSsh / r.writerMount).toFixed(2)} (read + archive)`);
  if (r.restore) console.log(`    Backroll restore in place / borg extract   ${(r.restore.s / r.extract.s).toFixed(2)}  (≤ 1.3); / (borg extract + fsync) ${(r.restore.s / (r.extract.s + r.extractSync.s)).toFixed(2)}`);
  console.log(`    borg create / cat                          ${(r.borg1.s / r.cat.s).toFixed(1)}`);
  console.log(`\n  restore points: first ${r.backroll1.out.deduplicatedSize} B new, second ${r.backroll2.out.deduplicatedSize} B new (deduplicated)`);
}

const all = [];
for (const size of sizes) all.push(await benchOne(size));
if (all.length > 1) {
  console.log('\n== summary');
  console.log('  size | borg create | Backroll full | full/borg | borg create 1% | Backroll 1% | 1%/full | 1% read | extract | restore | restore/extract');
  for (const r of all) {
    console.log(
      `  ${`${r.sizeGiB} GiB`.padEnd(4)} | ${fmt(r.borg1.s)} | ${fmt(r.backroll1.s)} (${r.read1.mode}) | ${(r.backroll1.s / r.borg1.s).toFixed(2)} | ${fmt(r.borg2.s)} | ${fmt(r.backroll2.s)} (${r.read2.mode}) | ${(r.backroll2.s / r.backroll1.s).toFixed(3)} | ${((r.read2.bytesRead / r.virtualBytes) * 100).toFixed(1)} % | ${fmt(r.extract.s)} | ${r.restore ? fmt(r.restore.s) : '-'} | ${r.restore ? (r.restore.s / r.extract.s).toFixed(2) : '-'}`,
    );
  }
}
