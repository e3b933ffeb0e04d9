/**
 * The BackROLL-compatible /api/v1 against a real server (SQLite, bundled OpenID provider,
 * embedded job system, real borg on a local repository), driven by CloudStack's client as
 * the contract describes each generation, every response parsed with a strict schema.
 * The end-to-end sequence on a lab VM (backup, restore, delete) is v1.contract.lab.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { SignJWT, decodeProtectedHeader, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMachineClient } from '../../src/idp/index.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { BackupListInfo, CloudStackClient, RepositoryInfo, Schemas, parseStrict, raw, type Generation } from './cloudstack-client.js';
import { freePort as closedPort } from '../support/ports.js';

const GENERATIONS: Generation[] = ['2024-12', '2025-04', '2026'];
const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;


describe('/api/v1 for CloudStack: contract (no lab)', () => {
  let t: TestServer;
  let app: { clientId: string; clientSecret: string };
  let base: string;
  const client = (g: Generation, secret = app.clientSecret, id = app.clientId) => new CloudStackClient(base, g, id, secret);
  const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-v1-storage-'));
  const borgHome = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-v1-borg-'));

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    app = createMachineClient(t.dataDir, t.server.secretBox, 'cloudstack', 'admin');
    base = `${t.url}/api/v1`;
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(storageDir, { recursive: true, force: true });
    fs.rmSync(borgHome, { recursive: true, force: true });
  });

  describe('login', () => {
    it.each(GENERATIONS)('%s: logs in with the machine client and the token opens the API', async (g) => {
      const c = client(g);
      const token = await c.login();
      const me = await t.api('GET', '/api/v2/auth/me', { token });
      expect(me.status, me.text).toBe(200);
      expect(me.body.roles).toContain('admin');
    });

    it('POST /auth answers with a body (never 204), whatever is sent', async () => {
      const res = await raw(`${base}/auth`, 'POST', {});
      expect(res.status).not.toBe(204);
      expect(res.text).toContain('/api/v1/login');
      expect(() => JSON.parse(res.text)).not.toThrow();
    });

    it('a wrong secret or an unknown client: 401, the same answer, nothing about the client', async () => {
      const bodies: string[] = [];
      for (const [p, body] of [
        ['/login', { app_id: app.clientId, app_secret: 'wrong-secret' }],
        ['/login', { app_id: 'no-such-client', app_secret: app.clientSecret }],
        ['/auth/cloudstack/login', { app_id: app.clientId, app_secret: 'wrong-secret' }],
        ['/auth/cloudstack/login', { app_secret: 'x' }],
      ] as const) {
        const res = await raw(`${base}${p}`, 'POST', { 'content-type': 'application/json' }, JSON.stringify(body));
        expect(res.status, res.text).toBe(401);
        expect(res.text).not.toContain(app.clientId);
        expect(res.text).not.toContain(app.clientSecret);
        expect(res.text).not.toContain('wrong-secret');
        const parsed = JSON.parse(res.text);
        expect(parsed.code).toBe('AUTH.CLIENT_REFUSED');
        bodies.push(parsed.detail);
      }
      expect(new Set(bodies).size).toBe(1);
    });

    it('is never throttled into failure for the right secret (each step logs in about twice)', async () => {
      for (let i = 0; i < 8; i++) {
        const res = await raw(`${base}/login`, 'POST', { 'content-type': 'application/json' }, JSON.stringify({ app_id: app.clientId, app_secret: 'bad' }));
        expect(res.status).toBe(401);
      }
      const c = client('2025-04');
      for (let i = 0; i < 60; i++) await c.login();
      expect(c.calls.filter((x) => x.what === 'POST /login').every((x) => x.status === 200)).toBe(true);
    });

    it('the login body may be ISO-8859-1 with its keys in any order', async () => {
      const body = Buffer.from(`{"app_secret": "${app.clientSecret}", "app_id": "${app.clientId}"}`, 'latin1');
      const res = await raw(`${base}/login`, 'POST', { 'content-type': 'application/json; charset=ISO-8859-1', 'content-length': String(body.length) }, body);
      parseStrict(Schemas.LoginToken, res, 'POST /login');
    });

    it('GET /auth/cloudstack/test: 200 with a valid token, 401 without or with an expired one', async () => {
      const token = await client('2026').login();
      const ok = await raw(`${base}/auth/cloudstack/test`, 'GET', { 'content-type': 'application/json', authorization: `Bearer ${token}` });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.text)).toBeTypeOf('object');
      const none = await raw(`${base}/auth/cloudstack/test`, 'GET', { 'content-type': 'application/json' });
      expect(none.status).toBe(401);
      const expired = await raw(`${base}/auth/cloudstack/test`, 'GET', { 'content-type': 'application/json', authorization: `Bearer ${await expiredToken()}` });
      expect(expired.status).toBe(401);
      expect(JSON.parse(expired.text).code).toBe('AUTH.TOKEN_EXPIRED');
    });
  });

  /** A token like the provider's for the CloudStack client, signed with its own key, expired a minute ago. */
  async function expiredToken(): Promise<string> {
    const jwks = JSON.parse(fs.readFileSync(path.join(t.dataDir, 'idp', 'jwks.json'), 'utf8')) as { keys: JWK[] };
    const kid = decodeProtectedHeader(t.adminToken).kid!;
    const jwk = jwks.keys.find((k) => k.kid === kid)!;
    return new SignJWT({ roles: ['admin'], client_id: app.clientId })
      .setProtectedHeader({ alg: jwk.alg!, kid, typ: 'at+jwt' })
      .setSubject(app.clientId)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3700)
      .setIssuer(t.config.oidc.issuer)
      .setAudience(t.config.oidc.audience)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(await importJWK(jwk, jwk.alg));
  }

  it('an expired token is refused on every v1 call (401), the client logs in again and goes on', async () => {
    const token = await expiredToken();
    for (const [m, p] of [
      ['GET', '/backup_policies'],
      ['GET', `/status/${randomUUID()}`],
      ['POST', `/tasks/singlebackup/${randomUUID()}`],
    ] as const) {
      const res = await raw(`${base}${p}`, m, { 'content-type': 'application/json', 'content-length': '0', authorization: `Bearer ${token}` });
      expect(res.status, `${m} ${p}`).toBe(401);
      expect(JSON.parse(res.text).code).toBe('AUTH.TOKEN_EXPIRED');
    }
    const c = client('2025-04');
    expect(await c.start('GET', '/backup_policies')).toMatch(/^q1\./);
  });

  it('the v1 routes are described in the OpenAPI document', async () => {
    const doc = await t.api('GET', '/api/openapi.json', { token: null });
    expect(doc.status, doc.text).toBe(200);
    const paths = Object.keys(doc.body.paths);
    expect(paths.filter((p) => p.startsWith('/api/v1')), paths.join(' ')).toEqual(expect.arrayContaining(['/api/v1/login', '/api/v1/tasks/singlebackup/{uuid}', '/api/v1/status/{*}']));
    expect(paths.filter((p) => p.includes('//'))).toEqual([]);
  });

  describe('status ids', () => {
    it.each(GENERATIONS)('%s: an unknown task id is a FAILURE with HTTP 200 (the sync pass goes on)', async (g) => {
      const c = client(g);
      for (const id of [randomUUID(), 'not-a-task', 'q1.bm90LWpzb24']) {
        const { res } = await c.pollOnce(id);
        expect(parseStrict(Schemas.Failure, res, `status ${id}`).status).toMatch(/no task/);
      }
    });

    it('accepts /status//status/<id> and a configured URL ending with a slash', async () => {
      const c = client('2024-12');
      const id = await c.start('GET', '/backup_policies');
      const slash = new CloudStackClient(`${base}/`, '2024-12', app.clientId, app.clientSecret);
      for (const p of [`/status//status/${id}`, `/status/${id}`]) {
        const { res } = await slash.pollOnce(id, p);
        expect(res.text).toMatch(/"state":"(SUCCESS|FAILURE)"/);
      }
      await slash.login(); // `/api/v1//auth` and `/api/v1//login`
      expect(slash.calls.filter((x) => x.what.includes('login')).every((x) => x.status === 200)).toBe(true);
    });
  });

  describe('offerings (backup policies)', () => {
    it('no policy yet: FAILURE (HTTP 200) saying to create one, never an empty list', async () => {
      const c = client('2025-04');
      const message = await c.failure(await c.start('GET', '/backup_policies'), 'GET /backup_policies');
      expect(message).toMatch(/no backup policy/);
    });

    it.each(GENERATIONS)('%s: every policy, each exactly a BackROLL policy', async (g) => {
      await ensureInfrastructure();
      const c = client(g);
      const info = await c.success(await c.start('GET', '/backup_policies'), Type.Array(Schemas.Policy, { minItems: 1 }), 'GET /backup_policies');
      const p = info.find((x: { id: string }) => x.id === infra.policyId);
      expect(p).toEqual({
        id: infra.policyId,
        name: 'cs-daily',
        description: 'CloudStack offering',
        schedule: '0 2 * * *',
        storage: infra.storageId,
        externalhook: '',
        retention_day: 7,
        retention_week: 4,
        retention_month: 6,
        retention_year: 1,
        enabled: true,
      });
    });
  });

  const infra = { storageId: '', policyId: '', hostId: '', vmId: '', vmUuid: '', vmName: '' };
  /** A storage, a policy, a pool, a host nobody listens at, and a CloudStack VM on it. */
  async function ensureInfrastructure(): Promise<void> {
    if (infra.vmId) return;
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 'cs', path: storageDir } });
    expect(st.status, st.text).toBe(201);
    const pol = await t.api('POST', '/api/v2/policies', {
      body: { name: 'cs-daily', description: 'CloudStack offering', schedule: '0 2 * * *', retention: { daily: 7, weekly: 4, monthly: 6, yearly: 1 }, storageId: st.body.id },
    });
    expect(pol.status, pol.text).toBe(201);
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'cs', policyId: pol.body.id } });
    expect(pool.status, pool.text).toBe(201);
    const host = await t.api('POST', '/api/v2/hosts', {
      body: { name: 'cs-host', address: '127.0.0.1', sshPort: await closedPort(), username: 'nobody', poolId: pool.body.id, libvirtUri: 'qemu:///system' },
    });
    expect(host.status, host.text).toBe(201);
    await t.server.db.updateTable('hosts').set({ connection_state: 'connected' }).where('id', '=', host.body.id).execute();
    const vmId = randomUUID();
    const vmUuid = randomUUID();
    const vmName = `i-2-${Math.floor(Math.random() * 1e6)}-VM`;
    const now = new Date().toISOString();
    const disks = JSON.stringify([
      { target: 'vda', path: '/var/lib/libvirt/images/root-disk.qcow2', format: 'qcow2' },
      { target: 'vdb', path: '/var/lib/libvirt/images/data-disk.qcow2', format: 'qcow2' },
    ]);
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: host.body.id, uuid: vmUuid, name: vmName, state: 'shut off', vcpus: 1, memory_bytes: 64 << 20, disks, cloudstack_managed: 1, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    Object.assign(infra, { storageId: st.body.id, policyId: pol.body.id, hostId: host.body.id, vmId, vmUuid, vmName });
  }

  describe('unknown VMs', () => {
    it.each(GENERATIONS)('%s: listing the backups of a VM Backroll does not know is SUCCESS with no archive', async (g) => {
      const c = client(g);
      for (const uuid of [randomUUID(), 'i-2-34-VM']) {
        const info = await c.success(await c.start('GET', `/virtualmachines/${uuid}/backups`), BackupListInfo, 'GET backups');
        expect(info.archives).toEqual([]);
      }
    });

    it('starting a backup, a restore or a delete of an unknown VM fails at once (404, problem+json)', async () => {
      const token = await client('2025-04').login();
      const h = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
      const uuid = randomUUID();
      const backup = await raw(`${base}/tasks/singlebackup/${uuid}`, 'POST', { ...h, 'content-length': '0' });
      expect(backup.status, backup.text).toBe(404);
      expect(JSON.parse(backup.text).code).toBe('VM.NOT_FOUND');
      const body = JSON.stringify({ virtual_machine_id: uuid, backup_name: 'vda_x_1700000000', storage: '', mode: 'single' });
      const restore = await raw(`${base}/tasks/restore/${uuid}`, 'POST', { ...h, 'content-length': String(body.length) }, body);
      expect(restore.status).toBe(404);
      const del = await raw(`${base}/virtualmachines/${uuid}/backups/vda_x_1700000000`, 'DELETE', h);
      expect(del.status).toBe(404);
    });
  });

  it('empty JSON bodies (Content-type: application/json, no body) are accepted on GET, DELETE and POST', async () => {
    const token = await client('2025-04').login();
    const h = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    for (const [m, p, expected] of [
      ['GET', '/backup_policies', 202],
      ['GET', `/virtualmachines/${randomUUID()}/backups`, 202],
      ['DELETE', `/virtualmachines/${randomUUID()}/backups/vda_x_1700000000`, 404],
      ['POST', `/tasks/singlebackup/${randomUUID()}`, 404],
      ['GET', '/auth/cloudstack/test', 200],
    ] as const) {
      for (const headers of [h, { ...h, 'content-length': '0' }]) {
        const res = await raw(`${base}${p}`, m, headers);
        expect(res.status, `${m} ${p} ${JSON.stringify(headers)}: ${res.text}`).toBe(expected);
        expect(res.text).not.toContain('FST_ERR_CTP_EMPTY_JSON_BODY');
      }
    }
  });

  describe('a CloudStack VM whose host cannot be reached', () => {
    it.each(GENERATIONS)('%s: singlebackup → Location → poll → FAILURE with HTTP 200 and the reason', async (g) => {
      await ensureInfrastructure();
      const c = client(g);
      const message = await c.failure(await c.start('POST', `/tasks/singlebackup/${infra.vmUuid}`), 'POST singlebackup');
      expect(message.length).toBeGreaterThan(0);
      const task = await t.api('GET', `/api/v2/tasks?kind=vm.backup&limit=1`);
      expect(task.body.items[0].startedBy).toBe(`client:${app.clientId}`);
    });

    it('a backup interrupted (worker crash) and retried by Backroll: the poll of the first id follows the retry', async () => {
      await ensureInfrastructure();
      const c = client('2025-04');
      const id = await c.start('POST', `/tasks/singlebackup/${infra.vmUuid}`);
      await c.failure(id, 'first run');
      // As the job system leaves it after a crash: interrupted, then retried as a new task.
      await t.server.db.updateTable('tasks').set({ state: 'interrupted', error_code: null, error_message: null }).where('id', '=', id).execute();
      expect((await c.pollOnce(id)).body).toEqual({ state: 'FAILURE', current: 1, total: 1, status: 'the task ended interrupted' });
      const retry = await t.api('POST', `/api/v2/tasks/${id}/retry`);
      expect(retry.status, retry.text).toBe(201);
      expect(await c.failure(id, 'followed to the retry')).not.toBe('the task ended interrupted');
      // The retry succeeded (as on a reachable host): the first id answers with the backup's name.
      const result = JSON.stringify({ archives: ['config_1764000000', 'vdb_data-disk_1764000000', 'vda_root-disk_1764000000'] });
      await t.server.db.updateTable('tasks').set({ state: 'succeeded', result, error_code: null, error_message: null }).where('id', '=', retry.body.id).execute();
      expect(await c.success(id, Type.String(), 'status of the first id')).toBe('vda_root-disk_1764000000');
    });
  });

  describe.skipIf(!HAVE_BORG)(`a repository written by BackROLL and Backroll${HAVE_BORG ? '' : ' (SKIPPED: borg is not installed)'}`, () => {
    const E1 = 1_730_000_000; // BackROLL: one archive per disk, no config archive
    const E2 = 1_731_111_111; // Backroll's layout: disks + config_
    let repo: string;

    beforeAll(async () => {
      await ensureInfrastructure();
      repo = path.join(storageDir, infra.vmName);
      const env = { ...process.env, BORG_BASE_DIR: borgHome, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' };
      const borg = (...args: string[]) => {
        const r = spawnSync('borg', args, { env, encoding: 'utf8', cwd: borgHome });
        if (r.status !== 0) throw new Error(`borg ${args[0]}: ${r.stderr}`);
      };
      borg('init', '--encryption=none', repo);
      for (const f of ['root-disk.qcow2', 'data-disk.qcow2', 'domain.xml', 'backroll.json']) fs.writeFileSync(path.join(borgHome, f), `${f}\n`.repeat(1000));
      for (const e of [E1, E2]) {
        const ts = new Date(e * 1000).toISOString().slice(0, 19);
        borg('create', '--timestamp', ts, `${repo}::vda_root-disk_${e}`, 'root-disk.qcow2');
        borg('create', '--timestamp', ts, `${repo}::vdb_data-disk_${e}`, 'data-disk.qcow2');
      }
      borg('create', `${repo}::config_${E2}`, 'domain.xml', 'backroll.json');
    });

    it.each(GENERATIONS)('%s: one backup per restore point, no config_ archive, without a manual reconcile', async (g) => {
      const c = client(g);
      const info = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups`), BackupListInfo, 'GET backups');
      expect(info.archives.map((a: { name: string }) => a.name)).toEqual([`vda_root-disk_${E2}`, `vda_root-disk_${E1}`]);
      expect(info.archives[1]).toMatchObject({ archive: `vda_root-disk_${E1}`, barchive: `vda_root-disk_${E1}`, start: '2024-10-27T03:33:20.000000', time: '2024-10-27T03:33:20.000000' });
      expect(info.repository.location).toBe(repo);
      expect(info.repository.id).toMatch(/^[0-9a-f]{64}$/);
      expect(info.encryption.mode).toBe('none');
    });

    it('archive stats: integers of the whole restore point, by any of its archive names', async () => {
      const c = client('2025-04');
      const byVda = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups/vda_root-disk_${E1}`), Schemas.Stats, 'GET stats');
      const byVdb = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups/vdb_data-disk_${E1}`), Schemas.Stats, 'GET stats');
      expect(byVdb).toEqual(byVda);
      expect(byVda.nfiles).toBe(2);
      expect(byVda.original_size).toBe(2 * 1000 * 'root-disk.qcow2\n'.length);
      const e2 = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups/vda_root-disk_${E2}`), Schemas.Stats, 'GET stats');
      expect(e2.nfiles).toBe(4);
      const missing = await c.failure(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups/config_1`), 'GET stats of an unknown name');
      expect(missing).toMatch(/no backup named config_1/);
    });

    it('2024-12: the repository is borg info --json', async () => {
      const c = client('2024-12');
      const info = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/repository`), RepositoryInfo, 'GET repository');
      expect(info.repository.location).toBe(repo);
      expect(info.cache.stats.total_chunks).toBeGreaterThan(0);
      expect(info.encryption.mode).toBe('none');
    });

    it('restore resolves a per-disk BackROLL name to its restore point (the task then fails: host unreachable)', async () => {
      const c = client('2025-04');
      const id = await c.start('POST', `/tasks/restore/${infra.vmUuid}`, { virtual_machine_id: infra.vmUuid, backup_name: `vdb_data-disk_${E1}`, storage: '', mode: 'single' });
      const task = await t.api('GET', `/api/v2/tasks/${id}`);
      expect(task.body).toMatchObject({ kind: 'vm.restore', payload: { vmId: infra.vmId, mode: 'in-place' } });
      const rp = await t.api('GET', `/api/v2/virtual-machines/${infra.vmId}/restore-points/${task.body.payload.restorePointId}`);
      expect(rp.body.epoch).toBe(E1);
      expect(await c.failure(id, 'restore')).not.toBe('');
    });

    it.each(['2025-04', '2026'] as const)('%s: delete → SUCCESS with info null; the restore point is gone from the list', async (g) => {
      const c = client(g);
      const epoch = g === '2025-04' ? E1 : E2;
      const info = await c.success(await c.start('DELETE', `/virtualmachines/${infra.vmUuid}/backups/vda_root-disk_${epoch}`), Type.Null(), 'DELETE backup');
      expect(info).toBeNull();
      const list = await c.success(await c.start('GET', `/virtualmachines/${infra.vmUuid}/backups`), BackupListInfo, 'GET backups');
      expect(list.archives.map((a: { name: string }) => a.name)).not.toContain(`vda_root-disk_${epoch}`);
    });
  });
});

