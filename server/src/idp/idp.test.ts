import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { OidcConfig } from '../config/config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEmbeddedIdp,
  createMachineClient,
  deleteMachineClient,
  ensureAdminAccount,
  listMachineClients,
  LoginThrottle,
  resetAdminPassword,
  type EmbeddedIdp,
} from './index.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function tempDataDir(prefix = 'backroll-idp-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

interface TestServer {
  app: FastifyInstance;
  idp: EmbeddedIdp;
  base: string;
  issuer: string;
  redirectUri: string;
  oidc: OidcConfig;
  dataDir: string;
  secretBox: SecretBox;
  close(): Promise<void>;
}

async function startTestServer(opts: {
  dataDir: string;
  rolesClaim?: string;
  audience?: string;
  fastify?: FastifyServerOptions;
  /** Plugins and hooks registered before the provider, as Backroll's app does. */
  prepare?: (app: FastifyInstance) => Promise<void>;
  storeMaxEntries?: number;
  throttle?: LoginThrottle;
}): Promise<TestServer> {
  // The issuer must carry the port, so find one first (retry if someone takes it meanwhile).
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const oidc: OidcConfig = {
      embedded: true,
      issuer: `${base}/oidc`,
      audience: opts.audience ?? 'backroll',
      rolesClaim: opts.rolesClaim ?? 'roles',
      adminRole: 'backroll-admin',
      viewerRole: 'backroll-viewer',
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      clockToleranceSeconds: 5,
      webClientId: 'backroll-web',
      webRedirectUris: [`${base}/ui/callback`],
    };
    const secretBox = SecretBox.openInDir(opts.dataDir);
    const quiet = { info: () => {}, warn: () => {}, error: (o: object | string, m?: string) => console.error(m, o) };
    const idp = await createEmbeddedIdp({ dataDir: opts.dataDir, oidc, secretBox, logger: quiet, storeMaxEntries: opts.storeMaxEntries, throttle: opts.throttle });
    const app = Fastify({ logger: false, ...opts.fastify });
    await opts.prepare?.(app);
    await idp.register(app);
    try {
      await app.listen({ host: '127.0.0.1', port });
    } catch (err) {
      await app.close();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
      throw err;
    }
    return {
      app,
      idp,
      base,
      issuer: oidc.issuer,
      redirectUri: oidc.webRedirectUris[0]!,
      oidc,
      dataDir: opts.dataDir,
      secretBox,
      close: async () => {
        await app.close();
        await idp.close?.();
      },
    };
  }
}

/** A minimal cookie jar: enough for the provider's cookies on one host. */
class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=');
        return k?.trim().toLowerCase() === 'expires' && v !== undefined && Date.parse(v) < Date.now();
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

async function get(url: string, jar: CookieJar): Promise<Response> {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header() } });
  jar.store(res);
  return res;
}

async function postForm(url: string, form: Record<string, string>, jar?: CookieJar, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(jar ? { cookie: jar.header() } : {}), ...headers },
    body: new URLSearchParams(form).toString(),
  });
  jar?.store(res);
  return res;
}

/** Follows redirects (manually, keeping cookies) until one leaves the server or a page is shown. */
async function follow(start: Response, base: string, jar: CookieJar, stopAt: string): Promise<{ res: Response; url: string }> {
  let res = start;
  let url = '';
  for (let hops = 0; hops < 10; hops++) {
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return { res, url };
    url = new URL(location, base).href;
    if (url.startsWith(stopAt)) return { res, url };
    res = await get(url, jar);
  }
  throw new Error('too many redirects');
}

// ---------------------------------------------------------------------------

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function clientCredentials(server: TestServer, id: string, secret: string, how: 'basic' | 'post'): Promise<Response> {
  const url = `${server.issuer}/token`;
  return how === 'basic'
    ? postForm(url, { grant_type: 'client_credentials' }, undefined, { authorization: basic(id, secret) })
    : postForm(url, { grant_type: 'client_credentials', client_id: id, client_secret: secret });
}

async function verify(server: TestServer, token: string): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: server.issuer, audience: server.oidc.audience });
  expect(protectedHeader.typ).toBe('at+jwt');
  expect(protectedHeader.alg).toBe('ES256'); // first of the accepted algorithms the provider can issue
  return payload;
}

