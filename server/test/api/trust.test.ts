/**
 * Endpoints that were missing or unsafe, against a real server (SQLite, embedded jobs, the
 * bundled provider): the pool backup endpoint, reconcile as an admin POST under the VM lock,
 * task event streams bounded per caller and in total and ended with their token, and
 * BACKROLL_TRUST_PROXY deciding whose X-Forwarded-* headers count.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMachineClient } from '../../src/idp/index.js';
import { SSE_MAX_PER_CALLER, SSE_MAX_TOTAL } from '../../src/tasks/sse-limits.js';
import { Probe, registerTestHandlers } from '../support/test-handlers.js';
import { clientCredentialsToken, startTestServer, type TestServer } from '../support/server.js';

/** An open event stream: its status, what it received so far, and whether it ended. */
interface Stream {
  status: number;
  contentType: string;
  text: () => string;
  ended: Promise<void>;
  isEnded: () => boolean;
  close: () => void;
}

async function openStream(url: string, token: string): Promise<Stream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: ac.signal });
  let text = '';
  let ended = false;
  const done = (async () => {
    try {
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done: d } = await reader.read();
        if (d) break;
        text += dec.decode(value, { stream: true });
      }
    } catch {
      // aborted by close()
    } finally {
      ended = true;
    }
  })();
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: () => text, ended: done, isEnded: () => ended, close: () => ac.abort() };
}

