import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { startTestServer, type TestServer } from '../support/server.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

/** A directory nobody may write to, even root: a read-only kernel file system. */
const UNWRITABLE_DIR = process.getuid?.() === 0 ? '/proc/self' : (() => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-ro-'));
  fs.chmodSync(d, 0o555);
  return d;
})();

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  describe.skipIf(reason !== null)(`core resources on ${dialect}${reason ? ` (skipped: ${reason})` : ''}`, () => {
    let t: TestServer;
    let storageDir: string;

    beforeAll(async () => {
      t = await startTestServer(dialect);
      storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
    });
    afterAll(async () => {
      await t?.close();
      if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
    });

    const expectProblem = (res: { status: number; headers: Headers; body: { code?: string; detail?: string } }, status: number, code: string) => {
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.code).toBe(code);
      expect(res.body.detail).toEqual(expect.any(String));
    };

    it('creates a storage and reports live capacity', async () => {
      const res = await t.api('POST', '/api/v2/storages', { body: { name: 'primary', path: storageDir } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ name: 'primary', path: storageDir });
      expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.body.capacityBytes).toBeGreaterThan(0);
      expect(res.body.freeBytes).toBeGreaterThan(0);
      expect(res.body.usedBytes).toBeGreaterThanOrEqual(0);
      expect(res.body.capacityBytes).toBeGreaterThanOrEqual(res.body.freeBytes);
      const again = await t.api('GET', `/api/v2/storages/${res.body.id}`);
      expect(again.body.name).toBe('primary');
    });

    it('refuses storages whose path is unusable, with a code per cause', async () => {
      const file = path.join(storageDir, 'a-file');
      fs.writeFileSync(file, 'x');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: 'x1', path: '/nonexistent/backroll' } }), 400, 'STORAGE.PATH_NOT_FOUND');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: 'x2', path: file } }), 400, 'STORAGE.PATH_NOT_DIRECTORY');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: 'x3', path: UNWRITABLE_DIR } }), 400, 'STORAGE.PATH_NOT_WRITABLE');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: 'x4', path: 'relative/dir' } }), 400, 'STORAGE.PATH_NOT_ABSOLUTE');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: 'primary', path: storageDir } }), 409, 'STORAGE.NAME_TAKEN');
      const list = await t.api('GET', '/api/v2/storages?limit=500');
      expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['primary']);
    });

    it('validates request bodies against the schema', async () => {
      const res = await t.api('POST', '/api/v2/storages', { body: { name: 'y', path: storageDir, colour: 'red' } });
      expectProblem(res, 400, 'REQUEST.INVALID');
      expect(res.body.detail).toContain('unknown property "colour"');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { name: '', path: storageDir } }), 400, 'REQUEST.INVALID');
      expectProblem(await t.api('POST', '/api/v2/storages', { body: { path: storageDir } }), 400, 'REQUEST.INVALID');
      expectProblem(await t.api('GET', '/api/v2/storages/not-a-uuid'), 400, 'REQUEST.INVALID');
      expectProblem(await t.api('GET', '/api/v2/storages/00000000-0000-4000-8000-000000000000'), 404, 'STORAGE.NOT_FOUND');
      expectProblem(await t.api('GET', '/api/v2/storages?limit=0'), 400, 'REQUEST.INVALID');
    });

    it('manages policies: cron validated, next five runs returned', async () => {
      const storage = (await t.api('GET', '/api/v2/storages?name=primary')).body.items[0];
      const good = {
        name: 'nightly',
        schedule: '30 1 * * *',
        timezone: 'Europe/Paris',
        retention: { daily: 7, weekly: 4, monthly: 3, yearly: 0 },
        storageId: storage.id,
        quiesce: 'preferred',
        compression: 'zstd,3',
      };
      const res = await t.api('POST', '/api/v2/policies', { body: good });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({ name: 'nightly', enabled: true, encryption: 'none', hookId: null, retention: good.retention, changedBlockTracking: true, fullEveryDays: 30 });
      expect(res.body.nextRuns).toHaveLength(5);
      const first = new Date(res.body.nextRuns[0]);
      expect(first.getTime()).toBeGreaterThan(Date.now());
      expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' }).format(first)).toBe('01:30');

      const bad = (patch: object) => t.api('POST', '/api/v2/policies', { body: { ...good, name: `p-${Math.random()}`, ...patch } });
      expectProblem(await bad({ schedule: '0 61 * * *' }), 400, 'POLICY.SCHEDULE_INVALID');
      expectProblem(await bad({ schedule: '0 0 2 * * *' }), 400, 'POLICY.SCHEDULE_INVALID');
      expectProblem(await bad({ schedule: '0 0 30 2 *' }), 400, 'POLICY.SCHEDULE_NEVER_RUNS');
      expectProblem(await bad({ timezone: 'Mars/Olympus' }), 400, 'POLICY.TIMEZONE_INVALID');
      expectProblem(await bad({ retention: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } }), 400, 'POLICY.RETENTION_INVALID');
      expectProblem(await bad({ retention: { daily: -1, weekly: 0, monthly: 0, yearly: 1 } }), 400, 'REQUEST.INVALID');
      expectProblem(await bad({ compression: 'zstd,23' }), 400, 'POLICY.COMPRESSION_INVALID');
      expectProblem(await bad({ compression: 'gzip' }), 400, 'REQUEST.INVALID');
      expectProblem(await bad({ quiesce: 'sometimes' }), 400, 'REQUEST.INVALID');
      expectProblem(await bad({ storageId: '00000000-0000-4000-8000-000000000000' }), 400, 'POLICY.STORAGE_NOT_FOUND');
      expectProblem(await bad({ hookId: '00000000-0000-4000-8000-000000000000' }), 400, 'POLICY.HOOK_NOT_FOUND');
      expectProblem(await bad({ name: 'nightly' }), 409, 'POLICY.NAME_TAKEN');
      expectProblem(await bad({ fullEveryDays: -1 }), 400, 'REQUEST.INVALID');
      expectProblem(await bad({ changedBlockTracking: 'yes' }), 400, 'REQUEST.INVALID');

      const patched = await t.api('PATCH', `/api/v2/policies/${res.body.id}`, { body: { enabled: false, retention: { yearly: 2 } } });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ enabled: false, retention: { daily: 7, weekly: 4, monthly: 3, yearly: 2 } });
      // A PATCH changes only what it names: defaults of the create body must not creep in.
      const renamed = await t.api('PATCH', `/api/v2/policies/${res.body.id}`, { body: { description: 'nightly backups' } });
      expect(renamed.body).toMatchObject({ enabled: false, description: 'nightly backups', timezone: 'Europe/Paris', compression: 'zstd,3' });
      // Changed-block tracking and the periodic full read are policy settings (read by the engine from these columns).
      const cbt = await t.api('PATCH', `/api/v2/policies/${res.body.id}`, { body: { changedBlockTracking: false, fullEveryDays: 7 } });
      expect(cbt.body).toMatchObject({ changedBlockTracking: false, fullEveryDays: 7, description: 'nightly backups' });
      const row = await t.server.db.selectFrom('policies').select(['changed_block_tracking', 'full_every_days']).where('id', '=', res.body.id).executeTakeFirstOrThrow();
      expect([Number(row.changed_block_tracking), row.full_every_days]).toEqual([0, 7]);
      const preview = await t.api('GET', `/api/v2/policies/schedule-preview?schedule=${encodeURIComponent('*/15 * * * *')}`);
      expect(preview.body.nextRuns).toHaveLength(5);
    });

    it('keeps connector and hook secrets write-only and encrypted at rest', async () => {
      const apiKey = 'AK-plaintext-api-key-123456';
      const secretKey = 'SK-plaintext-secret-key-abcdef';
      const c = await t.api('POST', '/api/v2/connectors', { body: { name: 'acs', endpointUrl: 'https://cloud.example/client/api', apiKey, secretKey } });
      expect(c.status, JSON.stringify(c.body)).toBe(201);
      expect(c.body).toMatchObject({ name: 'acs', kind: 'cloudstack', apiKeySet: true, secretKeySet: true });
      expect(c.text).not.toContain(apiKey);
      expect(c.text).not.toContain(secretKey);
      expect((await t.api('GET', `/api/v2/connectors/${c.body.id}`)).text).not.toContain(secretKey);
      expectProblem(await t.api('POST', '/api/v2/connectors', { body: { name: 'acs2', endpointUrl: 'ftp://cloud.example/api', apiKey, secretKey } }), 400, 'CONNECTOR.ENDPOINT_INVALID');

      const hookUrl = 'https://hooks.slack.example/services/T000/B000/XXXXSECRET';
      const h = await t.api('POST', '/api/v2/hooks', { body: { name: 'ops', kind: 'slack', url: hookUrl, events: ['backup.failed'] } });
      expect(h.status, JSON.stringify(h.body)).toBe(201);
      expect(h.body).toMatchObject({ urlHint: 'https://hooks.slack.example/…', secretSet: false });
      expect(h.text).not.toContain('XXXXSECRET');
      const wh = await t.api('POST', '/api/v2/hooks', {
        body: { name: 'siem', kind: 'webhook', url: 'https://siem.example/in', secret: 'hmac-signing-secret-0123456789', events: ['backup.succeeded', 'backup.failed'] },
      });
      expect(wh.body.secretSet).toBe(true);
      expect(wh.text).not.toContain('hmac-signing-secret');
      expectProblem(await t.api('POST', '/api/v2/hooks', { body: { name: 'x', kind: 'webhook', url: 'https://user:pw@x.example/', events: ['backup.failed'] } }), 400, 'HOOK.URL_INVALID');

      // At rest: the database holds only sealed values.
      const rows = JSON.stringify([
        await t.server.db.selectFrom('connectors').selectAll().execute(),
        await t.server.db.selectFrom('hooks').selectAll().execute(),
      ]);
      for (const secret of [apiKey, secretKey, 'XXXXSECRET', 'hmac-signing-secret']) expect(rows).not.toContain(secret);
      expect(rows).toContain('v1:');
      // ...and the service can open them for the code that needs them.
      expect(await t.server.services.connectors.credentials(c.body.id)).toMatchObject({ apiKey, secretKey });
      expect((await t.server.services.hooks.target(h.body.id)).url).toBe(hookUrl);
    });

    it('links pools and hosts, and refuses deleting what is still referenced (409)', async () => {
      const storage = (await t.api('GET', '/api/v2/storages?name=primary')).body.items[0];
      const policy = (await t.api('GET', '/api/v2/policies?name=nightly')).body.items[0];
      const connector = (await t.api('GET', '/api/v2/connectors')).body.items[0];
      const hook = (await t.api('GET', '/api/v2/hooks')).body.items.find((h: { name: string }) => h.name === 'ops');
      expect((await t.api('PATCH', `/api/v2/policies/${policy.id}`, { body: { hookId: hook.id } })).status).toBe(200);

      const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'rack-a', policyId: policy.id, connectorId: connector.id } });
      expect(pool.status, JSON.stringify(pool.body)).toBe(201);
      expectProblem(await t.api('POST', '/api/v2/pools', { body: { name: 'rack-b', policyId: '00000000-0000-4000-8000-000000000000' } }), 400, 'POOL.POLICY_NOT_FOUND');

      const host = await t.api('POST', '/api/v2/hosts', { body: { name: 'kvm1', address: '127.0.0.1', poolId: pool.body.id, tags: ['ssd'] } });
      expect(host.status, JSON.stringify(host.body)).toBe(201);
      expect(host.body).toMatchObject({ sshPort: 22, username: 'root', libvirtUri: 'qemu:///system', hostKeyFingerprint: null, connection: { state: 'unknown' } });
      expectProblem(await t.api('POST', '/api/v2/hosts', { body: { name: 'bad', address: 'x;reboot', poolId: pool.body.id } }), 400, 'HOST.ADDRESS_INVALID');
      expectProblem(await t.api('POST', '/api/v2/hosts', { body: { name: 'bad', address: 'kvm2', poolId: pool.body.id, libvirtUri: 'qemu+ssh://evil/system' } }), 400, 'HOST.LIBVIRT_URI_INVALID');
      expectProblem(await t.api('POST', '/api/v2/hosts', { body: { name: 'bad', address: 'kvm2', poolId: pool.body.id, sshPort: 70000 } }), 400, 'REQUEST.INVALID');
      expectProblem(await t.api('POST', '/api/v2/hosts', { body: { name: 'kvm1', address: 'kvm2', poolId: pool.body.id } }), 409, 'HOST.NAME_TAKEN');
      expect((await t.api('GET', '/api/v2/hosts?tag=ssd')).body.total).toBe(1);
      expect((await t.api('GET', '/api/v2/hosts?tag=hdd')).body.total).toBe(0);
      // LIKE wildcards in a tag filter are literal.
      expect((await t.api('GET', '/api/v2/hosts?tag=s_d')).body.total).toBe(0);
      expect((await t.api('GET', '/api/v2/hosts?tag=%25')).body.total).toBe(0);

      const inUse = async (p: string, code: string, type: string, name: string) => {
        const res = await t.api('DELETE', p);
        expectProblem(res, 409, code);
        expect(res.body.referencedBy).toEqual([expect.objectContaining({ type, name })]);
        expect(res.body.detail).toContain(name);
      };
      await inUse(`/api/v2/storages/${storage.id}`, 'STORAGE.IN_USE', 'policy', 'nightly');
      await inUse(`/api/v2/policies/${policy.id}`, 'POLICY.IN_USE', 'pool', 'rack-a');
      await inUse(`/api/v2/pools/${pool.body.id}`, 'POOL.IN_USE', 'host', 'kvm1');
      await inUse(`/api/v2/connectors/${connector.id}`, 'CONNECTOR.IN_USE', 'pool', 'rack-a');
      await inUse(`/api/v2/hooks/${hook.id}`, 'HOOK.IN_USE', 'policy', 'nightly');

      // Unwinding in order works, and everything is really gone.
      for (const p of [`/api/v2/hosts/${host.body.id}`, `/api/v2/pools/${pool.body.id}`, `/api/v2/policies/${policy.id}`, `/api/v2/storages/${storage.id}`]) {
        expect((await t.api('DELETE', p)).status, p).toBe(204);
        expectProblem(await t.api('GET', p), 404, `${p.split('/')[3]!.replace(/s$/, '').replace(/ie$/, 'y').toUpperCase()}.NOT_FOUND`);
      }
    });

    it('paginates lists with a stable order and a total', async () => {
      for (const n of ['c', 'a', 'b']) {
        const dir = fs.mkdtempSync(path.join(storageDir, `${n}-`));
        expect((await t.api('POST', '/api/v2/storages', { body: { name: `page-${n}`, path: dir } })).status).toBe(201);
      }
      const p1 = await t.api('GET', '/api/v2/storages?limit=2&offset=0');
      const p2 = await t.api('GET', '/api/v2/storages?limit=2&offset=2');
      expect(p1.body).toMatchObject({ total: 3, limit: 2, offset: 0 });
      expect(p1.body.items.map((s: { name: string }) => s.name)).toEqual(['page-a', 'page-b']);
      expect(p2.body.items.map((s: { name: string }) => s.name)).toEqual(['page-c']);
    });

    it('lets a viewer read but not write', async () => {
      const read = await t.api('GET', '/api/v2/storages', { token: t.viewerToken });
      expect(read.status).toBe(200);
      const write = await t.api('POST', '/api/v2/storages', { token: t.viewerToken, body: { name: 'v', path: storageDir } });
      expectProblem(write, 403, 'AUTH.ADMIN_REQUIRED');
      const del = await t.api('DELETE', `/api/v2/storages/${read.body.items[0].id}`, { token: t.viewerToken });
      expectProblem(del, 403, 'AUTH.ADMIN_REQUIRED');
    });
  });
}
