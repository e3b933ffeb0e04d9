/**
 * Backup then restore, end to end with the production composition: the backup engine's
 * `vm.backup` writes the restore point (encrypted repository, config archive, template store),
 * `createRestoreModule` (real database lookups, VM locks, repository store, SSH host access)
 * restores it in place, as a new VM, and streams a disk. Clones of lab VMs only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../adapters/ssh/test-lab.js';
import { BackupLookup } from '../backups/backup.lookup.js';
import { sshHostAccess } from '../backups/host-access.js';
import { createBackupModule, type BackupModule } from '../backups/index.js';
import { fakeContext, insertInventory } from '../backups/lab-fixtures.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createRestoreModule, type RestoreModule } from './index.js';
import { cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, removeVm, scribble, sha256File, virshAs, type CloneVm } from './restore-lab-fixtures.js';

const skipReason = !lab ? labSkipReason : !HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '';

describe.skipIf(skipReason !== '')(`backup → restore end to end (production composition)${skipReason}`, () => {
  const l = lab!;
  let h: LabHost;
  const tag = randomBytes(3).toString('hex');
  let tmp: string;
  let db: Db;
  let backup: BackupModule;
  let restores: RestoreModule;
  let hostId: string;
  const clones: CloneVm[] = [];
  const extraVms: string[] = [];

  async function register(vm: CloneVm): Promise<string> {
    const id = randomUUID();
    const now = new Date().toISOString();
    await db
      .insertInto('virtual_machines')
      .values({ id, host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    return id;
  }

  beforeAll(async () => {
    h = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-restore-e2e-'));
    const dataDir = path.join(tmp, 'data');
    fs.mkdirSync(path.join(tmp, 'storage'));
    fs.mkdirSync(dataDir, { mode: 0o700 });
    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const inv = await insertInventory(db, l, path.join(tmp, 'storage'), { encryption: 'repokey-blake2', quiesce: 'off' });
    hostId = inv.hosts.get('kvmhost1')!;
    backup = createBackupModule({ db, dataDir, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath), lockLeaseMs: 3000 });
    restores = createRestoreModule({ db, backup, shutdownGraceMs: 1500 });
  });

  afterAll(async () => {
    backup?.hosts.close?.();
    await db?.destroy();
    for (const u of extraVms) removeVm(h, u);
    for (const vm of clones) removeClone(h, vm);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('a backing-file VM backed up by vm.backup: restored in place (template put back), as a new VM, and downloaded', async () => {
    const vm = cloneVm(l, h, 'vm-template', `rst-e2e-${tag}`, `e2e-${tag}`, true);
    clones.push(vm);
    const vmId = await register(vm);
    const result = await backup.engine.backupVm({ vmId }, fakeContext());
    const rp = (await backup.restorePoints.listByVm(vmId))[0]!;
    expect(rp).toBeDefined();
    expect(JSON.stringify(result)).toContain(String(rp.epoch));
    const disk = vm.disks[0]!;
    const atBackup = rawSha(disk.path);
    const templateSha = sha256File(vm.template!);

    scribble(h, vm, 'vda', true, '0xc4');
    fs.rmSync(vm.template!);
    const ctx = fakeContext();
    const res = await restores.service.run({ vmId, restorePointId: rp.id, mode: 'in-place' }, ctx);
    expect(res).toMatchObject({ mode: 'in-place', restarted: true, backingFilesRestored: [vm.template] });
    expect(sha256File(vm.template!)).toBe(templateSha);
    expect(rawSha(disk.path)).toBe(atBackup);
    expect(domState(h, vm.uuid)).toBe('running');
    expect(leftovers(vm.dir)).toEqual([]);
    // The lock was released: a second operation can take it.
    expect(await backup.locks.holder(vmId)).toBeUndefined();

    const copy = await restores.service.run({ vmId, restorePointId: rp.id, mode: 'new-vm', newName: `rst-e2e-${tag}-copy`, start: true }, fakeContext());
    if (copy.mode !== 'new-vm') throw new Error('wrong mode');
    extraVms.push(copy.vm.uuid);
    expect(domState(h, copy.vm.uuid)).toBe('running');
    expect(rawSha(copy.disks[0]!.path)).toBe(atBackup);
    expect(virshAs(h, 'dumpxml', '--domain', copy.vm.uuid)).toContain(copy.disks[0]!.path);

    const dl = await restores.service.download(vmId, rp.id, 'vda');
    const chunks: Buffer[] = [];
    for await (const c of dl.stream) chunks.push(c as Buffer);
    await dl.done;
    const out = path.join(tmp, 'dl.qcow2');
    fs.writeFileSync(out, Buffer.concat(chunks));
    expect(fs.statSync(out).size).toBe(dl.size);
    expect(dl.fileName).toBe(path.basename(disk.path));
    // The downloaded image names the (restored) template as its backing file: same guest content.
    expect(rawSha(out)).toBe(atBackup);
  }, 300_000);
});
