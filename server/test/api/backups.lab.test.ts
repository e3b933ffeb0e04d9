/**
 * The backup API end to end on the KVM lab: a real server (embedded job system), real
 * SSH to the lab hosts with Backroll's key, real libvirt and borg.
 * Hosts come through the API; VM rows are inserted like the inventory would.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lab, labHost, labSkipReason } from '../../src/adapters/ssh/test-lab.js';
import { domUuid } from '../../src/backups/lab-fixtures.js';
import { startLabApiServer } from '../support/lab-server.js';
import type { TestServer } from '../support/server.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const reason = labSkipReason || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');

describe.skipIf(!lab || borgMissing)(`backup API on the KVM lab${reason}`, () => {
  const l = lab!;
  let t: TestServer;
  let storage: string;
  let dataDir: string;
  let poolId: string;
  let hostId: string;
  const vmIds = new Map<string, string>();

  const waitTask = async (id: string) => {
    for (let i = 0; i < 240; i++) {
      const r = await t.api('GET', `/api/v2/tasks/${id}`);
      if (['succeeded', 'failed', 'canceled', 'interrupted', 'partial'].includes(r.body.state)) return r.body;
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error(`task ${id} did not end`);
  };

  beforeAll(async () => {
    ({ t, dataDir, storage, poolId, hostId } = await startLabApiServer(l, labHost(l, 'kvmhost1'), { encryption: 'repokey', compression: 'zstd,3', quiesce: 'preferred' }));
    const h = labHost(l, 'kvmhost1');
    const db = t.server.db;
    const now = new Date().toISOString();
    for (const name of ['vm-stopped', 'vm-running']) {
      const id = randomUUID();
      vmIds.set(name, id);
      await db
        .insertInto('virtual_machines')
        .values({ id, host_id: hostId, uuid: domUuid(h, name), name, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
    }
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    if (storage) fs.rmSync(storage, { recursive: true, force: true });
    // A data dir given to startTestServer is the caller's to remove.
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('POST backups → 202 task; the restore point is listed with sizes, disks and who started it', async () => {
    const vmId = vmIds.get('vm-stopped')!;
    const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/backups`);
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ kind: 'vm.backup', state: 'queued', target: { type: 'vm', id: vmId }, payload: { vmId } });
    const task = await waitTask(res.body.id);
    expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
    const list = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    const rp = list.body.items[0];
    expect(rp).toMatchObject({ vmId, taskId: task.id, startedBy: expect.stringMatching(/^client:/), source: 'backroll', repository: path.join(storage, 'vm-stopped') });
    expect(rp.disks[0]).toMatchObject({ target: 'vda', format: 'qcow2', virtualSize: 64 << 20 });
    expect(rp.originalSize).toBeGreaterThan(0);
    const one = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points/${rp.id}`);
    expect(one.body).toEqual(rp);
    // An encrypted repository (policy encryption repokey), its key in the data dir.
    const repo = await t.api('GET', `/api/v2/virtual-machines/${vmId}/repository`);
    expect(repo.status, repo.text).toBe(200);
    expect(repo.body).toMatchObject({ encryption: 'repokey-blake2', path: path.join(storage, 'vm-stopped'), owner: { vmName: 'vm-stopped' } });
    expect(fs.statSync(path.join(t.dataDir, 'borg-passphrases', repo.body.owner.vmUuid)).mode & 0o777).toBe(0o600);
  }, 120_000);

  it('reconcile finds archives made outside the index; delete removes a restore point; verify checks the repository', async () => {
    const vmId = vmIds.get('vm-stopped')!;
    const before = (await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`)).body.items;
    await t.server.db.deleteFrom('restore_points').where('vm_id', '=', vmId).execute();
    // A read changes nothing: reconcile is an admin POST (viewers 403, the old GET flag 400).
    expect((await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points?reconcile=true`)).status).toBe(400);
    expect((await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`, { token: t.viewerToken })).status).toBe(403);
    expect((await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`)).body.items).toEqual([]);
    const rec = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`);
    expect(rec.status, rec.text).toBe(200);
    expect(rec.body).toMatchObject({ added: before.length, removed: 0 });
    expect(rec.body.items.map((r: { epoch: number }) => r.epoch)).toEqual(before.map((r: { epoch: number }) => r.epoch));
    expect(rec.body.items[0]).toMatchObject({ source: 'borg', archives: before[0].archives });

    const verify = await t.api('POST', `/api/v2/virtual-machines/${vmId}/repository/verify?verifyData=true`);
    expect(verify.status, verify.text).toBe(202);
    expect((await waitTask(verify.body.id)).state).toBe('succeeded');

    expect((await t.api('POST', `/api/v2/virtual-machines/${vmId}/repository/break-lock`, { token: t.viewerToken })).status).toBe(403);
    expect((await t.api('POST', `/api/v2/virtual-machines/${vmId}/repository/break-lock`)).status).toBe(200);

    const del = await t.api('DELETE', `/api/v2/virtual-machines/${vmId}/restore-points/${rec.body.items[0].id}`);
    expect(del.status, del.text).toBe(202);
    expect((await waitTask(del.body.id)).state).toBe('succeeded');
    expect((await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`)).body.items).toEqual([]);
  }, 180_000);

  it('pool.backup fans out one vm.backup per eligible VM of the connected hosts', async () => {
    const res = await t.api('POST', `/api/v2/pools/${poolId}/backup`);
    expect(res.status, res.text).toBe(202);
    const parent = await waitTask(res.body.id);
    expect(parent.state, JSON.stringify(parent)).toBe('succeeded');
    const children = await t.api('GET', `/api/v2/tasks?parentId=${res.body.id}`);
    expect(children.body.items.map((c: { kind: string; state: string }) => `${c.kind}:${c.state}`).sort()).toEqual(['vm.backup:succeeded', 'vm.backup:succeeded']);
    for (const id of vmIds.values()) expect((await t.api('GET', `/api/v2/virtual-machines/${id}/restore-points`)).body.items.length).toBeGreaterThan(0);
  }, 180_000);

  it('unknown VM: 404; a VM never backed up has no repository yet', async () => {
    expect((await t.api('POST', `/api/v2/virtual-machines/${randomUUID()}/backups`)).body.code).toBe('VM.NOT_FOUND');
    const vmId = vmIds.get('vm-running')!;
    await t.server.db.updateTable('virtual_machines').set({ name: 'never-backed-up' }).where('id', '=', vmId).execute();
    const r = await t.api('GET', `/api/v2/virtual-machines/${vmId}/repository`);
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('BORG.REPOSITORY_NOT_FOUND');
  });
});
