import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientCredentialsToken, startTestServer, type TestServer } from '../support/server.js';
import { CLIENT_CHECK_CACHE_MS } from '../../src/auth/client-check.js';
import { createMachineClient } from '../../src/idp/index.js';

/**
 * Authentication against the real bundled provider: tokens come from its token
 * endpoint; forged ones are signed with its real private key (read from the data
 * dir) or another key, and the server's real verifier must refuse them.
 */
describe('authentication and authorisation', () => {
  let t: TestServer;
  let issuerKey: { key: Awaited<ReturnType<typeof importJWK>>; kid: string; alg: string };

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    const jwks = JSON.parse(fs.readFileSync(path.join(t.dataDir, 'idp', 'jwks.json'), 'utf8')) as { keys: JWK[] };
    const kid = decodeProtectedHeader(t.adminToken).kid!;
    const jwk = jwks.keys.find((k) => k.kid === kid)!;
    issuerKey = { key: await importJWK(jwk, jwk.alg), kid, alg: jwk.alg! };
  });
  afterAll(async () => t?.close());

  /** A token like the provider's, with chosen claims, signed by the provider's own key. */
  const forge = async (claims: Record<string, unknown>, opts: { exp?: number | string; iss?: string; aud?: string; nbf?: number } = {}) => {
    let jwt = new SignJWT({ roles: ['admin'], ...claims })
      .setProtectedHeader({ alg: issuerKey.alg, kid: issuerKey.kid, typ: 'at+jwt' })
      .setSubject('forged-client')
      .setIssuedAt()
      .setIssuer(opts.iss ?? t.config.oidc.issuer)
      .setAudience(opts.aud ?? t.config.oidc.audience)
      .setExpirationTime(opts.exp ?? '5m');
    if (opts.nbf) jwt = jwt.setNotBefore(opts.nbf);
    return jwt.sign(issuerKey.key);
  };

  const expect401 = async (token: string | null, code: string, header?: string) => {
    const res = await t.api('GET', '/api/v2/storages', header ? { token: null, headers: { authorization: header } } : { token });
    expect(res.status, res.text).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe(code);
  };

  it('issues JWT access tokens with the audience and the role claim', () => {
    const claims = decodeJwt(t.adminToken);
    expect(claims.iss).toBe(t.config.oidc.issuer);
    expect(claims.aud).toBe('backroll');
    expect(claims.roles).toEqual(['admin']);
    expect(decodeJwt(t.viewerToken).roles).toEqual(['viewer']);
  });

  it('serves health without a token, everything else only with one', async () => {
    const health = await t.api('GET', '/api/health', { token: null });
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', checks: { database: 'ok' } });
    await expect401(null, 'AUTH.TOKEN_MISSING');
    await expect401(null, 'AUTH.TOKEN_MISSING', `Basic ${Buffer.from('admin:x').toString('base64')}`);
    expect((await t.api('GET', '/metrics', { token: null })).status).toBe(401);
    expect((await t.api('GET', '/api/v2/nothing-here', { token: null })).status).toBe(401);
    expect((await t.api('GET', '/api/v2/storages')).status).toBe(200);
  });

  it('refuses an expired token', async () => {
    const past = Math.floor(Date.now() / 1000) - 600;
    await expect401(await forge({}, { exp: past }), 'AUTH.TOKEN_EXPIRED');
  });

  it('refuses a token that is not yet valid', async () => {
    await expect401(await forge({}, { nbf: Math.floor(Date.now() / 1000) + 600 }), 'AUTH.TOKEN_INVALID');
  });

  it('refuses a token from another issuer or for another audience', async () => {
    await expect401(await forge({}, { iss: 'https://evil.example/oidc' }), 'AUTH.TOKEN_INVALID');
    await expect401(await forge({}, { aud: 'some-other-api' }), 'AUTH.TOKEN_INVALID');
  });

  it('refuses alg "none" and tokens signed by another key', async () => {
    const claims = decodeJwt(t.adminToken);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    await expect401(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`, 'AUTH.TOKEN_INVALID');
    // Same kid as the issuer's key, but signed by an attacker's key.
    const { privateKey } = await generateKeyPair(issuerKey.alg);
    const forged = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: issuerKey.alg, kid: issuerKey.kid })
      .sign(privateKey);
    await expect401(forged, 'AUTH.TOKEN_INVALID');
    // HMAC with a guessable secret must never be accepted.
    const hs = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('secret'));
    await expect401(hs, 'AUTH.TOKEN_INVALID');
    // A real token with its signature tampered.
    const [h, p, s] = t.adminToken.split('.');
    await expect401(`${h}.${p}.${s!.slice(0, -4)}AAAA`, 'AUTH.TOKEN_INVALID');
    await expect401('not-a-jwt', 'AUTH.TOKEN_INVALID');
  });

  it('gives 403 to a valid token without a Backroll role, and to a viewer writing', async () => {
    const noRole = await forge({ roles: ['auditor'] });
    const res = await t.api('GET', '/api/v2/storages', { token: noRole });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('AUTH.NO_ROLE');
    const write = await t.api('POST', '/api/v2/pools', { token: t.viewerToken, body: { name: 'p', policyId: '00000000-0000-4000-8000-000000000000' } });
    expect(write.status).toBe(403);
    expect(write.body.code).toBe('AUTH.ADMIN_REQUIRED');
  });

  it('refuses a wrong client secret at the token endpoint and issues a working token for the right one', async () => {
    const c = createMachineClient(t.dataDir, t.server.secretBox, 'short-lived', 'viewer');
    await expect(clientCredentialsToken(t.config.oidc.issuer, c.clientId, 'wrong-secret')).rejects.toThrow(/invalid_client/);
    const token = await clientCredentialsToken(t.config.oidc.issuer, c.clientId, c.clientSecret);
    expect((await t.api('GET', '/api/v2/hosts', { token })).status).toBe(200);
  });

  it('refuses the tokens of a deleted machine client within the check cache time (default 5 s)', async () => {
    const c = createMachineClient(t.dataDir, t.server.secretBox, 'to-be-deleted', 'admin');
    const token = await clientCredentialsToken(t.config.oidc.issuer, c.clientId, c.clientSecret);
    expect((await t.api('GET', '/api/v2/hosts', { token })).status).toBe(200);
    expect((await t.api('DELETE', `/api/v2/auth/clients/${c.clientId}`)).status).toBe(204);
    const deletedAt = Date.now();
    let res = await t.api('GET', '/api/v2/hosts', { token });
    while (res.status === 200 && Date.now() - deletedAt < CLIENT_CHECK_CACHE_MS + 2000) {
      await new Promise((r) => setTimeout(r, 250));
      res = await t.api('GET', '/api/v2/hosts', { token });
    }
    expect(res.status, res.text).toBe(401);
    expect(res.body.code).toBe('AUTH.CLIENT_DELETED');
    expect(Date.now() - deletedAt).toBeLessThan(CLIENT_CHECK_CACHE_MS + 2000);
    // Other clients' tokens are unaffected.
    expect((await t.api('GET', '/api/v2/hosts')).status).toBe(200);
  }, 20_000);

  it('records a person signed in through the web console as that person, not as the console\'s client', async () => {
    // A user's token from the code flow names the console's client in azp/client_id; only a
    // token whose subject is the client itself (client credentials) is a machine client.
    const person = await forge({ azp: 'backroll-web', client_id: 'backroll-web', preferred_username: 'alice' });
    const started = await t.api('POST', '/api/v2/tasks', { token: person, body: { kind: 'inventory.refresh', payload: null } });
    expect(started.status, started.text).toBe(201);
    const task = await t.api('GET', `/api/v2/tasks/${started.body.id}`);
    expect(task.body.startedBy).toBe('user:alice');
    // The test server's admin token is a real machine client's (client credentials).
    const byClient = await t.api('POST', '/api/v2/tasks', { body: { kind: 'inventory.refresh', payload: null } });
    expect(byClient.status, byClient.text).toBe(201);
    expect((await t.api('GET', `/api/v2/tasks/${byClient.body.id}`)).body.startedBy).toBe(`client:${decodeJwt(t.adminToken).sub}`);
  });

  it('an encoded or doubled path that routes to the API still needs a token (the console\'s public file paths are no way around it)', async () => {
    for (const p of ['/%61pi/v2/storages', '/%61%70%69/v2/storages', '//api/v2/storages', '/./api/v2/storages', '/API/v2/storages', '/%2561pi/v2/storages']) {
      const res = await t.api('GET', p, { token: null });
      // Either refused, or not the API at all (the console's index.html / a 404): never data without a token.
      if (res.status === 200) expect(res.headers.get('content-type'), p).toMatch(/^text\/html/);
      else expect([401, 404], `${p}: ${res.status} ${res.text}`).toContain(res.status);
      expect(res.text, p).not.toContain('"items"');
    }
  });

  it('answers unknown routes with a 404 problem and sets security headers and request ids', async () => {
    const res = await t.api('GET', '/api/v2/nothing-here', { headers: { 'x-request-id': 'trace-123' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'ROUTE.NOT_FOUND', status: 404, requestId: 'trace-123' });
    expect(res.headers.get('x-request-id')).toBe('trace-123');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('strict-transport-security')).toBeTruthy();
  });

  it('publishes an OpenAPI document listing every route with its schemas', async () => {
    const res = await t.api('GET', '/api/openapi.json', { token: null });
    expect(res.status).toBe(200);
    const doc = res.body as { openapi: string; paths: Record<string, Record<string, { responses: object; requestBody?: object; parameters?: unknown[] }>>; components: { schemas: object } };
    expect(doc.openapi).toMatch(/^3\./);
    const routes = t.server.app!.printRoutes({ commonPrefix: false });
    for (const resource of ['storages', 'policies', 'pools', 'hosts', 'connectors', 'hooks']) {
      const list = doc.paths[`/api/v2/${resource}`]!;
      const one = doc.paths[`/api/v2/${resource}/{id}`]!;
      expect(Object.keys(list).sort(), resource).toEqual(['get', 'post']);
      expect(Object.keys(one).sort(), resource).toEqual(['delete', 'get', 'patch']);
      expect(list.post!.requestBody, resource).toBeDefined();
      expect(Object.keys(list.post!.responses), resource).toEqual(expect.arrayContaining(['201', '400', '401', '403', '409']));
      expect(routes).toContain(`/api/v2/${resource}`);
    }
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Storage', 'Policy', 'Pool', 'Host', 'Connector', 'Hook', 'Problem']));
    const ui = await fetch(`${t.url}/api/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });

  it('serves Prometheus metrics to an authenticated scraper', async () => {
    const res = await t.api('GET', '/metrics', { token: t.viewerToken });
    expect(res.status).toBe(200);
    expect(res.text).toContain('backroll_http_requests_total');
    expect(res.text).toContain('backroll_process_cpu_seconds_total');
  });
});

