/**
 * Every way of starting a task checks its options (Trust issue, section 3): kinds with a route of
 * their own (vm.restore, vm.backup, restore-point.delete, repository.verify) are refused by the
 * generic POST /api/v2/tasks, so a restore with a relative directory or a new name with "/" or a
 * newline cannot be queued through it; the restore route refuses those too. Real server (SQLite,
 * embedded jobs, bundled provider).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

describe('starting tasks: one validation for every way in', () => {
  let t: TestServer;
  let vmId: string;
  let rpId: string;

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 's', path: t.dataDir } });
    expect(st.status, st.text).toBe(201);
    const pol = await t.api('POST', '/api/v2/policies', { body: { name: 'p', schedule: '0 3 * * *', retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId: st.body.id, enabled: false } });
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'pool', policyId: pol.body.id } });
    const host = await t.api('POST', '/api/v2/hosts', { body: { name: 'h1', address: '192.0.2.1', sshPort: 22, username: 'root', poolId: pool.body.id, libvirtUri: 'qemu:///system' } });
    expect(host.status, host.text).toBe(201);
    vmId = randomUUID();
    rpId = randomUUID();
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: host.body.id, uuid: randomUUID(), name: 'vm1', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    await t.server.db
      .insertInto('restore_points')
      .values({
        id: rpId,
        vm_id: vmId,
        storage_id: st.body.id,
        repository: `${t.dataDir}/vm1`,
        epoch: 1_700_000_000,
        archives: '[]',
        disks: '[]',
        original_size: null,
        compressed_size: null,
        deduplicated_size: null,
        duration_ms: null,
        task_id: null,
        started_by: null,
        source: 'backroll',
        created_at: now,
      })
      .execute();
  });
  afterAll(async () => t?.close());

  const restoreTasks = async () => (await t.api('GET', '/api/v2/tasks?kind=vm.restore')).body.total as number;

  it('POST /tasks refuses vm.restore with unchecked options (relative directory, names with "/" or a newline): problem+json, nothing queued', async () => {
    const payloads = [
      { vmId, restorePointId: rpId, mode: 'directory', directory: 'relative/dir' },
      { vmId, restorePointId: rpId, mode: 'new-vm', newName: 'a/b' },
      { vmId, restorePointId: rpId, mode: 'new-vm', newName: 'a\nb' },
      { vmId, restorePointId: rpId, mode: 'new-vm', newName: 'copy', directory: '../../etc' },
    ];
    for (const payload of payloads) {
      const res = await t.api('POST', '/api/v2/tasks', { body: { kind: 'vm.restore', payload, target: { type: 'vm', id: vmId } } });
      expect(res.status, JSON.stringify(payload)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ code: 'TASK.KIND_HAS_OWN_ROUTE', detail: expect.stringContaining('POST /api/v2/virtual-machines/{id}/restores') });
    }
    expect(await restoreTasks()).toBe(0);
  });

  it('the restore route refuses the same options with its own codes', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ restorePointId: rpId, mode: 'directory', directory: 'relative/dir' }, 'RESTORE.DIRECTORY_INVALID'],
      [{ restorePointId: rpId, mode: 'new-vm', newName: 'a/b' }, 'RESTORE.NEW_NAME_INVALID'],
      [{ restorePointId: rpId, mode: 'new-vm', newName: 'a\nb' }, 'RESTORE.NEW_NAME_INVALID'],
      [{ restorePointId: rpId, mode: 'new-vm', newName: 'copy', directory: '../../etc' }, 'RESTORE.DIRECTORY_INVALID'],
    ];
    for (const [body, code] of cases) {
      const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.code).toBe(code);
    }
    expect(await restoreTasks()).toBe(0);
  });

  it('every kind with a route of its own is refused by POST /tasks, naming that route', async () => {
    const own: Record<string, string> = {
      'vm.backup': '/backups',
      'pool.backup': '/pools/{id}/backup',
      'restore-point.delete': '/restore-points/{restorePointId}',
      'repository.verify': '/repository/verify',
    };
    for (const [kind, route] of Object.entries(own)) {
      const res = await t.api('POST', '/api/v2/tasks', { body: { kind, payload: { vmId, restorePointId: rpId } } });
      expect(res.status, kind).toBe(400);
      expect(res.body).toMatchObject({ code: 'TASK.KIND_HAS_OWN_ROUTE', detail: expect.stringContaining(route) });
    }
    expect((await t.api('GET', '/api/v2/tasks')).body.total).toBe(0);
    // Kinds without a route of their own still start here.
    const other = await t.api('POST', '/api/v2/tasks', { body: { kind: 'inventory.refresh', payload: null } });
    expect(other.status, other.text).toBe(201);
  });
});