function authorizeUrl(server: TestServer, params: Record<string, string>): string {
  const q = new URLSearchParams({
    client_id: server.oidc.webClientId,
    response_type: 'code',
    redirect_uri: server.redirectUri,
    scope: 'openid profile api',
    state: randomBytes(8).toString('hex'),
    ...params,
  });
  return `${server.issuer}/auth?${q}`;
}

/** GET /auth → sign-in page; returns the page response, its URL and the jar. */
async function openLoginPage(
  server: TestServer,
  challenge: string,
  extra: Record<string, string> = {},
): Promise<{ jar: CookieJar; page: Response; pageUrl: string; state: string }> {
  const jar = new CookieJar();
  const state = randomBytes(8).toString('hex');
  const first = await get(authorizeUrl(server, { code_challenge: challenge, code_challenge_method: 'S256', state, ...extra }), jar);
  expect(first.status).toBe(303);
  const { res: page, url: pageUrl } = await follow(first, server.base, jar, server.redirectUri);
  expect(page.status).toBe(200);
  expect(pageUrl).toMatch(new RegExp(`^${server.base}/oidc/interaction/[^/]+$`));
  return { jar, page, pageUrl, state };
}

/** The whole authorization code + PKCE flow; returns the token response, or the refused sign-in response. */
async function signIn(
  server: TestServer,
  username: string,
  password: string,
  extra: Record<string, string> = {},
): Promise<{ ok: true; tokens: Record<string, unknown> } | { ok: false; res: Response }> {
  const { verifier, challenge } = pkcePair();
  const { jar, pageUrl, state } = await openLoginPage(server, challenge, extra);
  const posted = await postForm(pageUrl, { username, password }, jar);
  if (posted.status !== 303) return { ok: false, res: posted };
  const { url } = await follow(posted, server.base, jar, server.redirectUri);
  const callback = new URL(url);
  expect(`${callback.origin}${callback.pathname}`).toBe(server.redirectUri);
  expect(callback.searchParams.get('state')).toBe(state);
  expect(callback.searchParams.get('iss')).toBe(server.issuer);
  const code = callback.searchParams.get('code');
  expect(code).toBeTruthy();
  const tokenRes = await postForm(`${server.issuer}/token`, {
    grant_type: 'authorization_code',
    code: code!,
    redirect_uri: server.redirectUri,
    client_id: server.oidc.webClientId,
    code_verifier: verifier,
  });
  expect(tokenRes.status).toBe(200);
  return { ok: true, tokens: (await tokenRes.json()) as Record<string, unknown> };
}

