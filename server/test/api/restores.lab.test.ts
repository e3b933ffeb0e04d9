/**
 * The restore API end to end on the KVM lab: a real server (embedded job system), a backup
 * made through the API, then `POST …/restores` tasks run by the worker and the disk download,
 * with the roles enforced. Works on a clone of a lab VM (the lab's own VMs stay untouched).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, scribble, sha256File, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import { startLabApiServer } from '../support/lab-server.js';
import type { TestServer } from '../support/server.js';

const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');

describe.skipIf(reason !== '')(`restore API on the KVM lab${reason}`, () => {
  const l = lab!;
  let h: LabHost;
  let t: TestServer;
  let storage: string;
  let vm: CloneVm;
  let vmId: string;
  let rpId: string;
  let atBackup: string;
  /** sha256 of the disk file itself when it was archived (shut off: borg read this very file). */
  let fileAtBackup: string;
  let dataDir: string;
  let hostId: string;
  const tag = randomBytes(3).toString('hex');

  const waitTask = async (id: string) => {
    for (let i = 0; i < 240; i++) {
      const r = await t.api('GET', `/api/v2/tasks/${id}`);
      if (['succeeded', 'failed', 'canceled', 'interrupted', 'partial'].includes(r.body.state)) return r.body;
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error(`task ${id} did not end`);
  };

  beforeAll(async () => {
    h = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    ({ t, dataDir, storage, hostId } = await startLabApiServer(l, h, { encryption: 'repokey', compression: 'lz4', quiesce: 'off' }));

    // Shut off: a running lab guest (no OS) ignores the ACPI shutdown, so each restore would wait out
    // the 120 s grace before powering it off; running VMs are covered by src/restores/*.lab.test.ts.
    vm = cloneVm(l, h, 'vm-stopped', `rst-api-${tag}`, `api-${tag}`, false);
    vmId = randomUUID();
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'shut off', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    const b = await t.api('POST', `/api/v2/virtual-machines/${vmId}/backups`);
    expect(b.status, b.text).toBe(202);
    const bt = await waitTask(b.body.id);
    expect(bt.state, JSON.stringify(bt.error)).toBe('succeeded');
    const list = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
    rpId = list.body.items[0].id;
    atBackup = rawSha(vm.disks[0]!.path);
    fileAtBackup = sha256File(vm.disks[0]!.path);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    if (vm) removeClone(h, vm);
    if (storage) fs.rmSync(storage, { recursive: true, force: true });
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('POST restores in place → 202 vm.restore task; the worker restores the disk', async () => {
    scribble(h, vm, 'vda', false, '0xb3');
    expect(rawSha(vm.disks[0]!.path)).not.toBe(atBackup);
    const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { body: { restorePointId: rpId, mode: 'in-place' } });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ kind: 'vm.restore', state: 'queued', target: { type: 'vm', id: vmId }, payload: { vmId, restorePointId: rpId, mode: 'in-place' } });
    expect(res.body.startedBy).toMatch(/^client:/);
    const task = await waitTask(res.body.id);
    expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
    expect(task.result).toMatchObject({ mode: 'in-place', restarted: false, stoppedBy: 'already' });
    expect(task.progress.percent).toBe(100);
    expect(rawSha(vm.disks[0]!.path)).toBe(atBackup);
    expect(domState(h, vm.uuid)).toBe('shut off');
    expect(leftovers(vm.dir)).toEqual([]);
    const log = await t.api('GET', `/api/v2/tasks/${res.body.id}/log`);
    expect(JSON.stringify(log.body)).toContain('qemu-img check');
  }, 180_000);

  it('POST restores to a directory: the task writes the files; a bad directory fails at once with its code', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-restore-dir-'));
    try {
      const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { body: { restorePointId: rpId, mode: 'directory', directory: dir } });
      expect(res.status, res.text).toBe(202);
      const task = await waitTask(res.body.id);
      expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
      const names = fs.readdirSync(dir).sort();
      expect(names).toEqual(['backroll.json', 'domain.xml', path.basename(vm.disks[0]!.path)].sort());
      expect(rawSha(path.join(dir, path.basename(vm.disks[0]!.path)))).toBe(atBackup);
      const bad = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { body: { restorePointId: rpId, mode: 'directory', directory: dir } });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ code: 'RESTORE.DIRECTORY_INVALID', reason: 'not_empty' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('GET download: the archived image file byte for byte (admin only)', async () => {
    const url = `/api/v2/virtual-machines/${vmId}/restore-points/${rpId}/disks/vda/download`;
    const denied = await t.api('GET', url, { token: t.viewerToken });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('AUTH.ADMIN_REQUIRED');
    const res = await fetch(`${t.url}${url}`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain(path.basename(vm.disks[0]!.path));
    const body = Buffer.from(await res.arrayBuffer());
    expect(Number(res.headers.get('content-length'))).toBe(body.length);
    const out = path.join(os.tmpdir(), `backroll-dl-${tag}.qcow2`);
    try {
      fs.writeFileSync(out, body);
      expect(rawSha(out)).toBe(atBackup);
    } finally {
      fs.rmSync(out, { force: true });
    }
    // Byte-identical to the disk file borg archived, not only the same guest content.
    expect(createHash('sha256').update(body).digest('hex')).toBe(fileAtBackup);
  }, 120_000);

  it('viewers cannot start restores', async () => {
    const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { body: { restorePointId: rpId, mode: 'in-place' }, token: t.viewerToken });
    expect(res.status).toBe(403);
  });
});
