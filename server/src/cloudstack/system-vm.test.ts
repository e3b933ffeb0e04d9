/**
 * CloudStack system VMs through the real API server: listed only on request, refused for a
 * backup with 409 VM.SYSTEM_VM, and skipped by a pool backup with a log line naming them.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../test/support/server.js';

describe('CloudStack system VMs', () => {
  let t: TestServer;
  let poolId: string;
  let routerId: string;

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 's', path: t.dataDir } });
    const pol = await t.api('POST', '/api/v2/policies', { body: { name: 'p', schedule: '0 3 * * *', retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId: st.body.id, enabled: false } });
    expect(pol.status, pol.text).toBe(201);
    poolId = (await t.api('POST', '/api/v2/pools', { body: { name: 'cloud', policyId: pol.body.id } })).body.id;
    const host = await t.api('POST', '/api/v2/hosts', { body: { name: 'kvm1', address: '192.0.2.1', sshPort: 22, username: 'root', poolId, libvirtUri: 'qemu:///system' } });
    expect(host.status, host.text).toBe(201);
    await t.server.db.updateTable('hosts').set({ connection_state: 'connected' }).where('id', '=', host.body.id).execute();
    routerId = randomUUID();
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: routerId, host_id: host.body.id, uuid: randomUUID(), name: 'r-7-VM', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 1, system_vm: 1, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
  });
  afterAll(async () => t?.close());

  it('a backup of a system VM is refused with 409 VM.SYSTEM_VM; it is listed only with includeSystem', async () => {
    const res = await t.api('POST', `/api/v2/virtual-machines/${routerId}/backups`);
    expect(res.status, res.text).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'VM.SYSTEM_VM', detail: expect.stringContaining('never backs it up') });
    expect((await t.api('GET', '/api/v2/virtual-machines')).body.items).toEqual([]);
    expect((await t.api('GET', '/api/v2/virtual-machines?includeSystem=true')).body.items.map((v: { name: string }) => v.name)).toEqual(['r-7-VM']);
  });

  it('a pool backup skips system VMs and says so in its log', async () => {
    const res = await t.api('POST', `/api/v2/pools/${poolId}/backup`, { body: {} });
    expect(res.status, res.text).toBe(202);
    const done = await t.server.services.tasks.waitFor(res.body.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result).toMatchObject({ vms: 0 });
    const log = await t.api('GET', `/api/v2/tasks/${res.body.id}/log`);
    expect(log.status, log.text).toBe(200);
    expect(JSON.stringify(log.body)).toContain('skipped 1 CloudStack system VM(s)');
    expect(JSON.stringify(log.body)).toContain('r-7-VM@kvm1');
  });
});
