/**
 * Engine backup → engine restore for the two lab VMs that break naive code: `vm-twodisks`
 * (two disks that must not be swapped or merged) and the hostile name
 * ``evil$(touch PWNED);'"`id` x`` (quoted through SSH, virsh, borg archive and repository
 * names, domain XML). No fixture writes an archive: `vm.backup` (BackupEngine) makes the
 * restore point from the running VM, the restore engine puts it back to a directory, as a new
 * VM and in place, and every disk is compared byte for byte with what it held at backup time.
 *
 * The lab's own VMs stay untouched: each is cloned, with its exact name and its disks, onto
 * the other lab host (kvmhost2, which has no VM of that name), and removed afterwards.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../src/adapters/libvirt/domain-xml.js';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { BackupLookup } from '../../src/backups/backup.lookup.js';
import { sshHostAccess } from '../../src/backups/host-access.js';
import { createBackupModule, type BackupModule } from '../../src/backups/index.js';
import { EVIL, fakeContext, insertInventory } from '../../src/backups/lab-fixtures.js';
import type { RestorePointRecord } from '../../src/backups/restore-point.repository.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { createRestoreModule, type RestoreModule } from '../../src/restores/index.js';
import { cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, removeVm, scribble, sha256File, virshAs, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';

const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');

/** Distinct bytes per disk, so a restore that swaps or duplicates disks shows. */
const CASES = [
  { source: 'vm-twodisks', bytes: { vda: '0xa1', vdb: '0xa2' } as Record<string, string> },
  { source: EVIL, bytes: { vda: '0xa6' } as Record<string, string> },
];

