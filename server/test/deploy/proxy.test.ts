/**
 * deploy/proxy: the reverse-proxy examples.
 *   - nginx.conf passes `nginx -t` (Debian's nginx), included in a minimal main config in a
 *     temporary prefix, with a throw-away certificate in place of the Let's Encrypt paths;
 *   - Caddyfile passes `caddy validate` (Debian's caddy) and is formatted as `caddy fmt` wants;
 *   - nginx.conf for real: nginx runs it (ports and certificate swapped for test ones) in front
 *     of a real Backroll server with BACKROLL_TRUST_PROXY; over HTTPS the health check answers,
 *     plain http redirects to https, and a task's Server-Sent Events arrive through the proxy
 *     while the task still runs (nothing buffered until the stream ends);
 *   - the Caddyfile for real too (its own CA instead of ACME, test ports): HTTPS, and the
 *     events streamed uncompressed while the task runs.
 * CI installs nginx-light and caddy (scripts/ci/services.sh): their absence fails, never skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { startTestServer, type TestServer } from '../support/server.js';

const PROXY = path.resolve(import.meta.dirname, '../../../deploy/proxy');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
const CADDY = ['/usr/bin/caddy', '/usr/local/bin/caddy'].find((p) => fs.existsSync(p));

/** A self-signed certificate for 127.0.0.1 (one day). */
function certificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { cert, key };
}

/** The example, with test ports, upstream and certificate; everything else as shipped. */
function siteConfig(o: { cert: string; key: string; http?: number; https?: number; upstream?: number }): string {
  let s = fs.readFileSync(path.join(PROXY, 'nginx.conf'), 'utf8');
  s = s.replace('/etc/letsencrypt/live/backroll.example.com/fullchain.pem', o.cert).replace('/etc/letsencrypt/live/backroll.example.com/privkey.pem', o.key);
  if (o.http) s = s.replace('listen 80;', `listen 127.0.0.1:${o.http};`).replace('listen [::]:80;', '');
  if (o.https) s = s.replace('listen 443 ssl http2;', `listen 127.0.0.1:${o.https} ssl http2;`).replace('listen [::]:443 ssl http2;', '');
  if (o.upstream) s = s.replace('server 127.0.0.1:5050;', `server 127.0.0.1:${o.upstream};`);
  return s;
}

/** A main config in its own prefix that includes the site (what /etc/nginx/nginx.conf does). */
function mainConfig(prefix: string, site: string): string {
  fs.writeFileSync(path.join(prefix, 'site.conf'), site);
  for (const d of ['body', 'proxy']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `pid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log warn;\nworker_processes 1;\nevents { worker_connections 64; }\n` +
      `http {\n  access_log off;\n  client_body_temp_path ${prefix}/body;\n  proxy_temp_path ${prefix}/proxy;\n  include ${prefix}/site.conf;\n}\n`,
  );
  return conf;
}

const nginxTest = (prefix: string, conf: string) => spawnSync(NGINX!, ['-t', '-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', conf], { encoding: 'utf8' });

