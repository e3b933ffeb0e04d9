import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unavailableReason } from '../support/databases.js';
import { dropPrefix, REDIS_URL, redisUnavailableReason, uniquePrefix } from '../support/redis.js';
import { startTestServer, type TestServer } from '../support/server.js';

const reason = (await redisUnavailableReason()) ?? (await unavailableReason('postgres'));

/** Bull Board at /admin/queues (distributed mode): admins only, by bearer token or a short browser session. */
describe.skipIf(reason !== null)(`queue dashboard${reason ? ` (skipped: ${reason})` : ''}`, () => {
  const prefix = uniquePrefix();
  let t: TestServer;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${t.url}${path}`, { headers, redirect: 'manual' });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    t = await startTestServer('postgres', { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: prefix });
  });
  afterAll(async () => {
    await t?.close();
    await dropPrefix(prefix);
  });

  it('reports the queue in the health check', async () => {
    expect((await t.api('GET', '/api/health', { token: null })).body).toMatchObject({ status: 'ok', checks: { database: 'ok', queue: 'ok' } });
  });

  it('serves the board and its API to admins with a bearer token only', async () => {
    expect((await get('/admin/queues/')).status).toBe(401);
    expect((await get('/admin/queues/api/queues')).status).toBe(401);
    const viewer = await get('/admin/queues/api/queues', bearer(t.viewerToken));
    expect(viewer.status).toBe(403);
    expect(((await viewer.json()) as { code: string }).code).toBe('AUTH.ADMIN_REQUIRED');

    const page = await get('/admin/queues/', bearer(t.adminToken));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    const script = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await get(`/admin/queues/${script}`, bearer(t.adminToken))).status).toBe(200);

    const queues = await get('/admin/queues/api/queues', bearer(t.adminToken));
    expect(queues.status).toBe(200);
    const body = (await queues.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['schedules', 'tasks']);
    expect(body.queues.every((q) => q.readOnlyMode)).toBe(true);
  });

  it('opens a 15-minute browser session through a cookie or a one-time ticket', async () => {
    expect((await t.api('POST', '/api/v2/admin/queues/session', { token: t.viewerToken })).status).toBe(403);
    const res = await t.api('POST', '/api/v2/admin/queues/session');
    expect(res.status, res.text).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^backroll_board=[^;]+; Path=\/admin\/queues; Max-Age=900; HttpOnly; SameSite=Strict$/);
    const value = cookie.split(';')[0]!;
    expect((await get('/admin/queues/api/queues', { cookie: value })).status).toBe(200);
    // The cookie is no token for the rest of the API, and a tampered one is refused.
    expect((await get('/api/v2/tasks', { cookie: value })).status).toBe(401);
    for (const sneaky of ['/admin/queues/../api/v2/tasks', '/admin/queues/%2e%2e/api/v2/tasks', '/admin/queues/..%2fapi/v2/tasks', '/admin/queuesX/../api/v2/tasks']) {
      const r = await get(sneaky, { cookie: value });
      expect([401, 404], sneaky).toContain(r.status);
      // Also sent verbatim (fetch normalises dot segments; a raw client need not).
      const raw = await new Promise<number>((resolve, reject) => {
        const u = new URL(t.url);
        http.get({ host: u.hostname, port: u.port, path: sneaky, headers: { cookie: value } }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject);
      });
      expect([400, 401, 403, 404], `${sneaky} (raw)`).toContain(raw);
    }
    const tampered = value.slice(0, -6) + (value.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA');
    expect((await get('/admin/queues/api/queues', { cookie: tampered })).status).toBe(401);

    expect(res.body.ticketUrl).toMatch(/^\/admin\/queues\/login\?ticket=/);
    const login = await get(res.body.ticketUrl);
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/queues/');
    const fromTicket = login.headers.get('set-cookie')!.split(';')[0]!;
    expect((await get('/admin/queues/', { cookie: fromTicket })).status).toBe(200);
    // One use only.
    expect((await get(res.body.ticketUrl)).status).toBe(401);
  });
});

describe('queue dashboard in embedded mode', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => t?.close());

  it('is not mounted', async () => {
    expect((await t.api('GET', '/api/health', { token: null })).body.checks).toMatchObject({ database: 'ok', queue: 'embedded' });
    expect((await t.api('GET', '/admin/queues/')).status).toBe(404);
    expect((await t.api('POST', '/api/v2/admin/queues/session')).status).toBe(404);
  });
});
