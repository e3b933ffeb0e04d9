/**
 * The console's API on every database: /me, the public sign-in settings, the dashboard's
 * aggregates, the VM table (filters, sorting, paging), task cursor paging and filters,
 * retry of failed children, log download, the policy preview and storage usage.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { iso, seedBackupTask, seedHost, seedPolicy, seedPool, seedRestorePoint, seedStorage, seedVm, taskRow } from '../support/console-seed.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));
const DAY = 86_400_000;

for (const dialect of DIALECTS) {
  describeWhenAvailable(`console API on ${dialect}`, reasons[dialect] ?? null, () => {
    let t: TestServer;
    let dir: string;
    const ids: Record<string, string> = {};
    const now = Date.now();

    beforeAll(async () => {
      t = await startTestServer(dialect);
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-console-'));
    });
    afterAll(async () => {
      await t?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('GET /me tells an admin from a viewer; /api/console/config needs no token', async () => {
      const admin = await t.api('GET', '/api/v2/me');
      expect(admin.status).toBe(200);
      expect(admin.body).toMatchObject({ roles: ['admin', 'viewer'], isAdmin: true, kind: 'client' });
      expect(Date.parse(admin.body.tokenExpiresAt)).toBeGreaterThan(now);
      const viewer = await t.api('GET', '/api/v2/me', { token: t.viewerToken });
      expect(viewer.body).toMatchObject({ roles: ['viewer'], isAdmin: false });
      expect((await t.api('GET', '/api/v2/me', { token: null })).status).toBe(401);
      const cfg = await t.api('GET', '/api/console/config', { token: null });
      expect(cfg.status).toBe(200);
      expect(cfg.body).toEqual({
        issuer: t.config.oidc.issuer,
        clientId: 'backroll-web',
        redirectUri: `${t.url}/ui/callback`,
        scope: 'openid profile offline_access api',
        resource: 'urn:backroll:api',
        embeddedIdp: true,
        version: expect.any(String),
      });
    });

    it('the dashboard of an empty installation is the getting-started checklist', async () => {
      const res = await t.api('GET', '/api/v2/dashboard', { token: t.viewerToken });
      expect(res.status, res.text).toBe(200);
      expect(res.body.gettingStarted).toEqual({ storage: false, policy: false, pool: false, host: false, hostConnected: false, firstBackup: false, complete: false });
      expect(res.body.protection).toEqual({ protected: 0, atRisk: 0, unprotected: 0, noPolicy: 0, excluded: 0, total: 0 });
      expect(res.body.storages).toEqual([]);
    });

    it('the dashboard aggregates protection, tasks, issues, running work, storages and next runs', async () => {
      const db = t.server.db;
      ids.storage = await seedStorage(db, 'primary', dir);
      ids.daily = await seedPolicy(db, { name: 'nightly', storageId: ids.storage, schedule: '0 2 * * *' });
      ids.off = await seedPolicy(db, { name: 'paused', storageId: ids.storage, enabled: false });
      ids.poolA = await seedPool(db, 'prod', ids.daily);
      ids.poolB = await seedPool(db, 'lab', ids.off);
      ids.h1 = await seedHost(db, { name: 'kvm1', poolId: ids.poolA, tags: ['rack1'] });
      ids.h2 = await seedHost(db, { name: 'kvm2', poolId: ids.poolA, state: 'failed', errorCode: 'HOST.UNREACHABLE' });
      ids.h3 = await seedHost(db, { name: 'kvm3', poolId: ids.poolB, state: 'failed', errorCode: 'HOST.KEY_CHANGED', fingerprint: 'SHA256:old' });
      ids.good = await seedVm(db, { name: 'web-1', hostId: ids.h1 });
      ids.risk = await seedVm(db, { name: 'db-1', hostId: ids.h1 });
      ids.none = await seedVm(db, { name: 'new-1', hostId: ids.h2 });
      ids.paused = await seedVm(db, { name: 'lab-1', hostId: ids.h3 });
      ids.sys = await seedVm(db, { name: 'r-12-VM', hostId: ids.h1, systemVm: true });
      ids.gone = await seedVm(db, { name: 'old-1', hostId: ids.h1, present: false });
      // web-1: ten nightly backups, all fine, the newest 2 hours ago.
      for (let i = 0; i < 10; i++) {
        await seedRestorePoint(db, { vmId: ids.good, storageId: ids.storage, atMs: now - 2 * 3_600_000 - i * DAY, original: 1000, dedup: 100 });
        await seedBackupTask(db, ids.good, 'succeeded', now - 2 * 3_600_000 - i * DAY);
      }
      // db-1: an old restore point, then failures.
      await seedRestorePoint(db, { vmId: ids.risk, storageId: ids.storage, atMs: now - 5 * DAY, original: 4000, dedup: 400 });
      await seedBackupTask(db, ids.risk, 'succeeded', now - 5 * DAY);
      await seedBackupTask(db, ids.risk, 'failed', now - 2 * DAY);
      await seedBackupTask(db, ids.risk, 'failed', now - DAY);
      // lab-1: restore point, but its policy is paused.
      await seedRestorePoint(db, { vmId: ids.paused, storageId: ids.storage, atMs: now - 3_600_000 });
      // A backup of new-1 running now (another worker's lease).
      const running = taskRow({
        kind: 'vm.backup',
        state: 'running',
        target_type: 'vm',
        target_id: ids.none,
        created_at: iso(now - 60_000),
        started_at: iso(now - 50_000),
        progress_percent: 42,
        bytes_done: 420,
        bytes_total: 1000,
        progress_step: 'disk vda',
        lease_owner: 'elsewhere',
        lease_expires_at: iso(now + 3_600_000),
      });
      ids.running = running.id;
      await db.insertInto('tasks').values(running).execute();
      // An old task outside the 7-day matrix.
      await seedBackupTask(db, ids.good, 'failed', now - 30 * DAY);

      const res = await t.api('GET', '/api/v2/dashboard', { token: t.viewerToken });
      expect(res.status, res.text).toBe(200);
      const d = res.body;
      expect(d.protection).toEqual({ protected: 1, atRisk: 1, unprotected: 1, noPolicy: 1, excluded: 2, total: 6 });
      const cell = (kind: string, state: string) => d.taskMatrix.cells.find((c: { kind: string; state: string }) => c.kind === kind && c.state === state)?.count;
      // 7 of web-1's 10 successes are within the week (days 0–6), plus db-1's success 5 days ago.
      expect(cell('vm.backup', 'succeeded')).toBe(8);
      expect(cell('vm.backup', 'failed')).toBe(2);
      expect(cell('vm.backup', 'running')).toBe(1);
      expect(d.taskMatrix.kinds).toEqual(['vm.backup']);
      expect(d.issues.failingVms.map((v: { vmName: string }) => v.vmName)).toEqual(['db-1']);
      expect(d.issues.failingVms[0].failures).toBe(2);
      expect(d.issues.failingVms[0].recent.map((r: { state: string }) => r.state)).toEqual(['failed', 'failed', 'succeeded']);
      expect(d.issues.hostsNotConnected).toEqual([expect.objectContaining({ hostName: 'kvm2', errorCode: 'HOST.UNREACHABLE', state: 'failed' })]);
      expect(d.issues.hostKeyChanged).toEqual([expect.objectContaining({ hostName: 'kvm3', pinnedFingerprint: 'SHA256:old' })]);
      expect(d.running).toHaveLength(1);
      expect(d.running[0]).toMatchObject({ id: ids.running, targetName: 'new-1', progress: { percent: 42, bytesDone: 420, bytesTotal: 1000, step: 'disk vda' } });
      expect(d.storages).toHaveLength(1);
      expect(d.storages[0]).toMatchObject({ id: ids.storage, name: 'primary', backupBytes: 10 * 100 + 400 + 100, originalBytes: 10 * 1000 + 4000 + 1000, restorePoints: 12, capacityError: null });
      expect(d.storages[0].dedupRatio).toBeCloseTo(15000 / 1500, 2);
      expect(d.storages[0].capacityBytes).toBeGreaterThan(0);
      expect(d.nextRuns).toEqual([expect.objectContaining({ policyId: ids.daily, policyName: 'nightly', poolCount: 1, vmCount: 3 })]);
      expect(d.nextRuns[0].at).toMatch(/T02:00:00\.000Z$/);
      expect(d.gettingStarted).toEqual({ storage: true, policy: true, pool: true, host: true, hostConnected: true, firstBackup: true, complete: true });
    });

    it('the VM table filters, sorts and pages on the server', async () => {
      const rows = async (q: string) => {
        const res = await t.api('GET', `/api/v2/virtual-machines/rows${q}`, { token: t.viewerToken });
        expect(res.status, res.text).toBe(200);
        return res.body as { items: Array<Record<string, any>>; total: number };
      };
      const all = await rows('');
      expect(all.items.map((r) => r.name)).toEqual(['db-1', 'lab-1', 'new-1', 'old-1', 'web-1']);
      const web = all.items.find((r) => r.name === 'web-1')!;
      expect(web).toMatchObject({
        protection: 'protected',
        host: { name: 'kvm1', connectionState: 'connected', tags: ['rack1'] },
        pool: { name: 'prod' },
        policy: { name: 'nightly', enabled: true },
        lastBackup: { state: 'succeeded' },
        restorePoints: { count: 10, originalBytes: 10_000, deduplicatedBytes: 1000 },
        diskCount: 2,
        running: null,
      });
      expect(web.nextRunAt).toMatch(/T02:00:00\.000Z$/);
      expect(all.items.find((r) => r.name === 'new-1')).toMatchObject({ protection: 'unprotected', lastBackup: null, running: { taskId: ids.running, kind: 'vm.backup', percent: 42 } });
      expect(all.items.find((r) => r.name === 'lab-1')).toMatchObject({ protection: 'noPolicy', nextRunAt: null });
      expect((await rows('?includeSystem=true')).total).toBe(6);
      expect((await rows('?protection=atRisk,unprotected')).items.map((r) => r.name)).toEqual(['db-1', 'new-1']);
      expect((await rows('?failed=true')).items.map((r) => r.name)).toEqual(['db-1']);
      expect((await rows('?search=WEB')).items.map((r) => r.name)).toEqual(['web-1']);
      expect((await rows('?search=%25')).total).toBe(0);
      expect((await rows(`?hostId=${ids.h1}&present=true`)).items.map((r) => r.name)).toEqual(['db-1', 'web-1']);
      expect((await rows('?tag=rack1')).total).toBe(3);
      expect((await rows(`?poolId=${ids.poolB}`)).items.map((r) => r.name)).toEqual(['lab-1']);
      expect((await rows('?sort=-size')).items.map((r) => r.name)).toEqual(['web-1', 'db-1', 'lab-1', 'new-1', 'old-1']);
      expect((await rows('?sort=lastBackup')).items.map((r) => r.name).slice(0, 2)).toEqual(['db-1', 'web-1']);
      const page2 = await rows('?limit=2&offset=2');
      expect([page2.total, page2.items.map((r) => r.name)]).toEqual([5, ['new-1', 'old-1']]);
      const bad = await t.api('GET', '/api/v2/virtual-machines/rows?sort=color');
      expect([bad.status, bad.body.code]).toEqual([400, 'REQUEST.INVALID']);
    });

    it('tasks: comma kinds, vmId, cursor paging without gaps, capped or no total, log download', async () => {
      const page = async (q: string) => {
        const res = await t.api('GET', `/api/v2/tasks${q}`, { token: t.viewerToken });
        expect(res.status, res.text).toBe(200);
        return res.body;
      };
      const first = await page(`?vmId=${ids.good}&limit=4`);
      expect([first.total, first.totalCapped, first.items.length]).toEqual([11, false, 4]);
      const seen: string[] = first.items.map((x: { id: string }) => x.id);
      let cursor = first.nextCursor;
      while (cursor) {
        const next = await page(`?vmId=${ids.good}&limit=4&before=${encodeURIComponent(cursor)}`);
        seen.push(...next.items.map((x: { id: string }) => x.id));
        cursor = next.nextCursor;
      }
      expect(seen).toHaveLength(11);
      expect(new Set(seen).size).toBe(11);
      const byOffset = await page(`?vmId=${ids.good}&limit=100&count=exact`);
      expect(byOffset.items.map((x: { id: string }) => x.id)).toEqual(seen);
      expect((await page(`?vmId=${ids.good}&count=none&limit=1`)).total).toBe(-1);
      expect((await page('?kind=vm.backup,pool.backup&state=running')).items.map((x: { id: string }) => x.id)).toEqual([ids.running]);
      const conflict = await t.api('GET', `/api/v2/tasks?before=${encodeURIComponent(first.nextCursor)}&offset=3`);
      expect([conflict.status, conflict.body.code]).toEqual([400, 'TASK.FILTER_CONFLICT']);
      expect((await t.api('GET', '/api/v2/tasks?before=yesterday')).status).toBe(400);

      await t.server.db
        .insertInto('task_logs')
        .values([
          { task_id: ids.running!, seq: 1, at: iso(now - 40_000), level: 'info', message: 'snapshot taken' },
          { task_id: ids.running!, seq: 2, at: iso(now - 30_000), level: 'warn', message: 'slow disk\nsecond line' },
        ])
        .execute();
      const log = await t.api('GET', `/api/v2/tasks/${ids.running}/log.txt`, { token: t.viewerToken });
      expect(log.status).toBe(200);
      expect(log.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(log.headers.get('content-disposition')).toBe(`attachment; filename="task-${ids.running}.log"`);
      expect(log.text).toBe(`${iso(now - 40_000)} INFO snapshot taken\n${iso(now - 30_000)} WARN slow disk\n    second line\n`);
    });

    it('retries the failed children of a finished pool backup once', async () => {
      const db = t.server.db;
      const parent = taskRow({ kind: 'pool.backup', state: 'partial', target_type: 'pool', target_id: ids.poolA, created_at: iso(now - 3_600_000), finished_at: iso(now - 3_000_000) });
      await db.insertInto('tasks').values(parent).execute();
      const child = (state: string) => taskRow({ kind: 'test.child', state, parent_id: parent.id, target_type: 'vm', target_id: ids.risk, created_at: iso(now - 3_500_000), finished_at: iso(now - 3_100_000), payload: '{"x":1}' });
      const failed = child('failed');
      await db.insertInto('tasks').values([failed, child('succeeded'), child('canceled')]).execute();
      const viewer = await t.api('POST', `/api/v2/tasks/${parent.id}/retry-failed`, { token: t.viewerToken });
      expect(viewer.status).toBe(403);
      const res = await t.api('POST', `/api/v2/tasks/${parent.id}/retry-failed`);
      expect(res.status, res.text).toBe(201);
      expect(res.body.parentId).toBe(parent.id);
      expect(res.body.retried).toHaveLength(1);
      expect(res.body.retried[0]).toMatchObject({ kind: 'test.child', retryOf: failed.id, parentId: null, payload: { x: 1 }, target: { type: 'vm', id: ids.risk } });
      const again = await t.api('POST', `/api/v2/tasks/${parent.id}/retry-failed`);
      expect([again.status, again.body.code]).toEqual([409, 'TASK.NO_FAILED_CHILDREN']);
      const busy = await t.api('POST', `/api/v2/tasks/${ids.running}/retry-failed`);
      expect([busy.status, busy.body.code]).toEqual([409, 'TASK.NOT_FINISHED']);
    });

    it('previews a policy: next runs and a prune dry run on a VM’s real restore points', async () => {
      const res = await t.api('POST', '/api/v2/policies/preview', {
        body: { schedule: '0 2 * * 1-5', timezone: 'Europe/Paris', runs: 3, retention: { daily: 3, weekly: 1, monthly: 0, yearly: 0 }, vmId: ids.good },
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.nextRuns).toHaveLength(3);
      expect(res.body.intervalSeconds).toBe(3 * 86400);
      const p = res.body.prune;
      expect([p.vmName, p.total, p.keptCount, p.prunedCount]).toEqual(['web-1', 10, p.kept.length, 10 - p.kept.length]);
      expect(p.kept.slice(0, 3).map((k: { reason: string }) => k.reason)).toEqual(['daily 1', 'daily 2', 'daily 3']);
      expect(p.kept.length).toBe(4);
      expect(p.kept[3].reason).toMatch(/^weekly 1$/);
      expect(p.freedBytes).toBe(600);
      expect(p.pruned.every((x: { reason: string }) => x.reason === 'not kept by any rule')).toBe(true);
      const plain = await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '*/30 * * * *' } });
      expect([plain.status, plain.body.prune, plain.body.nextRuns.length, plain.body.intervalSeconds]).toEqual([200, null, 5, 1800]);
      const badCron = await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '0 2 * *' } });
      expect([badCron.status, badCron.body.code, badCron.body.field]).toEqual([400, 'POLICY.SCHEDULE_INVALID', 'schedule']);
      const badTz = await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '0 2 * * *', timezone: 'Mars/Olympus' } });
      expect([badTz.status, badTz.body.code]).toEqual([400, 'POLICY.TIMEZONE_INVALID']);
      const keepNothing = await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '0 2 * * *', vmId: ids.good, retention: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } } });
      expect([keepNothing.status, keepNothing.body.code]).toEqual([400, 'POLICY.RETENTION_INVALID']);
      const noVm = await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '0 2 * * *', vmId: '00000000-0000-4000-8000-000000000000', retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 } } });
      expect([noVm.status, noVm.body.code]).toEqual([404, 'VM.NOT_FOUND']);
      expect((await t.api('POST', '/api/v2/policies/preview', { body: { schedule: '0 2 * * *' }, token: t.viewerToken })).status).toBe(403);
    });

    it('storage usage: samples, trend, top VMs; storages report cached capacity', async () => {
      const db = t.server.db;
      for (let i = 10; i >= 0; i--) {
        await db
          .insertInto('storage_usage_samples')
          .values({ id: crypto.randomUUID(), storage_id: ids.storage!, at: iso(now - i * DAY), capacity_bytes: 1000e9, used_bytes: 500e9 - i * 10e9, free_bytes: 500e9 + i * 10e9, backup_bytes: 1, original_bytes: 2 })
          .execute();
      }
      const res = await t.api('GET', `/api/v2/storages/${ids.storage}/usage?days=30`, { token: t.viewerToken });
      expect(res.status, res.text).toBe(200);
      expect(res.body.samples.length).toBeGreaterThanOrEqual(11);
      // 10 GB a day, 500 GB free: full in 50 days.
      expect(Math.abs(Date.parse(res.body.estimatedFullAt) - (now + 50 * DAY))).toBeLessThan(DAY);
      expect(res.body.topVms.map((v: { vmName: string }) => v.vmName)).toEqual(['web-1', 'db-1', 'lab-1']);
      expect(res.body.dedupRatio).toBe(10);
      const dash = await t.api('GET', '/api/v2/dashboard');
      expect(dash.body.storages[0].samples.length).toBeGreaterThanOrEqual(11);
      expect(dash.body.storages[0].estimatedFullAt).toBe(res.body.estimatedFullAt);
      const missing = await t.api('GET', '/api/v2/storages/00000000-0000-4000-8000-000000000000/usage');
      expect([missing.status, missing.body.code]).toEqual([404, 'STORAGE.NOT_FOUND']);
      const list = await t.api('GET', '/api/v2/storages');
      expect(list.body.items[0]).toMatchObject({ capacityError: null, capacityAt: expect.any(String) });
    });
  });
}