describe('roles at a configured claim path (Keycloak realm_access.roles)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite', { BACKROLL_OIDC_ROLES_CLAIM: 'realm_access.roles' });
  });
  afterAll(async () => t?.close());

  it('reads roles from realm_access.roles', async () => {
    expect(decodeJwt(t.adminToken)).toMatchObject({ realm_access: { roles: ['admin'] } });
    expect((await t.api('POST', '/api/v2/pools', { body: { name: 'x', policyId: '00000000-0000-4000-8000-000000000000' } })).body.code).toBe('POOL.POLICY_NOT_FOUND');
    expect((await t.api('POST', '/api/v2/pools', { token: t.viewerToken, body: {} })).status).toBe(403);
  });
});

describe('an external OpenID issuer', () => {
  let idp: TestServer;
  let api: TestServer;
  beforeAll(async () => {
    // One Backroll's bundled provider plays the external issuer (as Keycloak would) for another
    // Backroll that has no provider of its own: same verification path, discovery over HTTP.
    idp = await startTestServer('sqlite');
    api = await startTestServer('sqlite', { BACKROLL_OIDC_ISSUER: idp.config.oidc.issuer, BACKROLL_OIDC_AUDIENCE: 'backroll' });
  });
  afterAll(async () => {
    await api?.close();
    await idp?.close();
  });

  it('accepts tokens of the external issuer, and serves no provider itself', async () => {
    const res = await api.api('GET', '/api/v2/storages', { token: idp.adminToken });
    expect(res.status, res.text).toBe(200);
    expect((await api.api('GET', '/oidc/.well-known/openid-configuration', { token: null })).status).toBe(404);
  });
});