describe('embedded OpenID provider', () => {
  let server: TestServer;
  let adminPassword: string;

  beforeAll(async () => {
    const dataDir = tempDataDir();
    const admin = ensureAdminAccount(dataDir);
    expect(admin.created).toBe(true);
    adminPassword = admin.password!;
    server = await startTestServer({ dataDir });
  });

  afterAll(async () => {
    await server?.close();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('publishes a discovery document with the issuer and jwks_uri', async () => {
    const res = await fetch(`${server.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.issuer).toBe(server.issuer);
    expect(doc.jwks_uri).toBe(`${server.issuer}/jwks`);
    expect(doc.token_endpoint).toBe(`${server.issuer}/token`);
    expect(doc.authorization_endpoint).toBe(`${server.issuer}/auth`);
    expect(doc.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'client_credentials']));
    expect(doc.code_challenge_methods_supported).toEqual(['S256']);
    expect(doc.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'none']));
    const jwks = (await (await fetch(String(doc.jwks_uri))).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) expect(key.d).toBeUndefined(); // public parts only
  });

  it('issues JWT access tokens with the audience and role to machine clients (basic and post)', async () => {
    const admin = createMachineClient(server.dataDir, server.secretBox, 'CI pipeline', 'admin');
    const viewer = createMachineClient(server.dataDir, server.secretBox, 'Grafana', 'viewer');
    expect(admin.clientId).toMatch(/^ci-pipeline-[0-9a-f]{8}$/);
    expect(admin.clientSecret.length).toBeGreaterThanOrEqual(43);

    for (const how of ['basic', 'post'] as const) {
      const res = await clientCredentials(server, admin.clientId, admin.clientSecret, how);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { access_token: string; token_type: string; expires_in: number };
      expect(body.token_type).toBe('Bearer');
      expect(body.expires_in).toBeGreaterThan(3500);
      expect(body.expires_in).toBeLessThanOrEqual(3600);
      const claims = await verify(server, body.access_token);
      expect(claims.aud).toBe('backroll');
      expect(claims.sub).toBe(admin.clientId);
      expect(claims.client_id).toBe(admin.clientId);
      expect(claims.roles).toEqual(['backroll-admin']);
    }

    const res = await clientCredentials(server, viewer.clientId, viewer.clientSecret, 'basic');
    expect(res.status).toBe(200);
    const claims = await verify(server, ((await res.json()) as { access_token: string }).access_token);
    expect(claims.roles).toEqual(['backroll-viewer']);
  });

  it('grants the api scope when asked, and accepts the resource indicator explicitly', async () => {
    const c = createMachineClient(server.dataDir, server.secretBox, 'scoped', 'viewer');
    const res = await postForm(`${server.issuer}/token`, { grant_type: 'client_credentials', scope: 'api', resource: 'urn:backroll:api' }, undefined, {
      authorization: basic(c.clientId, c.clientSecret),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; scope?: string };
    expect(body.scope).toBe('api');
    expect((await verify(server, body.access_token)).scope).toBe('api');

    const other = await postForm(`${server.issuer}/token`, { grant_type: 'client_credentials', resource: 'https://elsewhere.example/' }, undefined, {
      authorization: basic(c.clientId, c.clientSecret),
    });
    expect(other.status).toBe(400);
    expect(((await other.json()) as { error: string }).error).toBe('invalid_target');
  });

  it('refuses a wrong client secret with 401 invalid_client', async () => {
    const c = createMachineClient(server.dataDir, server.secretBox, 'wrong-secret test', 'admin');
    for (const how of ['basic', 'post'] as const) {
      const res = await clientCredentials(server, c.clientId, `${c.clientSecret}x`, how);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
    const unknown = await clientCredentials(server, 'nobody-00000000', 'whatever', 'basic');
    expect(unknown.status).toBe(401);
    expect(((await unknown.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('sees clients created and deleted while it runs', async () => {
    // Created after the provider started (as the CLI would, offline).
    const c = createMachineClient(server.dataDir, server.secretBox, 'late client', 'viewer');
    expect((await clientCredentials(server, c.clientId, c.clientSecret, 'basic')).status).toBe(200);
    expect(listMachineClients(server.dataDir).map((x) => x.clientId)).toContain(c.clientId);

    expect(deleteMachineClient(server.dataDir, c.clientId)).toBe(true);
    expect(deleteMachineClient(server.dataDir, c.clientId)).toBe(false);
    const res = await clientCredentials(server, c.clientId, c.clientSecret, 'basic');
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('signs the admin in with authorization code + PKCE and issues a JWT with the admin role', async () => {
    const result = await signIn(server, 'admin', adminPassword);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { tokens } = result;
    expect(tokens.token_type).toBe('Bearer');
    expect(typeof tokens.id_token).toBe('string');
    const claims = await verify(server, String(tokens.access_token));
    expect(claims.sub).toBe('admin');
    expect(claims.preferred_username).toBe('admin');
    expect(claims.client_id).toBe('backroll-web');
    expect(claims.roles).toEqual(['backroll-admin']);
    expect(claims.scope).toBe('api');
    const idToken = decodeJwt(String(tokens.id_token));
    expect(idToken.aud).toBe('backroll-web');
    expect(idToken.sub).toBe('admin');
  });

  it('issues refresh tokens to the web UI (offline_access with prompt=consent); refreshed tokens are JWTs too', async () => {
    const result = await signIn(server, 'admin', adminPassword, { scope: 'openid offline_access api', prompt: 'consent' });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(typeof result.tokens.refresh_token).toBe('string');
    const res = await postForm(`${server.issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: String(result.tokens.refresh_token),
      client_id: server.oidc.webClientId,
    });
    expect(res.status).toBe(200);
    const refreshed = (await res.json()) as { access_token: string; refresh_token: string };
    const claims = await verify(server, refreshed.access_token);
    expect(claims.roles).toEqual(['backroll-admin']);
    expect(claims.aud).toBe('backroll');
  });

  it('shows an escaped login form and refuses a wrong password without saying whether the user exists', async () => {
    const { challenge } = pkcePair();
    const { jar, page, pageUrl } = await openLoginPage(server, challenge);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('name="username"');
    expect(html).toContain('type="password"');
    expect(html).not.toContain('<script');

    const wrong = await postForm(pageUrl, { username: 'admin', password: 'not-the-password' }, jar);
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('location')).toBeNull();
    const wrongHtml = await wrong.text();
    expect(wrongHtml).toContain('Wrong username or password.');

    const unknown = await postForm(pageUrl, { username: '<b>"nobody"</b>', password: 'x' }, jar);
    expect(unknown.status).toBe(401);
    const unknownHtml = await unknown.text();
    expect(unknownHtml).toContain('Wrong username or password.');
    expect(unknownHtml).toContain('&lt;b&gt;&quot;nobody&quot;&lt;/b&gt;');
    expect(unknownHtml).not.toContain('<b>"nobody"</b>');

    // The same interaction still accepts the right password afterwards.
    const ok = await postForm(pageUrl, { username: 'admin', password: adminPassword }, jar);
    expect(ok.status).toBe(303);
  });

  it('refuses an authorization request without PKCE, or with the plain method', async () => {
    const jar = new CookieJar();
    const res = await get(authorizeUrl(server, {}), jar);
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!, server.base);
    expect(`${location.origin}${location.pathname}`).toBe(server.redirectUri);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/PKCE/);

    const plain = await get(authorizeUrl(server, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }), jar);
    const plainLocation = new URL(plain.headers.get('location')!, server.base);
    expect(plainLocation.searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses a code exchanged with the wrong code_verifier', async () => {
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const posted = await postForm(pageUrl, { username: 'admin', password: adminPassword }, jar);
    const { url } = await follow(posted, server.base, jar, server.redirectUri);
    const code = new URL(url).searchParams.get('code')!;
    const res = await postForm(`${server.issuer}/token`, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: server.redirectUri,
      client_id: server.oidc.webClientId,
      code_verifier: pkcePair().verifier,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('lets the user cancel the sign-in', async () => {
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const cancelled = await postForm(`${pageUrl}/abort`, {}, jar);
    const { url } = await follow(cancelled, server.base, jar, server.redirectUri);
    expect(new URL(url).searchParams.get('error')).toBe('access_denied');
  });

  it('keeps its state in 0600 files, without plaintext passwords or secrets', async () => {
    const c = createMachineClient(server.dataDir, server.secretBox, 'file check', 'admin');
    const idpDir = path.join(server.dataDir, 'idp');
    expect(fs.statSync(idpDir).mode & 0o777).toBe(0o700);
    for (const file of ['jwks.json', 'cookie-keys.json', 'accounts.json', 'clients.json']) {
      expect(fs.statSync(path.join(idpDir, file)).mode & 0o777, file).toBe(0o600);
    }
    const passwordFile = path.join(server.dataDir, 'admin-password.txt');
    expect(fs.statSync(passwordFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(passwordFile, 'utf8').trim()).toBe(adminPassword);

    const accounts = fs.readFileSync(path.join(idpDir, 'accounts.json'), 'utf8');
    expect(accounts).not.toContain(adminPassword);
    expect(accounts).toMatch(/"passwordHash": "scrypt\$/);

    const clients = fs.readFileSync(path.join(idpDir, 'clients.json'), 'utf8');
    expect(clients).toContain(c.clientId);
    expect(clients).not.toContain(c.clientSecret);
    expect(clients).toContain('"secret": "v1:');

    const jwks = JSON.parse(fs.readFileSync(path.join(idpDir, 'jwks.json'), 'utf8')) as { keys: Array<{ alg: string; d?: string }> };
    expect(jwks.keys[0]?.alg).toBe('ES256');
    expect(jwks.keys[0]?.d).toBeTruthy();
  });

  it('resetAdminPassword invalidates the old password', async () => {
    const old = adminPassword;
    const reset = resetAdminPassword(server.dataDir);
    expect(reset.password).not.toBe(old);
    expect(reset.passwordFile).toBe(path.join(server.dataDir, 'admin-password.txt'));
    expect(fs.readFileSync(reset.passwordFile, 'utf8').trim()).toBe(reset.password);
    expect(fs.statSync(reset.passwordFile).mode & 0o777).toBe(0o600);

    const refused = await signIn(server, 'admin', old);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.res.status).toBe(401);

    const accepted = await signIn(server, 'admin', reset.password);
    expect(accepted.ok).toBe(true);
    adminPassword = reset.password;

    // A later start does not recreate the account or touch the password.
    expect(ensureAdminAccount(server.dataDir)).toEqual({ created: false, passwordFile: reset.passwordFile });
  });
});

describe('embedded OpenID provider with a nested roles claim', () => {
  let server: TestServer;

  beforeAll(async () => {
    const dataDir = tempDataDir();
    server = await startTestServer({ dataDir, rolesClaim: 'realm_access.roles', audience: 'https://backroll.example/api' });
  });

  afterAll(async () => {
    await server?.close();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('puts the roles at realm_access.roles, with a URI audience as the resource indicator', async () => {
    const c = createMachineClient(server.dataDir, server.secretBox, 'nested', 'viewer');
    const res = await clientCredentials(server, c.clientId, c.clientSecret, 'post');
    expect(res.status).toBe(200);
    const claims = await verify(server, ((await res.json()) as { access_token: string }).access_token);
    expect(claims.aud).toBe('https://backroll.example/api');
    expect(claims.realm_access).toEqual({ roles: ['backroll-viewer'] });
    expect(claims.roles).toBeUndefined();

    const explicit = await postForm(`${server.issuer}/token`, { grant_type: 'client_credentials', resource: 'https://backroll.example/api' }, undefined, {
      authorization: basic(c.clientId, c.clientSecret),
    });
    expect(explicit.status).toBe(200);
  });

  it('puts the admin role at realm_access.roles in the web sign-in flow', async () => {
    const { password } = ensureAdminAccount(server.dataDir);
    const result = await signIn(server, 'admin', password!);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const claims = await verify(server, String(result.tokens.access_token));
    expect(claims.realm_access).toEqual({ roles: ['backroll-admin'] });
  });
});

describe('embedded OpenID provider inside an app with body parsers, helmet and hooks', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({
      dataDir: tempDataDir(),
      prepare: async (app) => {
        await app.register(helmet, { contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'data:'] } } });
        await app.register(formbody); // a global urlencoded parser must not eat the provider's body
        app.addHook('onRequest', async (req, reply) => {
          if (!req.url.startsWith('/oidc')) return reply.code(401).send({ code: 'AUTH.TOKEN_MISSING' });
        });
        app.post('/api/echo', async (req) => req.body);
      },
    });
  });

  afterAll(async () => {
    await server?.close();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('still hands the unread body to the provider', async () => {
    const c = createMachineClient(server.dataDir, server.secretBox, 'behind parsers', 'admin');
    for (const how of ['basic', 'post'] as const) {
      const res = await clientCredentials(server, c.clientId, c.clientSecret, how);
      expect(res.status).toBe(200);
    }
  });

  it('serves the sign-in page with its own CSP and completes the flow', async () => {
    const { password } = ensureAdminAccount(server.dataDir);
    const { challenge } = pkcePair();
    const { page } = await openLoginPage(server, challenge);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`form-action 'self' ${server.base}`);
    expect(csp).not.toContain('upgrade-insecure-requests');
    const result = await signIn(server, 'admin', password!);
    expect(result.ok).toBe(true);
  });

  it('ignores forwarded headers when Fastify does not trust a proxy', async () => {
    const res = await fetch(`${server.issuer}/.well-known/openid-configuration`, {
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.token_endpoint).toBe(`${server.issuer}/token`);
    // X-Forwarded-Proto from an untrusted peer does not make cookies Secure either.
    const { challenge } = pkcePair();
    const auth = await fetch(authorizeUrl(server, { code_challenge: challenge, code_challenge_method: 'S256' }), { redirect: 'manual', headers: { 'x-forwarded-proto': 'https' } });
    expect(auth.status).toBe(303);
    expect(auth.headers.getSetCookie().length).toBeGreaterThan(0);
    for (const cookie of auth.headers.getSetCookie()) expect(cookie.toLowerCase()).not.toContain('; secure');
  });

  it('builds discovery URLs from the public URL, not from a forged Host header', async () => {
    const doc = await rawGet(server.base, '/oidc/.well-known/openid-configuration', { host: 'evil.example' });
    expect(doc.status).toBe(200);
    const body = JSON.parse(doc.body) as Record<string, string>;
    expect(body.issuer).toBe(server.issuer);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint']) expect(body[k], k).toMatch(new RegExp(`^${server.issuer}/`));
    expect(doc.body).not.toContain('evil.example');
  });
});

describe('embedded OpenID provider behind a trusted TLS-terminating proxy', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ dataDir: tempDataDir(), fastify: { trustProxy: true } });
  });

  afterAll(async () => {
    await server?.close();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('sets secure cookies from the trusted proxy\'s X-Forwarded-Proto; the host stays the public URL\'s', async () => {
    const headers = { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' };
    const doc = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`, { headers })).json()) as Record<string, unknown>;
    expect(doc.issuer).toBe(server.issuer); // the issuer is configuration, not derived
    expect(doc.token_endpoint).toBe(`${server.issuer.replace(/^http:/, 'https:')}/token`);

    const { challenge } = pkcePair();
    const res = await fetch(authorizeUrl(server, { code_challenge: challenge, code_challenge_method: 'S256' }), { redirect: 'manual', headers });
    expect(res.status).toBe(303);
    const cookies = res.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie.toLowerCase()).toContain('; secure');
  });

  it('slows down password guessing per client address', async () => {
    ensureAdminAccount(server.dataDir);
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const attempt = (ip: string, password = 'guess') => postForm(pageUrl, { username: 'admin', password }, jar, { 'x-forwarded-for': ip });
    for (let i = 0; i < 5; i++) expect((await attempt('203.0.113.7')).status).toBe(401);
    // From the 6th failure on, the address is locked out for 1 s, 2 s, 4 s…: the next
    // attempt is refused unchecked (retried a few times in case the machine is slow).
    let locked = await attempt('203.0.113.7');
    for (let i = 0; i < 4 && locked.status !== 429; i++) locked = await attempt('203.0.113.7');
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toContain('Too many failed sign-in attempts');
    expect((await attempt('198.51.100.9')).status).toBe(401); // other addresses are unaffected
  });

  it('lets at most the free failures through when one address guesses in parallel', async () => {
    ensureAdminAccount(server.dataDir);
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => postForm(pageUrl, { username: 'admin', password: 'guess' }, jar, { 'x-forwarded-for': '203.0.113.50' })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((x) => x === 401).length, statuses.join(',')).toBeLessThanOrEqual(5);
    expect(statuses.filter((x) => x === 429).length, statuses.join(',')).toBeGreaterThanOrEqual(15);
    expect(statuses.every((x) => x === 401 || x === 429)).toBe(true);
  });
});

describe('embedded OpenID provider under load', () => {
  let server: TestServer;
  const throttle = new LoginThrottle();

  beforeAll(async () => {
    // A small store bound, so a flood larger than it is quick to send; the default is 20 000 per model.
    server = await startTestServer({ dataDir: tempDataDir(), fastify: { trustProxy: true }, storeMaxEntries: 40, throttle });
  });

  afterAll(async () => {
    await server?.close();
    if (server) fs.rmSync(server.dataDir, { recursive: true, force: true });
  });

  it('checks at most 4 passwords at once, whatever the number of addresses guessing', async () => {
    ensureAdminAccount(server.dataDir);
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => postForm(pageUrl, { username: 'admin', password: 'guess' }, jar, { 'x-forwarded-for': `198.51.100.${i + 1}` })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(16).fill(401));
    expect(throttle.peakChecks).toBeGreaterThan(1);
    expect(throttle.peakChecks).toBeLessThanOrEqual(4);
  });

  it('keeps a signed-in session through a flood of anonymous /oidc/auth requests', async () => {
    const { password } = resetAdminPassword(server.dataDir);
    const { challenge } = pkcePair();
    const { jar, pageUrl } = await openLoginPage(server, challenge);
    const posted = await postForm(pageUrl, { username: 'admin', password }, jar, { 'x-forwarded-for': '192.0.2.200' });
    expect(posted.status).toBe(303);
    expect((await follow(posted, server.base, jar, server.redirectUri)).url).toMatch(new RegExp(`^${server.redirectUri}\\?`));

    for (let i = 0; i < 100; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const r = await fetch(authorizeUrl(server, { code_challenge: pkcePair().challenge, code_challenge_method: 'S256' }), { redirect: 'manual' });
          expect(r.status).toBe(303);
          await r.arrayBuffer();
        }),
      );
    }
    // The same browser signs in again without a password: its session survived.
    const again = await get(authorizeUrl(server, { code_challenge: pkcePair().challenge, code_challenge_method: 'S256' }), jar);
    const { url } = await follow(again, server.base, jar, server.redirectUri);
    expect(url).toMatch(new RegExp(`^${server.redirectUri}\\?`));
    expect(new URL(url).searchParams.get('code')).toBeTruthy();
  });
});

/** A GET with headers fetch() will not send (Host). */
function rawGet(base: string, p: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
