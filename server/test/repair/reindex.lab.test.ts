/**
 * `backroll repair reindex` and Backroll's disaster recovery on the KVM lab, with the real
 * backup engine, borg and restore engine:
 *   - two clones of lab VMs (one disk; two disks) on kvmhost2 are backed up by the engine into
 *     encrypted repositories (the policy's default), the two-disk one twice;
 *   - DR: `dr export` → a fresh data dir and database → `dr import` → an in-place restore of a
 *     restore point made before the export puts the disk back byte for byte;
 *   - reindex: the restore-point index is wiped, the REAL `bin/backroll.js repair reindex`
 *     (dry run first) finds every restore point again with its disks and time, a directory
 *     restore from a reindexed restore point gives the disks' content at backup; a BackROLL
 *     repository (per-disk archives, no config archive, no owner record) on a second storage
 *     is found and restored; a second run changes nothing; a symbolic link in a storage and
 *     a `..` repository name are refused; archives deleted behind Backroll's back are reported
 *     and pruned only with --prune-missing; a VM the inventory lacks is listed with
 *     --attach-to-host.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { BackupLookup } from '../../src/backups/backup.lookup.js';
import { sshHostAccess } from '../../src/backups/host-access.js';
import { createBackupModule, type BackupModule } from '../../src/backups/index.js';
import { fakeContext, insertInventory } from '../../src/backups/lab-fixtures.js';
import type { RestorePointRecord } from '../../src/backups/restore-point.repository.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { DrService, readDrFile } from '../../src/dr/dr.service.js';
import type { ReindexReport } from '../../src/repair/reindex.service.js';
import { createRestoreModule } from '../../src/restores/index.js';
import { backupVm, cloneVm, HAVE_BORG, leftovers, rawSha, removeClone, run, scribble, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import { VERSION } from '../../src/version.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real binary, asynchronously, with only the configuration it needs. */
function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), LANG: 'C.UTF-8', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
const show = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** What a restore point must be found with again: identity, time, disks (not the sizes a reindex cannot know). */
const shape = (r: RestorePointRecord) => ({
  vmId: r.vmId,
  storageId: r.storageId,
  repository: r.repository,
  epoch: r.epoch,
  createdAt: r.createdAt,
  archives: r.archives,
  disks: r.disks.map((d) => ({ target: d.target, path: d.path, format: d.format, archive: d.archive, virtualSize: d.virtualSize, backingChain: d.backingChain })),
});

