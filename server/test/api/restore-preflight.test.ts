/**
 * POST /virtual-machines/{id}/restores/preflight on every database: free space where the
 * images go, a name already taken on the target host, the VM stopped by an in-place restore,
 * size and an estimate from past restores; the restore's own validation problems; nothing starts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { iso, seedHost, seedPolicy, seedPool, seedRestorePoint, seedStorage, seedVm, taskRow } from '../support/console-seed.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  describeWhenAvailable(`restore pre-flight on ${dialect}`, reasons[dialect] ?? null, () => {
    let t: TestServer;
    let dir: string;
    let vmId: string;
    let rpId: string;
    let hugeRpId: string;

    beforeAll(async () => {
      t = await startTestServer(dialect);
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-preflight-'));
      fs.mkdirSync(path.join(dir, 'vms'));
      const db = t.server.db;
      const storage = await seedStorage(db, 's', dir);
      const pool = await seedPool(db, 'p', await seedPolicy(db, { name: 'p', storageId: storage }));
      const host = await seedHost(db, { name: 'kvm1', poolId: pool });
      vmId = await seedVm(db, { name: 'web-1', hostId: host });
      await seedVm(db, { name: 'taken', hostId: host });
      const disks = JSON.stringify([{ target: 'vda', path: path.join(dir, 'vms', 'web-1.qcow2'), format: 'qcow2', archive: 'vda_1' }]);
      rpId = await seedRestorePoint(db, { vmId, storageId: storage, atMs: Date.now() - 3_600_000, original: 10 * 2 ** 30 });
      hugeRpId = await seedRestorePoint(db, { vmId, storageId: storage, atMs: Date.now() - 7_200_000, original: 2 ** 60 });
      await db.updateTable('restore_points').set({ disks }).execute();
      // One past restore: 10 GiB in 100 s.
      await db
        .insertInto('tasks')
        .values(taskRow({ kind: 'vm.restore', state: 'succeeded', created_at: iso(Date.now() - 86_400_000), started_at: iso(Date.now() - 86_400_000), finished_at: iso(Date.now() - 86_400_000 + 100_000), bytes_total: 10 * 2 ** 30 }))
        .execute();
    });
    afterAll(async () => {
      await t?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const preflight = (body: unknown, token?: string) => t.api('POST', `/api/v2/virtual-machines/${vmId}/restores/preflight`, { body, token });

    it('as a new VM: space, name, size and an estimate from past restores', async () => {
      const res = await preflight({ restorePointId: rpId, mode: 'new-vm', newName: 'web-1-copy' });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({
        ok: true,
        sizeBytes: 10 * 2 ** 30,
        estimatedSeconds: 100,
        estimateBasis: { source: 'restores', samples: 1 },
        target: { kind: 'host', directory: path.join(dir, 'vms'), freeBytes: expect.any(Number) },
      });
      const code = (c: string) => res.body.checks.find((x: { code: string }) => x.code === c);
      expect(code('RESTORE.NAME_TAKEN')).toMatchObject({ ok: true, severity: 'error' });
      expect(code('VM.LOCKED')).toMatchObject({ ok: true });
      expect(await t.server.db.selectFrom('tasks').select('id').where('kind', '=', 'vm.restore').execute()).toHaveLength(1);

      const taken = await preflight({ restorePointId: rpId, mode: 'new-vm', newName: 'taken' });
      expect(taken.body.ok).toBe(false);
      expect(taken.body.checks.find((x: { code: string }) => x.code === 'RESTORE.NAME_TAKEN')).toMatchObject({ ok: false, severity: 'error', message: expect.stringContaining('choose another name') });
    });

    it('refuses what does not fit, and warns that an in-place restore stops the VM', async () => {
      const huge = await preflight({ restorePointId: hugeRpId, mode: 'new-vm', newName: 'big' });
      expect(huge.body.ok).toBe(false);
      expect(huge.body.checks.find((x: { code: string }) => x.code === 'RESTORE.TARGET_SPACE')).toMatchObject({ ok: false, severity: 'error' });
      const inPlace = await preflight({ restorePointId: rpId, mode: 'in-place' });
      expect(inPlace.status, inPlace.text).toBe(200);
      expect(inPlace.body.checks.find((x: { code: string }) => x.code === 'VM.WILL_STOP')).toMatchObject({ ok: true, severity: 'warning', message: expect.stringContaining('is stopped') });
      expect(inPlace.body.ok).toBe(true);
    });

    it('gives the restore’s own validation problems; viewers may not', async () => {
      const noName = await preflight({ restorePointId: rpId, mode: 'new-vm' });
      expect([noName.status, noName.body.code]).toEqual([400, 'RESTORE.NEW_NAME_INVALID']);
      const noRp = await preflight({ restorePointId: '00000000-0000-4000-8000-000000000000', mode: 'in-place' });
      expect([noRp.status, noRp.body.code]).toEqual([404, 'RESTORE_POINT.NOT_FOUND']);
      expect((await preflight({ restorePointId: rpId, mode: 'in-place' }, t.viewerToken)).status).toBe(403);
    });
  });
}