function get(url: string, ca?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { ca, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

describe('reverse-proxy examples (deploy/proxy)', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-proxy-'));
    dirs.push(d);
    return d;
  };
  beforeAll(() => {
    expect(NGINX, "nginx (Debian's nginx-light)").toBeDefined();
    expect(CADDY, "caddy (Debian's caddy)").toBeDefined();
  });
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('nginx.conf passes nginx -t; a broken copy does not (the check can fail)', () => {
    const prefix = tmp();
    const conf = mainConfig(prefix, siteConfig(certificate(prefix)));
    const ok = nginxTest(prefix, conf);
    expect(`${ok.status} ${ok.stderr}`).toMatch(/^0 .*syntax is ok.*test is successful/s);
    expect(ok.stderr).not.toMatch(/\[warn\]|\[emerg\]/);
    const badPrefix = tmp();
    const bad = nginxTest(badPrefix, mainConfig(badPrefix, siteConfig(certificate(badPrefix)).replace('proxy_buffering off;', 'proxy_bufering off;')));
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown directive "proxy_bufering"/);
  });

  it('nginx.conf streams events without buffering, reads long, forwards X-Forwarded-*', () => {
    const s = fs.readFileSync(path.join(PROXY, 'nginx.conf'), 'utf8');
    const events = /location ~ \^\/api\/v2\/\(events\|tasks\/\[\^\/\]\+\/events\)\$ \{([^}]*)\}/.exec(s)?.[1] ?? '';
    expect(events).toMatch(/proxy_buffering off;/);
    expect(events).toMatch(/proxy_read_timeout 24h;/);
    expect(events).toMatch(/gzip off;/);
    for (const h of ['X-Forwarded-For $proxy_add_x_forwarded_for', 'X-Forwarded-Proto $scheme', 'X-Forwarded-Host $host']) expect(s).toContain(`proxy_set_header ${h};`);
    for (const v of ['BACKROLL_TRUST_PROXY=', 'BACKROLL_PUBLIC_URL=https://']) expect(s).toContain(v);
  });

  it('Caddyfile passes caddy validate and caddy fmt; a broken copy does not', () => {
    const home = tmp();
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home };
    const ok = spawnSync(CADDY!, ['validate', '--adapter', 'caddyfile', '--config', path.join(PROXY, 'Caddyfile')], { encoding: 'utf8', env });
    expect(`${ok.status} ${ok.stdout}${ok.stderr}`).toMatch(/^0 .*Valid configuration/s);
    const fmt = spawnSync(CADDY!, ['fmt', path.join(PROXY, 'Caddyfile')], { encoding: 'utf8', env });
    expect(fmt.stdout).toBe(fs.readFileSync(path.join(PROXY, 'Caddyfile'), 'utf8'));
    const broken = path.join(home, 'Caddyfile');
    fs.writeFileSync(broken, fs.readFileSync(path.join(PROXY, 'Caddyfile'), 'utf8').replace('flush_interval -1', 'flush_intervall -1'));
    const bad = spawnSync(CADDY!, ['validate', '--adapter', 'caddyfile', '--config', broken], { encoding: 'utf8', env });
    expect(bad.status).not.toBe(0);
    const s = fs.readFileSync(path.join(PROXY, 'Caddyfile'), 'utf8');
    expect(s).toMatch(/@events path_regexp events \^\/api\/v2\/\(events\|tasks\/\[\^\/\]\+\/events\)\$\n\s*handle @events \{\n\s*reverse_proxy 127\.0\.0\.1:5050 \{\n\s*flush_interval -1/);
  });

  describe('nginx in front of a real Backroll', () => {
    let t: TestServer;
    let nginx: ChildProcess | undefined;
    let ca: string;
    let httpsPort: number;
    let httpPort: number;
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));

    beforeAll(async () => {
      t = await startTestServer('sqlite', { BACKROLL_TRUST_PROXY: '127.0.0.1' }, {
        handlers: (tasks) =>
          tasks.registerHandler('test.proxy-stream', async (_p, ctx) => {
            await ctx.log('info', 'first line, while the task runs');
            await released;
            await ctx.log('info', 'last line');
            return { ok: true };
          }),
      });
      const prefix = tmp();
      const c = certificate(prefix);
      ca = fs.readFileSync(c.cert, 'utf8');
      [httpsPort, httpPort] = (await freePorts(2)) as [number, number];
      const conf = mainConfig(prefix, siteConfig({ ...c, http: httpPort, https: httpsPort, upstream: Number(new URL(t.url).port) }));
      nginx = spawn(NGINX!, ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', conf, '-g', 'daemon off;'], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        if (await get(`https://127.0.0.1:${httpsPort}/api/health`, ca).then(() => true, () => false)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`nginx did not answer: ${fs.readFileSync(path.join(prefix, 'error.log'), 'utf8')}`);
    });
    afterAll(async () => {
      release();
      if (nginx && nginx.exitCode === null) {
        const exited = new Promise((r) => nginx!.once('exit', r));
        nginx.kill('SIGTERM');
        await exited;
      }
      await t?.close();
    });

    it('answers over HTTPS and redirects plain http to https', async () => {
      const health = await get(`https://127.0.0.1:${httpsPort}/api/health`, ca);
      expect(health.status).toBe(200);
      // Backroll's own HSTS header, once (the proxy adds none).
      expect(health.headers['strict-transport-security']).toMatch(/^max-age=\d+[^,]*$/);
      const redirect = await get(`http://127.0.0.1:${httpPort}/api/health`);
      expect(redirect.status).toBe(301);
      expect(redirect.headers.location).toBe('https://127.0.0.1/api/health');
    });

    it("streams a task's events through the proxy while it runs", async () => {
      const task = await t.server.services.tasks.submit('test.proxy-stream', {}, {});
      const got: string[] = [];
      const firstSeen = new Promise<void>((resolve, reject) => {
        const req = https.get(`https://127.0.0.1:${httpsPort}/api/v2/tasks/${task.id}/events`, { ca, headers: { authorization: `Bearer ${t.adminToken}` } }, (res) => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
          res.setEncoding('utf8').on('data', (d: string) => {
            got.push(d);
            if (got.join('').includes('first line, while the task runs')) resolve();
          });
          res.on('end', () => reject(new Error(`the stream ended before the first log line: ${got.join('')}`)));
        });
        req.on('error', reject);
        setTimeout(() => reject(new Error(`no event through the proxy within 10 s: ${JSON.stringify(got.join(''))}`)), 10_000);
      });
      await firstSeen;
      // The task is still running (it waits for `release`): the event was not held back until the end.
      expect((await t.api('GET', `/api/v2/tasks/${task.id}`)).body.state).toBe('running');
      expect(got.join('')).not.toContain('last line');
      release();
    });
  });

  describe('Caddy in front of a real Backroll', () => {
    let t: TestServer;
    let caddy: ChildProcess | undefined;
    let ca = '';
    let httpsPort: number;
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    let log = '';

    beforeAll(async () => {
      t = await startTestServer('sqlite', { BACKROLL_TRUST_PROXY: '127.0.0.1' }, {
        handlers: (tasks) =>
          tasks.registerHandler('test.proxy-stream', async (_p, ctx) => {
            await ctx.log('info', 'first line, while the task runs');
            await released;
            await ctx.log('info', 'last line');
            return { ok: true };
          }),
      });
      const home = tmp();
      const [https, httpPort] = (await freePorts(2)) as [number, number];
      httpsPort = https;
      const upstream = Number(new URL(t.url).port);
      // The example as shipped, but for 127.0.0.1 on test ports with Caddy's own CA (no ACME, no trust-store change).
      const site = fs
        .readFileSync(path.join(PROXY, 'Caddyfile'), 'utf8')
        .replace('backroll.example.com {', `https://127.0.0.1:${httpsPort} {\n\ttls internal`)
        .replaceAll('127.0.0.1:5050', `127.0.0.1:${upstream}`);
      const file = path.join(home, 'Caddyfile');
      fs.writeFileSync(file, `{\n\tadmin off\n\tskip_install_trust\n\thttp_port ${httpPort}\n\thttps_port ${httpsPort}\n\tstorage file_system ${home}/data\n}\n\n${site}`);
      caddy = spawn(CADDY!, ['run', '--adapter', 'caddyfile', '--config', file], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      caddy.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
      const root = path.join(home, 'data', 'pki', 'authorities', 'local', 'root.crt');
      for (let i = 0; i < 150; i++) {
        if (fs.existsSync(root)) {
          ca = fs.readFileSync(root, 'utf8');
          if (await get(`https://127.0.0.1:${httpsPort}/api/health`, ca).then(() => true, () => false)) return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`caddy did not answer: ${log}`);
    });
    afterAll(async () => {
      release();
      if (caddy && caddy.exitCode === null) {
        const exited = new Promise((r) => caddy!.once('exit', r));
        caddy.kill('SIGTERM');
        await exited;
      }
      await t?.close();
    });

    it('answers over HTTPS', async () => {
      const health = await get(`https://127.0.0.1:${httpsPort}/api/health`, ca);
      expect(health.status, log).toBe(200);
      expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
    });

    it("streams a task's events through the proxy while it runs", async () => {
      const task = await t.server.services.tasks.submit('test.proxy-stream', {}, {});
      const got: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = https.get(`https://127.0.0.1:${httpsPort}/api/v2/tasks/${task.id}/events`, { ca, headers: { authorization: `Bearer ${t.adminToken}`, 'accept-encoding': 'gzip' } }, (res) => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
          expect(res.headers['content-encoding']).toBeUndefined();
          res.setEncoding('utf8').on('data', (d: string) => {
            got.push(d);
            if (got.join('').includes('first line, while the task runs')) resolve();
          });
          res.on('end', () => reject(new Error(`the stream ended before the first log line: ${got.join('')}`)));
        });
        req.on('error', reject);
        setTimeout(() => reject(new Error(`no event through the proxy within 10 s: ${JSON.stringify(got.join(''))}`)), 10_000);
      });
      expect((await t.api('GET', `/api/v2/tasks/${task.id}`)).body.state).toBe('running');
      expect(got.join('')).not.toContain('last line');
      release();
    });
  });
});
