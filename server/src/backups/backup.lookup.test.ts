/**
 * Two VMs of one name on two hosts would share `<storage>/<vm name>` (Trust issue, section 3):
 * only one may use it, the other is refused with an error naming the VM that has the repository.
 * Real SQLite, real borg (the owner record is written by RepositoryStore.ensure).
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Borg } from '../adapters/borg/borg.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { BackupLookup } from './backup.lookup.js';
import { repositoryPath } from './naming.js';
import { RepositoryStore } from './repository-store.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;

describe.skipIf(borgMissing)(`VMs of one name on two hosts${borgMissing ? ' (SKIPPED: borg is not installed)' : ''}`, () => {
  let tmp: string;
  let db: Db;
  let lookup: BackupLookup;
  let store: RepositoryStore;
  const storages: Record<string, { id: string; path: string }> = {};
  const pools: Record<string, string> = {};
  const hosts: Record<string, string> = {};

  async function addVm(name: string, host: string, createdAt: string) {
    const id = randomUUID();
    const uuid = randomUUID();
    await db
      .insertInto('virtual_machines')
      .values({ id, host_id: hosts[host]!, uuid, name, state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: createdAt, created_at: createdAt, updated_at: createdAt })
      .execute();
    return { id, uuid, name };
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-samename-'));
    db = openDatabase({ dialect: 'sqlite', url: path.join(tmp, 'backroll.db') });
    await migrateToLatest(db);
    const now = new Date().toISOString();
    for (const s of ['nfs1', 'nfs2']) {
      const id = randomUUID();
      const p = path.join(tmp, s);
      fs.mkdirSync(p);
      storages[s] = { id, path: p };
      await db.insertInto('storages').values({ id, name: s, path: p, created_at: now, updated_at: now }).execute();
      const policyId = randomUUID();
      await db
        .insertInto('policies')
        .values({ id: policyId, name: `p-${s}`, description: '', schedule: '0 3 * * *', timezone: 'UTC', retention_daily: 1, retention_weekly: 0, retention_monthly: 0, retention_yearly: 0, storage_id: id, hook_id: null, enabled: 1, quiesce: 'preferred', compression: 'lz4', encryption: 'none', created_at: now, updated_at: now })
        .execute();
      pools[s] = randomUUID();
      await db.insertInto('pools').values({ id: pools[s]!, name: `pool-${s}`, policy_id: policyId, connector_id: null, created_at: now, updated_at: now }).execute();
    }
    for (const [h, s] of [['kvm1', 'nfs1'], ['kvm2', 'nfs1'], ['kvm3', 'nfs2']] as const) {
      hosts[h] = randomUUID();
      await db
        .insertInto('hosts')
        .values({ id: hosts[h]!, name: h, address: '192.0.2.1', ssh_port: 22, username: 'root', pool_id: pools[s]!, tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'connected', connection_error_code: null, connection_message: null, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
    }
    lookup = new BackupLookup(db);
    store = new RepositoryStore(tmp, new Borg({ baseDir: tmp }));
  });
  afterAll(async () => {
    await db?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the repository goes to the VM known first; the other is refused naming it; once the repository is owned, its owner decides', async () => {
    const a = await addVm('web', 'kvm1', '2025-01-01T00:00:00.000Z');
    const b = await addVm('web', 'kvm2', '2025-02-01T00:00:00.000Z');
    const repo = repositoryPath(storages.nfs1!.path, 'web');
    expect((await lookup.target(a.id)).storage.path).toBe(storages.nfs1!.path);
    await expect(lookup.target(b.id)).rejects.toMatchObject({
      code: 'BACKUP.VM_NAME_SHARED',
      kind: 'conflict',
      message: expect.stringMatching(new RegExp(`same name as VM "web" \\(uuid ${a.uuid}\\) on host kvm1.*${repo}.*Rename one of the two VMs`)),
      details: { otherVmId: a.id, otherHost: 'kvm1', repository: repo },
    });
    // The repository as a backup of A creates it: its owner record names A.
    await store.ensure(repo, { uuid: a.uuid, name: 'web' }, 'none', async () => {});
    await expect(lookup.target(b.id)).rejects.toMatchObject({ code: 'BACKUP.VM_NAME_SHARED', details: { otherVmUuid: a.uuid } });
    await expect(store.ensure(repo, { uuid: b.uuid, name: 'web' }, 'none', async () => {})).rejects.toMatchObject({ code: 'BACKUP.REPOSITORY_OWNED_BY_OTHER_VM', message: expect.stringContaining('virsh domrename') });

    // The same name on a host whose policy uses another storage: its own repository, no conflict.
    const c = await addVm('web', 'kvm3', '2025-03-01T00:00:00.000Z');
    expect((await lookup.target(c.id)).storage.path).toBe(storages.nfs2!.path);

    // A VM that is gone (no longer present in the inventory) blocks nobody.
    await db.updateTable('virtual_machines').set({ present: 0 }).where('id', '=', a.id).execute();
    const d = await addVm('db', 'kvm1', '2025-01-01T00:00:00.000Z');
    const e = await addVm('db', 'kvm2', '2024-01-01T00:00:00.000Z');
    await expect(lookup.target(d.id)).rejects.toMatchObject({ code: 'BACKUP.VM_NAME_SHARED', details: { otherVmId: e.id } });
    expect((await lookup.target(e.id)).vm.id).toBe(e.id);
    // A repository owned by B (e.g. after A's was moved away) serves B, and refuses A once it is back.
    fs.rmSync(repo, { recursive: true });
    await store.ensure(repo, { uuid: b.uuid, name: 'web' }, 'none', async () => {});
    expect((await lookup.target(b.id)).vm.id).toBe(b.id);
    await db.updateTable('virtual_machines').set({ present: 1 }).where('id', '=', a.id).execute();
    await expect(lookup.target(a.id)).rejects.toMatchObject({ code: 'BACKUP.VM_NAME_SHARED', details: { otherVmUuid: b.uuid } });
  });
});
