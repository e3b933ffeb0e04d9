/**
 * The web console's files served by the api role at `/`: index.html for every app route
 * (history mode), long-cached hashed assets, a CSP without inline scripts, nothing outside the
 * directory, API paths still problems; and a hint page when the console is not built.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a1b.js"></script></head><body><div id="app"></div></body></html>';

describe('web console served at /', () => {
  let t: TestServer;
  let empty: TestServer;
  let web: string;
  let outside: string;

  beforeAll(async () => {
    web = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-web-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-secret-'));
    fs.writeFileSync(path.join(web, 'index.html'), INDEX);
    fs.mkdirSync(path.join(web, 'assets'));
    fs.writeFileSync(path.join(web, 'assets', 'app-3f2a1b.js'), 'console.log("app")\n');
    fs.writeFileSync(path.join(web, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(web, 'leak.txt'));
    t = await startTestServer('sqlite', { BACKROLL_WEB_DIR: web });
    empty = await startTestServer('sqlite', { BACKROLL_WEB_DIR: path.join(web, 'no-such-dir') });
  });
  afterAll(async () => {
    await t?.close();
    await empty?.close();
    fs.rmSync(web, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  const get = (base: string, p: string) => fetch(`${base}${p}`, { redirect: 'manual' });

  it('serves index.html at / and for app routes, never cached, with a strict CSP', async () => {
    for (const p of ['/', '/virtual-machines/2b7c1f7e-0000-4000-8000-000000000001', '/ui/callback?code=x&state=y', '/tasks']) {
      const res = await get(t.url, p);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      const csp = res.headers.get('content-security-policy')!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self' 'unsafe-inline'");
      expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(await res.text()).toBe(INDEX);
    }
  });

  it('serves hashed assets for a year and other files without cache', async () => {
    const js = await get(t.url, '/assets/app-3f2a1b.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await js.text()).toBe('console.log("app")\n');
    const icon = await get(t.url, '/favicon.svg');
    expect([icon.status, icon.headers.get('content-type'), icon.headers.get('cache-control')]).toEqual([200, 'image/svg+xml', 'no-cache']);
    expect((await get(t.url, '/assets/app-old.js')).status).toBe(404);
  });

  it('never serves a file outside the directory', async () => {
    for (const p of ['/leak.txt', '/../secret.txt', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2fleak.txt']) {
      const res = await get(t.url, p);
      const text = await res.text();
      expect(text, p).not.toContain('top secret');
      expect(text, p).not.toContain('root:');
    }
  });

  it('keeps the API, the provider and its own problems apart; the API still needs a token', async () => {
    const api = await get(t.url, '/api/v2/nope');
    expect(api.status).toBe(401);
    const authed = await fetch(`${t.url}/api/v2/nope`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(authed.status).toBe(404);
    expect(authed.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await authed.json()) as { code: string }).code).toBe('ROUTE.NOT_FOUND');
    expect((await get(t.url, '/api/v2/dashboard')).status).toBe(401);
    const discovery = await get(t.url, '/oidc/.well-known/openid-configuration');
    expect(discovery.status).toBe(200);
    expect(((await discovery.json()) as { issuer: string }).issuer).toBe(t.config.oidc.issuer);
    expect((await get(t.url, '/api/health')).status).toBe(200);
  });

  it('without a built console, / says how to build it', async () => {
    const res = await get(empty.url, '/');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('npm run build');
    expect((await get(empty.url, '/pools')).status).toBe(200);
  });
});