describe('missing and unsafe endpoints', () => {
  let t: TestServer;
  const probe = new Probe();
  let vmId: string;
  let poolId: string;
  let issuerKey: { key: Awaited<ReturnType<typeof importJWK>>; kid: string; alg: string };

  beforeAll(async () => {
    t = await startTestServer('sqlite', {}, { handlers: (tasks) => registerTestHandlers(tasks, probe) });
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 's', path: t.dataDir } });
    expect(st.status, st.text).toBe(201);
    const pol = await t.api('POST', '/api/v2/policies', { body: { name: 'p', schedule: '0 3 * * *', retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId: st.body.id, enabled: false } });
    expect(pol.status, pol.text).toBe(201);
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'empty', policyId: pol.body.id } });
    poolId = pool.body.id;
    const other = await t.api('POST', '/api/v2/pools', { body: { name: 'with-host', policyId: pol.body.id } });
    const host = await t.api('POST', '/api/v2/hosts', { body: { name: 'h1', address: '192.0.2.1', sshPort: 22, username: 'root', poolId: other.body.id, libvirtUri: 'qemu:///system' } });
    expect(host.status, host.text).toBe(201);
    vmId = randomUUID();
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: host.body.id, uuid: randomUUID(), name: 'vm1', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    const jwks = JSON.parse(fs.readFileSync(path.join(t.dataDir, 'idp', 'jwks.json'), 'utf8')) as { keys: JWK[] };
    const kid = decodeProtectedHeader(t.adminToken).kid!;
    const jwk = jwks.keys.find((k) => k.kid === kid)!;
    issuerKey = { key: await importJWK(jwk, jwk.alg), kid, alg: jwk.alg! };
  });
  afterAll(async () => t?.close());

  it('POST /pools/{id}/backup: 202 with the parent pool.backup task; 404 for an unknown pool; 403 for a viewer', async () => {
    const res = await t.api('POST', `/api/v2/pools/${poolId}/backup`, { body: {} });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ kind: 'pool.backup', target: { type: 'pool', id: poolId }, payload: { poolId }, parentId: null, startedBy: expect.stringMatching(/^client:/) });
    const done = await t.server.services.tasks.waitFor(res.body.id, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result).toMatchObject({ vms: 0 }); // no host in this pool: nothing to back up

    const unknown = await t.api('POST', `/api/v2/pools/${randomUUID()}/backup`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(unknown.body.code).toBe('POOL.NOT_FOUND');
    expect((await t.api('POST', `/api/v2/pools/${poolId}/backup`, { token: t.viewerToken })).status).toBe(403);
  });

  it('reconcile is an admin POST taken under the VM lock; a GET only reads', async () => {
    const get = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points?reconcile=true`, { token: t.viewerToken });
    expect(get.status).toBe(400);
    expect((await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`, { token: t.viewerToken })).status).toBe(200);
    expect((await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`, { token: t.viewerToken })).status).toBe(403);
    // While another operation (a backup) holds the VM's lock, reconcile waits its turn: 409.
    const locks = t.server.services.backupModule.locks;
    let inside: Awaited<ReturnType<typeof t.api>> | undefined;
    await locks.withVmLock(vmId, 'task:a-running-backup', async () => {
      inside = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`);
    }, { purpose: 'backup' });
    expect(inside!.status, inside!.text).toBe(409);
    expect(inside!.body.code).toBe('VM.LOCKED');
    // Free: no repository yet, nothing to add; the lock is released afterwards.
    const ok = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toEqual({ added: 0, removed: 0, updated: 0, items: [] });
    expect(await locks.holder(vmId)).toBeUndefined();
  });

  it(`caps task event streams at ${SSE_MAX_PER_CALLER} per caller (429) and ${SSE_MAX_TOTAL} in total (503), as problem+json`, async () => {
    const task = await t.api('POST', '/api/v2/tasks', { body: { kind: 'test.wait', payload: { gate: 'sse-caps' } } });
    expect(task.status, task.text).toBe(201);
    const url = `${t.url}/api/v2/tasks/${task.body.id}/events`;
    const open: Stream[] = [];
    try {
      for (let i = 0; i < SSE_MAX_PER_CALLER; i++) open.push(await openStream(url, t.viewerToken));
      expect(open.map((s) => s.status)).toEqual(Array(SSE_MAX_PER_CALLER).fill(200));
      const tooMany = await t.api('GET', `/api/v2/tasks/${task.body.id}/events`, { token: t.viewerToken });
      expect(tooMany.status).toBe(429);
      expect(tooMany.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(tooMany.body.code).toBe('TASK.TOO_MANY_STREAMS');
      // A closed stream gives its slot back.
      open.pop()!.close();
      let again = await openStream(url, t.viewerToken);
      for (let i = 0; i < 20 && again.status === 429; i++) {
        await new Promise((r) => setTimeout(r, 100));
        again = await openStream(url, t.viewerToken);
      }
      expect(again.status).toBe(200);
      open.push(again);

      // Other callers fill the server up to its total.
      const callers = Math.ceil(SSE_MAX_TOTAL / SSE_MAX_PER_CALLER);
      const tokens: string[] = [];
      for (let c = 0; c < callers; c++) {
        const mc = createMachineClient(t.dataDir, t.server.secretBox, `sse-${c}`, 'viewer');
        tokens.push(await clientCredentialsToken(t.config.oidc.issuer, mc.clientId, mc.clientSecret));
      }
      for (let c = 0; open.length < SSE_MAX_TOTAL; c++) {
        const batch = Math.min(SSE_MAX_PER_CALLER, SSE_MAX_TOTAL - open.length);
        const streams = await Promise.all(Array.from({ length: batch }, () => openStream(url, tokens[c]!)));
        expect(streams.map((s) => s.status)).toEqual(Array(batch).fill(200));
        open.push(...streams);
      }
      const full = await t.api('GET', `/api/v2/tasks/${task.body.id}/events`, { token: t.adminToken });
      expect(full.status).toBe(503);
      expect(full.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(full.body.code).toBe('TASK.STREAMS_EXHAUSTED');
    } finally {
      for (const s of open) s.close();
      probe.open('sse-caps');
    }
  }, 60_000);

  it('ends a task event stream when the token that opened it expires', async () => {
    const task = await t.api('POST', '/api/v2/tasks', { body: { kind: 'test.wait', payload: { gate: 'sse-expiry' } } });
    const exp = Math.floor(Date.now() / 1000) + 3;
    const shortLived = await new SignJWT({ roles: ['viewer'] })
      .setProtectedHeader({ alg: issuerKey.alg, kid: issuerKey.kid, typ: 'at+jwt' })
      .setSubject('short-lived-user')
      .setIssuedAt()
      .setIssuer(t.config.oidc.issuer)
      .setAudience(t.config.oidc.audience)
      .setExpirationTime(exp)
      .sign(issuerKey.key);
    const s = await openStream(`${t.url}/api/v2/tasks/${task.body.id}/events`, shortLived);
    try {
      expect(s.status).toBe(200);
      expect(s.contentType).toMatch(/^text\/event-stream/);
      const deadline = exp * 1000 + 3000;
      while (!s.isEnded() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(s.isEnded(), 'the stream is still open after its token expired').toBe(true);
      expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
      expect(s.text()).toContain('event: expired');
      expect(s.text()).toContain('AUTH.TOKEN_EXPIRED');
      // The task itself goes on.
      expect((await t.api('GET', `/api/v2/tasks/${task.body.id}`)).body.state).toMatch(/^(queued|running)$/);
    } finally {
      s.close();
      probe.open('sse-expiry');
    }
  }, 20_000);
});

describe('BACKROLL_TRUST_PROXY', () => {
  let off: TestServer;
  let on: TestServer;
  beforeAll(async () => {
    [off, on] = await Promise.all([startTestServer('sqlite'), startTestServer('sqlite', { BACKROLL_TRUST_PROXY: '127.0.0.1' })]);
  });
  afterAll(async () => Promise.all([off?.close(), on?.close()]));

  const authorize = async (t: TestServer) => {
    const q = new URLSearchParams({
      client_id: 'backroll-web',
      response_type: 'code',
      redirect_uri: t.config.oidc.webRedirectUris[0]!,
      scope: 'openid api',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    });
    return fetch(`${t.config.oidc.issuer}/auth?${q}`, { redirect: 'manual', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' } });
  };

  it('off (the default): X-Forwarded-Proto from a client does not make the sign-in cookies Secure', async () => {
    expect(off.config.trustProxy).toBe(false);
    const res = await authorize(off);
    expect(res.status).toBe(303);
    expect(res.headers.getSetCookie().length).toBeGreaterThan(0);
    for (const c of res.headers.getSetCookie()) expect(c.toLowerCase()).not.toContain('; secure');
    expect(res.headers.get('location')).toMatch(new RegExp(`^(/oidc/|${off.url}/oidc/)`));
  });

  it('on: the trusted proxy\'s X-Forwarded-Proto makes them Secure; URLs keep the public host', async () => {
    const res = await authorize(on);
    expect(res.status).toBe(303);
    expect(res.headers.getSetCookie().length).toBeGreaterThan(0);
    for (const c of res.headers.getSetCookie()) expect(c.toLowerCase()).toContain('; secure');
    expect(res.headers.get('location') ?? '').not.toContain('evil.example');
    const doc = (await (await fetch(`${on.config.oidc.issuer}/.well-known/openid-configuration`, { headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })).json()) as { issuer: string };
    expect(JSON.stringify(doc)).not.toContain('evil.example');
    expect(doc.issuer).toBe(on.config.oidc.issuer);
  });
});