describe('/api/v1 login with an external issuer (BACKROLL_OIDC_ISSUER)', () => {
  // The issuer is another Backroll's bundled provider: a real OpenID issuer on loopback.
  let issuer: TestServer;
  let t: TestServer;
  let app: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    issuer = await startTestServer('sqlite');
    app = createMachineClient(issuer.dataDir, issuer.server.secretBox, 'cloudstack', 'admin');
    t = await startTestServer('sqlite', { BACKROLL_OIDC_ISSUER: issuer.config.oidc.issuer });
  });
  afterAll(async () => {
    await t?.close();
    await issuer?.close();
  });

  it.each(GENERATIONS)('%s: the app name and password are exchanged at the issuer; its token opens /api/v1', async (g) => {
    const c = new CloudStackClient(`${t.url}/api/v1`, g, app.clientId, app.clientSecret);
    const message = await c.failure(await c.start('GET', '/backup_policies'), 'GET /backup_policies');
    expect(message).toMatch(/no backup policy/);
  });

  it('a wrong secret is refused with 401 AUTH.CLIENT_REFUSED', async () => {
    const res = await raw(`${t.url}/api/v1/login`, 'POST', { 'content-type': 'application/json' }, JSON.stringify({ app_id: app.clientId, app_secret: 'nope' }));
    expect(res.status, res.text).toBe(401);
    expect(JSON.parse(res.text).code).toBe('AUTH.CLIENT_REFUSED');
  });
});