describe.skipIf(reason !== '')(`repair reindex and DR export → import → restore on the lab${reason}`, () => {
  const l = lab!;
  let h2: LabHost;
  let tmp: string;
  let dataDir: string;
  let storage: string;
  let storage2: string;
  let db: Db;
  let backup: BackupModule;
  let hostId: string;
  let storageId: string;
  let storage2Id: string;
  const tag = randomBytes(3).toString('hex');
  const clones: CloneVm[] = [];
  const vmIds: Record<'one' | 'two', string> = { one: '', two: '' };
  const vms: Record<'one' | 'two', CloneVm> = {} as never;
  /** Guest content (raw sha256) of each disk per epoch, at backup time. */
  const content = new Map<number, Record<string, string>>();
  let indexed: RestorePointRecord[] = [];
  let legacyEpoch = 0;
  let backInTime = 0;
  const env = () => ({ BACKROLL_DATA_DIR: dataDir, BACKROLL_LOG_LEVEL: 'warn' });
  const allRps = async () => {
    const out: RestorePointRecord[] = [];
    for (const id of Object.values(vmIds)) out.push(...(await backup.restorePoints.listByVm(id)));
    return out.sort((a, b) => a.repository.localeCompare(b.repository) || a.epoch - b.epoch);
  };
  const reindexJson = async (...args: string[]): Promise<ReindexReport> => {
    const r = await cli(['repair', 'reindex', '--json', ...args], env());
    expect(r.code, show(r)).toBe(0);
    return JSON.parse(r.stdout) as ReindexReport;
  };

  beforeAll(async () => {
    h2 = labHost(l, 'kvmhost2');
    const h1 = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-reindex-'));
    dataDir = path.join(tmp, 'data');
    storage = path.join(tmp, 'storage');
    storage2 = path.join(tmp, 'storage2');
    for (const d of [storage, storage2]) fs.mkdirSync(d);
    fs.mkdirSync(dataDir, { mode: 0o700 });
    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    // The policy's default encryption: the reindex must find each repository's passphrase.
    const inv = await insertInventory(db, l, storage, { encryption: 'repokey-blake2', daily: 7 });
    hostId = inv.hosts.get('kvmhost2')!;
    storageId = inv.storageId;
    await db.deleteFrom('virtual_machines').execute();
    const now = new Date().toISOString();
    storage2Id = '00000000-0000-4000-8000-' + randomBytes(6).toString('hex');
    await db.insertInto('storages').values({ id: storage2Id, name: `legacy-${tag}`, path: storage2, created_at: now, updated_at: now }).execute();
    // Backups on two days (the retention keeps one restore point per day): the engine's clock, moved back.
    backup = createBackupModule({ db, dataDir, clock: { now: () => new Date(Date.now() - backInTime) }, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath) });

    for (const [key, source] of [['one', 'vm-stopped'], ['two', 'vm-twodisks']] as const) {
      const src = h1.vms.find((v) => v.name === source)!;
      const vm = cloneVm(l, { ...h2, vms: [src] }, source, `ri-${tag}-${key}`, `ri-${tag}-${key}`, false);
      clones.push(vm);
      vms[key] = vm;
      vmIds[key] = (
        await db
          .insertInto('virtual_machines')
          .values({ id: crypto.randomUUID(), host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'shut off', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    }
    // The engine's backups: one of the one-disk VM, two of the two-disk VM (other content each time).
    const backupOf = async (key: 'one' | 'two', byte: string, daysAgo = 0) => {
      backInTime = daysAgo * 86_400_000;
      for (const d of vms[key].disks) scribble(h2, vms[key], d.target, false, byte);
      const res = await backup.engine.backupVm({ vmId: vmIds[key] }, fakeContext());
      content.set(res.epoch, Object.fromEntries(vms[key].disks.map((d) => [d.target, rawSha(d.path)])));
      backInTime = 0;
    };
    await backupOf('one', '0x51');
    await backupOf('two', '0x61', 2);
    await backupOf('two', '0x62');
    indexed = await allRps();
    expect(indexed.map((r) => [path.basename(r.repository), r.disks.length])).toEqual([
      [`ri-${tag}-one`, 1],
      [`ri-${tag}-two`, 2],
      [`ri-${tag}-two`, 2],
    ]);
    expect(fs.existsSync(path.join(dataDir, 'borg-passphrases', vms.one.uuid))).toBe(true);
    // A BackROLL repository of the one-disk VM on the second storage: per-disk archives, no config, no owner record.
    legacyEpoch = Math.floor(Date.now() / 1000) - 7200;
    scribble(h2, vms.one, 'vda', false, '0x71');
    backupVm(h2, storage2, vms.one, legacyEpoch, { config: false });
    content.set(legacyEpoch, { vda: rawSha(vms.one.disks[0]!.path) });
  }, 600_000);

  afterAll(async () => {
    backup?.hosts.close?.();
    await db?.destroy();
    for (const vm of clones) removeClone(h2, vm);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('DR: export → fresh data dir and database → import → an in-place restore of a restore point made before puts the disk back', async () => {
    const passphrase = `dr-${tag}-correct horse battery`;
    const { file } = await new DrService(db, dataDir, VERSION).export(passphrase);
    // The new installation: nothing of the old one but the DR file (and the storage).
    const dataDir2 = path.join(tmp, 'data2');
    fs.mkdirSync(dataDir2, { mode: 0o700 });
    const db2 = openDatabase({ dialect: 'sqlite', url: path.join(dataDir2, 'backroll.db') });
    const mod2 = createBackupModule({ db: db2, dataDir: dataDir2, hosts: sshHostAccess(new BackupLookup(db2), l.clientKeyPath) });
    try {
      await migrateToLatest(db2);
      await new DrService(db2, dataDir2, VERSION).import(await readDrFile(file, passphrase));
      const rp = (await mod2.restorePoints.listByVm(vmIds.one))[0]!;
      expect(rp.id).toBe(indexed[0]!.id);
      // The disk changes after the export; the restore point is from before it.
      scribble(h2, vms.one, 'vda', false, '0xee');
      expect(rawSha(vms.one.disks[0]!.path)).not.toBe(content.get(rp.epoch)!.vda);
      const restores2 = createRestoreModule({ db: db2, backup: mod2 });
      const res = await restores2.service.run({ vmId: vmIds.one, restorePointId: rp.id, mode: 'in-place' }, fakeContext());
      expect(res).toMatchObject({ mode: 'in-place', epoch: rp.epoch });
      expect(rawSha(vms.one.disks[0]!.path)).toBe(content.get(rp.epoch)!.vda);
      expect(leftovers(vms.one.dir)).toEqual([]);
    } finally {
      mod2.hosts.close?.();
      await db2.destroy();
    }
  });

  it('after the index is wiped: a dry run writes nothing, a reindex finds every restore point with its disks and time', async () => {
    await db.deleteFrom('restore_points').execute();
    const dry = await cli(['repair', 'reindex', '--dry-run'], env());
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toMatch(/dry run, nothing written: total 3 repositories, 4 restore points: 0 kept, 4 would add/);
    expect(await db.selectFrom('restore_points').selectAll().execute()).toEqual([]);

    const report = await reindexJson();
    const byName = Object.fromEntries(report.storages.flatMap((s) => s.repositories.map((r) => [`${s.name}/${r.name}`, r])));
    const main = report.storages.find((s) => s.id === storageId)!;
    expect(main.counts).toMatchObject({ repositories: 2, restorePoints: 3, kept: 0, added: 3, missing: 0, unmatched: 0, refused: 0, failed: 0 });
    expect(byName[`${main.name}/ri-${tag}-two`]).toMatchObject({ status: 'indexed', found: 2, added: 2, notes: [], vm: { id: vmIds.two, uuid: vms.two.uuid, created: false } });
    // Found again exactly: same repositories, epochs, times, archives and disks (targets, paths, formats, chains).
    const found = (await allRps()).filter((r) => r.storageId === storageId);
    expect(found.map(shape)).toEqual(indexed.map(shape));
    expect(found.every((r) => r.source === 'borg')).toBe(true);
  });

  it('restores from a reindexed restore point: every disk of the older two-disk backup as it was', async () => {
    const rp = (await backup.restorePoints.listByVm(vmIds.two)).find((r) => r.repository.endsWith(`ri-${tag}-two`) && r.epoch === indexed[1]!.epoch)!;
    const dir = fs.mkdtempSync(path.join(tmp, 'dir-'));
    const restores = createRestoreModule({ db, backup });
    const res = await restores.service.run({ vmId: vmIds.two, restorePointId: rp.id, mode: 'directory', directory: dir }, fakeContext());
    expect(res.mode).toBe('directory');
    for (const d of vms.two.disks) expect(rawSha(path.join(dir, path.basename(d.path))), d.target).toBe(content.get(rp.epoch)![d.target]);
  });

  it('finds the BackROLL repository (no config archive) by the VM name, and restores from it', async () => {
    const rps = (await backup.restorePoints.listByVm(vmIds.one)).filter((r) => r.storageId === storage2Id);
    expect(rps.map((r) => [r.repository, r.epoch, r.archives, r.disks, r.createdAt])).toEqual([
      [path.join(storage2, vms.one.name), legacyEpoch, [`vda_${path.basename(vms.one.disks[0]!.path, '.qcow2')}_${legacyEpoch}`], [], new Date(legacyEpoch * 1000).toISOString()],
    ]);
    const dir = fs.mkdtempSync(path.join(tmp, 'legacy-'));
    const restores = createRestoreModule({ db, backup });
    await restores.service.run({ vmId: vmIds.one, restorePointId: rps[0]!.id, mode: 'directory', directory: dir }, fakeContext());
    expect(rawSha(path.join(dir, path.basename(vms.one.disks[0]!.path)))).toBe(content.get(legacyEpoch)!.vda);
  });

  it('is idempotent: a second run keeps every row as it is and adds nothing', async () => {
    const before = await db.selectFrom('restore_points').selectAll().orderBy('id').execute();
    const report = await reindexJson();
    expect(report.totals).toMatchObject({ repositories: 3, restorePoints: 4, kept: 4, added: 0, missing: 0, pruned: 0, failed: 0 });
    expect(await db.selectFrom('restore_points').selectAll().orderBy('id').execute()).toEqual(before);
  });

  it('refuses a symbolic link in a storage and a ".." repository name', async () => {
    const outside = fs.mkdtempSync(path.join(tmp, 'outside-'));
    fs.symlinkSync(path.join(storage, `ri-${tag}-two`), path.join(storage, `link-${tag}`));
    fs.symlinkSync(outside, path.join(storage, `out-${tag}`));
    try {
      const before = await db.selectFrom('restore_points').selectAll().orderBy('id').execute();
      const report = await reindexJson('--storage', storageId);
      const reps = report.storages[0]!.repositories;
      for (const n of [`link-${tag}`, `out-${tag}`]) expect(reps.find((r) => r.name === n), n).toMatchObject({ status: 'refused', message: expect.stringMatching(/symbolic link/) });
      expect(report.totals.refused).toBe(2);
      expect(await db.selectFrom('restore_points').selectAll().orderBy('id').execute()).toEqual(before);
      const dots = await cli(['repair', 'reindex', '--repository', '..'], env());
      expect(dots.code, show(dots)).toBe(1);
      expect(dots.stderr).toContain('REINDEX.REPOSITORY_NAME_INVALID');
    } finally {
      fs.unlinkSync(path.join(storage, `link-${tag}`));
      fs.unlinkSync(path.join(storage, `out-${tag}`));
    }
  });

  it('reports restore points whose archives vanished and prunes them only with --prune-missing', async () => {
    const old = indexed[1]!;
    const passphrase = fs.readFileSync(path.join(dataDir, 'borg-passphrases', vms.two.uuid), 'utf8').trim();
    run('borg', ['delete', old.repository, ...old.archives], { env: { BORG_PASSPHRASE: passphrase, BORG_BASE_DIR: path.join(dataDir, 'borg') } });
    const reported = await reindexJson('--repository', vms.two.name);
    expect(reported.totals).toMatchObject({ kept: 1, missing: 1, pruned: 0 });
    expect((await backup.restorePoints.listByVm(vmIds.two)).map((r) => r.epoch)).toContain(old.epoch);
    const pruned = await reindexJson('--repository', vms.two.name, '--prune-missing');
    expect(pruned.totals).toMatchObject({ kept: 1, missing: 1, pruned: 1 });
    expect((await backup.restorePoints.listByVm(vmIds.two)).map((r) => r.epoch)).toEqual([indexed[2]!.epoch]);
  });

  it('lists the restore points of a VM the inventory lacks under an absent VM of the host the operator names', async () => {
    // The VM is gone from the inventory (and from the index): its repository stays.
    await db.deleteFrom('restore_points').where('vm_id', '=', vmIds.one).execute();
    await db.deleteFrom('virtual_machines').where('id', '=', vmIds.one).execute();
    const unmatched = await reindexJson('--repository', vms.one.name);
    expect(unmatched.storages.flatMap((s) => s.repositories.map((r) => r.status))).toEqual(['unmatched', 'unmatched']);
    const attached = await reindexJson('--repository', vms.one.name, '--attach-to-host', hostId);
    const main = attached.storages.find((s) => s.id === storageId)!.repositories[0]!;
    // Its own repository names its uuid (owner record): the absent VM has it.
    expect(main).toMatchObject({ status: 'indexed', added: 1, vm: { uuid: vms.one.uuid, present: false, created: true } });
    const vm = await db.selectFrom('virtual_machines').selectAll().where('id', '=', main.vm!.id).executeTakeFirstOrThrow();
    expect(vm).toMatchObject({ host_id: hostId, name: vms.one.name, present: 0 });
    // The BackROLL repository of the same name names no uuid: matched by name to that absent VM.
    expect((await backup.restorePoints.listByVm(vm.id)).map((r) => r.epoch).sort()).toEqual([legacyEpoch, indexed[0]!.epoch].sort());
    const again = await reindexJson('--repository', vms.one.name, '--attach-to-host', hostId);
    expect(again.totals).toMatchObject({ added: 0, kept: 2 });
    expect(again.storages.flatMap((s) => s.repositories.map((r) => r.vm?.created))).toEqual([false, false]);
  });
});
