import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeTestCertificates, startCloudStackServer, zoneShape, type CloudStackTestServer, type TestCertificates } from '../support/cloudstack-server.js';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { startTestServer, type ApiResponse, type TestServer } from '../support/server.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { freePort as closedPort } from '../support/ports.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

const expectProblem = (res: ApiResponse, status: number, code: string) => {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe(code);
  expect(res.body.detail).toEqual(expect.any(String));
};


for (const dialect of DIALECTS) {
  describeWhenAvailable(`CloudStack connectors on ${dialect}`, reasons[dialect] ?? null, () => {
    let t: TestServer;
    let cs: CloudStackTestServer;
    let csTls: CloudStackTestServer;
    let certs: TestCertificates;

    beforeAll(async () => {
      certs = makeTestCertificates();
      [t, cs, csTls] = await Promise.all([
        startTestServer(dialect),
        startCloudStackServer({ version: '4.20.0.0' }),
        startCloudStackServer({ tls: { cert: certs.certPem, key: certs.keyPem } }),
      ]);
      cs.zones.push(zoneShape('zone-2', 'a1e0c2d4-0000-4000-8000-000000000002'));
    });
    afterAll(async () => {
      await Promise.all([t?.close(), cs?.close(), csTls?.close()]);
    });

    const create = async (body: Record<string, unknown>) => {
      const res = await t.api('POST', '/api/v2/connectors', { body });
      expect(res.status, res.text).toBe(201);
      return res.body as { id: string };
    };

    it('tests a connector: reachability, CloudStack version, zones and round-trip time', async () => {
      const c = await create({ name: 'acs', endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey });
      const res = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({
        reachable: true,
        endpointUrl: cs.url,
        cloudstackVersion: '4.20.0.0',
        zones: 2,
        roundTripMs: expect.any(Number),
        testedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      expect(res.body.roundTripMs).toBeGreaterThan(0);
      expect(cs.requests.map((r) => r.command)).toEqual(['listZones', 'listCapabilities']);
      expect(cs.rejected).toEqual([]);
    });

    it('lets only admins test, and answers 404 for an unknown connector', async () => {
      const c = (await t.api('GET', '/api/v2/connectors?limit=500')).body.items.find((x: { name: string }) => x.name === 'acs');
      expectProblem(await t.api('POST', `/api/v2/connectors/${c.id}/test`, { token: t.viewerToken }), 403, 'AUTH.ADMIN_REQUIRED');
      expectProblem(await t.api('POST', '/api/v2/connectors/00000000-0000-4000-8000-000000000000/test'), 404, 'CONNECTOR.NOT_FOUND');
    });

    it('reports refused credentials as CONNECTOR.AUTH_FAILED with what to check, and never echoes the keys', async () => {
      const wrongSecret = 'WRONG-secret-key-0123456789abcdef';
      const c = await create({ name: 'acs-bad-key', endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: wrongSecret });
      const res = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expectProblem(res, 409, 'CONNECTOR.AUTH_FAILED');
      expect(res.body.detail).toMatch(/API key and secret key/);
      expect(res.body.detail).toMatch(/clock/);
      expect(res.body).toMatchObject({ errorcode: 401, command: 'listZones', endpoint: cs.url });
      for (const secret of [wrongSecret, cs.secretKey, cs.apiKey]) expect(res.text).not.toContain(secret);
      expect(cs.rejected.at(-1)).toEqual({ command: 'listZones', reason: 'signature mismatch' });

      // Fixing the secret key (write-only, patched alone) makes the test pass.
      const fixed = await t.api('PATCH', `/api/v2/connectors/${c.id}`, { body: { secretKey: cs.secretKey } });
      expect(fixed.status, fixed.text).toBe(200);
      expect(fixed.text).not.toContain(cs.secretKey);
      expect((await t.api('POST', `/api/v2/connectors/${c.id}/test`)).status).toBe(200);
    });

    it("reports CloudStack's own errors as CONNECTOR.API_ERROR with its errortext", async () => {
      const c = await create({ name: 'acs-api-error', endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey });
      cs.failNext('listCapabilities', { errorcode: 530, errortext: 'Internal error executing command, please contact your system administrator' });
      const res = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expectProblem(res, 409, 'CONNECTOR.API_ERROR');
      expect(res.body.detail).toContain('Internal error executing command, please contact your system administrator');
      expect(res.body).toMatchObject({ errorcode: 530, errortext: 'Internal error executing command, please contact your system administrator', command: 'listCapabilities' });
    });

    it('reports an endpoint that does not answer as CONNECTOR.UNREACHABLE, naming what was tried', async () => {
      const port = await closedPort();
      const c = await create({ name: 'acs-down', endpointUrl: `http://127.0.0.1:${port}/client/api`, apiKey: cs.apiKey, secretKey: cs.secretKey });
      const res = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expectProblem(res, 503, 'CONNECTOR.UNREACHABLE');
      expect(res.body.detail).toContain(`POST http://127.0.0.1:${port}/client/api (listZones)`);
      expect(res.body).toMatchObject({ cause: 'ECONNREFUSED' });
      expect(res.text).not.toContain(cs.secretKey);
    });

    it('verifies TLS by default, and passes once the CA is configured', async () => {
      const c = await create({ name: 'acs-tls', endpointUrl: csTls.url, apiKey: csTls.apiKey, secretKey: csTls.secretKey });
      expect((await t.api('GET', `/api/v2/connectors/${c.id}`)).body).toMatchObject({ verifyTls: true, caCertificate: null });
      const untrusted = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expectProblem(untrusted, 503, 'CONNECTOR.UNREACHABLE');
      expect(untrusted.body.detail).toMatch(/caCertificate/);
      expect(csTls.requests).toEqual([]);

      const patched = await t.api('PATCH', `/api/v2/connectors/${c.id}`, { body: { caCertificate: certs.caPem } });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body).toMatchObject({ verifyTls: true, caCertificate: expect.stringContaining('-----BEGIN CERTIFICATE-----') });
      const ok = await t.api('POST', `/api/v2/connectors/${c.id}/test`);
      expect(ok.status, ok.text).toBe(200);
      expect(ok.body).toMatchObject({ reachable: true, cloudstackVersion: '4.19.1.0', zones: 1 });

      // Removing the CA again brings verification back to the bundled CAs only.
      expect((await t.api('PATCH', `/api/v2/connectors/${c.id}`, { body: { caCertificate: null } })).body.caCertificate).toBeNull();
      expectProblem(await t.api('POST', `/api/v2/connectors/${c.id}/test`), 503, 'CONNECTOR.UNREACHABLE');
      // Switching verification off is possible, and shows in the connector.
      const off = await t.api('PATCH', `/api/v2/connectors/${c.id}`, { body: { verifyTls: false } });
      expect(off.body.verifyTls).toBe(false);
      expect((await t.api('POST', `/api/v2/connectors/${c.id}/test`)).status).toBe(200);
    });

    it('refuses a CA certificate that is not one, or that carries a private key', async () => {
      const base = { endpointUrl: csTls.url, apiKey: csTls.apiKey, secretKey: csTls.secretKey };
      expectProblem(await t.api('POST', '/api/v2/connectors', { body: { ...base, name: 'x1', caCertificate: 'not a certificate' } }), 400, 'CONNECTOR.CA_INVALID');
      const broken = certs.caPem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
      expectProblem(await t.api('POST', '/api/v2/connectors', { body: { ...base, name: 'x2', caCertificate: broken } }), 400, 'CONNECTOR.CA_INVALID');
      const withKey = await t.api('POST', '/api/v2/connectors', { body: { ...base, name: 'x3', caCertificate: `${certs.caPem}${certs.keyPem}` } });
      expectProblem(withKey, 400, 'CONNECTOR.CA_INVALID');
      expect(withKey.text).not.toContain(certs.keyPem.split('\n')[1]!);
      expectProblem(await t.api('POST', '/api/v2/connectors', { body: { ...base, name: 'x4', verifyTls: 'no' } }), 400, 'REQUEST.INVALID');
    });

    it('keeps the keys write-only in every answer', async () => {
      const list = await t.api('GET', '/api/v2/connectors?limit=500');
      expect(list.status).toBe(200);
      expect(list.body.items.length).toBeGreaterThanOrEqual(5);
      for (const secret of [cs.secretKey, cs.apiKey, csTls.secretKey, csTls.apiKey]) expect(list.text).not.toContain(secret);
      for (const item of list.body.items) expect(Object.keys(item).sort()).toEqual(['apiKeySet', 'caCertificate', 'createdAt', 'endpointUrl', 'id', 'kind', 'name', 'secretKeySet', 'updatedAt', 'verifyTls']);
    });
  });
}