describe.skipIf(reason !== '')(`engine backup → engine restore of the two-disk and hostile-name lab VMs${reason}`, () => {
  const l = lab!;
  let h1: LabHost;
  let h2: LabHost;
  let tmp: string;
  let db: Db;
  let backup: BackupModule;
  let restores: RestoreModule;
  let hostId: string;
  const tag = randomBytes(3).toString('hex');
  const clones: CloneVm[] = [];
  const extraVms: string[] = [];

  const borgEnv = () => ({ ...process.env, BORG_BASE_DIR: path.join(tmp, 'data', 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' });
  /** sha256 of an archived disk file as borg itself returns it (not through Backroll's restore code). */
  const archivedSha = (repo: string, archive: string): string => {
    const r = spawnSync('borg', ['extract', '--stdout', `${repo}::${archive}`], { env: borgEnv(), maxBuffer: 512 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`borg extract --stdout ${archive}: ${r.stderr}`);
    return createHash('sha256').update(r.stdout).digest('hex');
  };

  beforeAll(async () => {
    h1 = labHost(l, 'kvmhost1');
    h2 = labHost(l, 'kvmhost2');
    expect(canaryPresent(l)).toEqual([]);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-engine-rt-'));
    const dataDir = path.join(tmp, 'data');
    fs.mkdirSync(path.join(tmp, 'storage'));
    fs.mkdirSync(dataDir, { mode: 0o700 });
    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const inv = await insertInventory(db, l, path.join(tmp, 'storage'), { encryption: 'none', quiesce: 'preferred' });
    hostId = inv.hosts.get('kvmhost2')!;
    // Only the clones are known to this installation: the lab VMs of the same names on kvmhost1
    // would own `<storage>/<vm name>` (BACKUP.VM_NAME_SHARED).
    await db.deleteFrom('virtual_machines').execute();
    // Production defaults: no shortened lock lease or shutdown timeout.
    backup = createBackupModule({ db, dataDir, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath) });
    restores = createRestoreModule({ db, backup });
  });

  afterAll(async () => {
    backup?.hosts.close?.();
    await db?.destroy();
    for (const u of extraVms) removeVm(h2, u);
    for (const vm of clones) removeClone(h2, vm);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  describe.each(CASES)('$source', ({ source, bytes }) => {
    let vm: CloneVm;
    let vmId: string;
    let rp: RestorePointRecord;
    /** Guest-visible content of each disk when it was backed up (sha256 of the raw image). */
    const atBackup: Record<string, string> = {};
    /** sha256 of each archived disk file, read with borg directly. */
    const archived: Record<string, string> = {};

    beforeAll(async () => {
      // The lab VM's disks, copied onto kvmhost2 under the lab VM's exact name.
      const src = h1.vms.find((v) => v.name === source)!;
      expect(src.disks.map((d) => d.target)).toEqual(Object.keys(bytes));
      vm = cloneVm(l, { ...h2, vms: [src] }, source, source, `ert-${tag}-${clones.length}`, false);
      clones.push(vm);
      for (const d of vm.disks) scribble(h2, vm, d.target, false, bytes[d.target]);
      virshAs(h2, 'start', '--domain', vm.uuid);
      expect(virshAs(h2, 'domname', '--domain', vm.uuid).trim()).toBe(source);
      for (const d of vm.disks) atBackup[d.target] = rawSha(d.path);
      expect(new Set(Object.values(atBackup)).size).toBe(vm.disks.length);

      vmId = randomUUID();
      const now = new Date().toISOString();
      await db
        .insertInto('virtual_machines')
        .values({ id: vmId, host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
        .execute();

      // Live backup of the running VM by the engine: snapshot, borg create, block-commit.
      const result = await backup.engine.backupVm({ vmId }, fakeContext());
      const rps = await backup.restorePoints.listByVm(vmId);
      expect(rps).toHaveLength(1);
      rp = rps[0]!;
      expect(result.epoch).toBe(rp.epoch);
      expect(rp.repository).toBe(path.join(tmp, 'storage', source));
      expect(rp.disks.map((d) => [d.target, d.path])).toEqual(vm.disks.map((d) => [d.target, d.path]));
      expect(domState(h2, vm.uuid)).toBe('running');
      for (const d of rp.disks) archived[d.target] = archivedSha(rp.repository, d.archive);
      // The backup left the VM on its own disks (no overlay in the chain).
      const live = parseDomainXml(virshAs(h2, 'dumpxml', '--domain', vm.uuid));
      expect(live.disks.map((d) => d.path)).toEqual(vm.disks.map((d) => d.path));
      expect(canaryPresent(l)).toEqual([]);
    }, 300_000);

    it('restores to a directory: every disk byte-identical to its archive and to the guest content at backup', async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'dir-'));
      const res = await restores.service.run({ vmId, restorePointId: rp.id, mode: 'directory', directory: dir }, fakeContext());
      if (res.mode !== 'directory') throw new Error(`wrong mode ${res.mode}`);
      const names = vm.disks.map((d) => path.basename(d.path));
      expect(fs.readdirSync(dir).sort()).toEqual(['backroll.json', 'domain.xml', ...names].sort());
      for (const d of vm.disks) {
        const file = path.join(dir, path.basename(d.path));
        expect(sha256File(file), `${d.target}: the archived file`).toBe(archived[d.target]);
        expect(rawSha(file), `${d.target}: the guest content`).toBe(atBackup[d.target]);
      }
      const xml = parseDomainXml(fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8'));
      expect(xml.name).toBe(source);
      expect(xml.uuid).toBe(vm.uuid);
      expect(xml.disks.map((d) => [d.target, d.path])).toEqual(vm.disks.map((d) => [d.target, d.path]));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'backroll.json'), 'utf8'))).toMatchObject({ epoch: rp.epoch });
      expect(canaryPresent(l)).toEqual([]);
    }, 300_000);

    it('restores as a new VM with a name as hostile as the original: defined, started, each disk in its own slot with its own content', async () => {
      const newName = `${source} copy-${tag}`;
      const res = await restores.service.run({ vmId, restorePointId: rp.id, mode: 'new-vm', newName, start: true }, fakeContext());
      if (res.mode !== 'new-vm') throw new Error(`wrong mode ${res.mode}`);
      extraVms.push(res.vm.uuid);
      expect(res.vm).toMatchObject({ name: newName, hostId, started: true });
      expect(virshAs(h2, 'domname', '--domain', res.vm.uuid).trim()).toBe(newName);
      expect(domState(h2, res.vm.uuid)).toBe('running');
      expect(res.disks.map((d) => d.target)).toEqual(vm.disks.map((d) => d.target));
      const defined = parseDomainXml(virshAs(h2, 'dumpxml', '--domain', res.vm.uuid));
      expect(defined.disks.map((d) => [d.target, d.path])).toEqual(res.disks.map((d) => [d.target, d.path]));
      for (const d of res.disks) {
        expect(vm.disks.map((x) => x.path)).not.toContain(d.path);
        expect(rawSha(d.path), `${d.target}: the guest content`).toBe(atBackup[d.target]);
      }
      // The original is untouched and still running on its own disks.
      expect(domState(h2, vm.uuid)).toBe('running');
      for (const d of vm.disks) expect(rawSha(d.path)).toBe(atBackup[d.target]);
      expect(canaryPresent(l)).toEqual([]);
    }, 300_000);

    it('restores in place after the disks changed: every disk back to its content at backup, no temporary file left', async () => {
      // Shut off first: a lab guest has no OS to answer an ACPI shutdown (the default timeout would be waited out).
      virshAs(h2, 'destroy', '--domain', vm.uuid);
      for (const d of vm.disks) scribble(h2, vm, d.target, false, '0xee');
      for (const d of vm.disks) expect(rawSha(d.path)).not.toBe(atBackup[d.target]);
      const res = await restores.service.run({ vmId, restorePointId: rp.id, mode: 'in-place' }, fakeContext());
      if (res.mode !== 'in-place') throw new Error(`wrong mode ${res.mode}`);
      expect(res).toMatchObject({ epoch: rp.epoch, stoppedBy: 'already', restarted: false });
      expect(res.disks.map((d) => [d.target, d.path])).toEqual(vm.disks.map((d) => [d.target, d.path]));
      for (const d of vm.disks) {
        expect(rawSha(d.path), `${d.target}: the guest content`).toBe(atBackup[d.target]);
        expect(sha256File(d.path), `${d.target}: the archived file`).toBe(archived[d.target]);
      }
      expect(domState(h2, vm.uuid)).toBe('shut off');
      expect(parseDomainXml(virshAs(h2, 'dumpxml', '--inactive', '--domain', vm.uuid)).disks.map((d) => d.path)).toEqual(vm.disks.map((d) => d.path));
      expect(leftovers(vm.dir)).toEqual([]);
      expect(await backup.locks.holder(vmId)).toBeUndefined();
      expect(canaryPresent(l)).toEqual([]);
    }, 300_000);
  });
});
