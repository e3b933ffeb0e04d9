import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../errors.js';
import { makeTestCertificates, POOL_ID, startCloudStackServer, type CloudStackTestServer } from '../../../test/support/cloudstack-server.js';
import { CloudStackClient, type CloudStackClientOptions } from './cloudstack-client.js';
import { freePort as closedPort } from '../../../test/support/ports.js';

/** The error a promise rejects with; fails the test when it resolves. */
async function failure(p: Promise<unknown>): Promise<AppError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(AppError);
  return outcome.error as AppError;
}

/** Nothing secret in what a person or a log would see of the error. */
function expectNoSecrets(err: AppError, ...secrets: string[]) {
  const seen = `${err.message} ${JSON.stringify(err.details)} ${String((err.cause as Error | undefined)?.message ?? '')}`;
  for (const secret of secrets) expect(seen).not.toContain(secret);
}


describe('CloudStack client against a signature-checking CloudStack API', () => {
  let cs: CloudStackTestServer;
  const client = (o: Partial<CloudStackClientOptions> = {}) =>
    new CloudStackClient({ endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey, name: 'acs', jobPollMs: 20, ...o });

  beforeAll(async () => {
    cs = await startCloudStackServer();
  });
  afterAll(async () => {
    await cs?.close();
  });
  afterEach(() => {
    // Every request a test made with the right keys passed the strict signature check.
    const rejected = cs.rejected.splice(0);
    cs.requests.length = 0;
    expect(rejected.filter((r) => r.reason !== 'signature mismatch' && r.reason !== 'request expired')).toEqual([]);
  });

  it('lists zones and capabilities with signed POST requests (signature version 3, nothing secret in clear)', async () => {
    const c = client();
    const zones = await c.listZones();
    expect(zones.map((z) => z.name)).toEqual(['zone-1']);
    expect((await c.listCapabilities()).cloudstackversion).toBe('4.19.1.0');
    expect(cs.rejected).toEqual([]);
    expect(cs.requests.map((r) => r.command)).toEqual(['listZones', 'listCapabilities']);
    for (const r of cs.requests) {
      expect(r.method).toBe('POST');
      expect(r.params).toMatchObject({ response: 'json', apikey: cs.apiKey, signatureversion: '3' });
      expect(r.params.expires).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\+0000$/);
      expect(r.raw).not.toContain(cs.secretKey);
    }
  });

  it('signs values that need encoding the way CloudStack checks them', async () => {
    await client().listVirtualMachines({ keyword: `web (prod) O'Brien ~ 50% + é*!` });
    expect(cs.rejected).toEqual([]);
    expect(cs.requests[0]!.params.keyword).toBe(`web (prod) O'Brien ~ 50% + é*!`);
  });

  it('fails with CONNECTOR.AUTH_FAILED, saying what to check, when the secret key is wrong', async () => {
    const wrong = 'not-the-secret-key-0123456789';
    const err = await failure(client({ secretKey: wrong }).listZones());
    expect(err.code).toBe('CONNECTOR.AUTH_FAILED');
    expect(err.message).toMatch(/API key and secret key/);
    expect(err.message).toMatch(/enabled/);
    expect(err.message).toMatch(/clock/);
    expect(err.details).toMatchObject({ command: 'listZones', errorcode: 401, httpStatus: 401, errortext: 'unable to verify user credentials and/or request signature' });
    expect(cs.rejected).toEqual([{ command: 'listZones', reason: 'signature mismatch' }]);
    expectNoSecrets(err, wrong, cs.secretKey, cs.apiKey);
  });

  it('fails with CONNECTOR.AUTH_FAILED when the clock is so far behind that requests arrive expired', async () => {
    const late = { now: () => new Date(Date.now() - 20 * 60_000) };
    const err = await failure(client({ clock: late }).listZones());
    expect(err.code).toBe('CONNECTOR.AUTH_FAILED');
    expect(err.message).toMatch(/clock is right/);
    expect(cs.rejected).toEqual([{ command: 'listZones', reason: 'request expired' }]);
  });

  it('pages with the default page size until count is reached, and includes other accounts and projects', async () => {
    const before = cs.vms.length;
    for (let i = 0; i < 1100; i++) cs.addVm({ name: `vm-${i}`, account: i % 2 ? 'customer' : 'admin' });
    cs.addVm({ name: 'project-vm', projectid: 'f00d0000-0000-4000-8000-000000000001', project: 'web' });
    try {
      const vms = await client().listVirtualMachines();
      expect(vms).toHaveLength(1101);
      expect(new Set(vms.map((v) => v.id)).size).toBe(1101);
      expect(vms.find((v) => v.name === 'project-vm')).toMatchObject({ projectid: 'f00d0000-0000-4000-8000-000000000001', project: 'web' });
      expect(vms.find((v) => v.name === 'vm-1')).toMatchObject({ account: 'customer', instancename: expect.stringMatching(/^i-2-\d+-VM$/), state: 'Running' });
      const own = cs.requests.filter((r) => r.params.projectid === undefined);
      expect(own.map((r) => [r.params.page, r.params.pagesize, r.params.listall])).toEqual([
        ['1', '500', 'true'],
        ['2', '500', 'true'],
        ['3', '500', 'true'],
      ]);
      expect(cs.requests.filter((r) => r.params.projectid === '-1')).toHaveLength(1);
    } finally {
      cs.vms.splice(before);
    }
  });

  it('stops paging at a short page, and asks for details', async () => {
    for (let i = 0; i < 7; i++) cs.addVm({ name: `small-${i}` });
    try {
      const vms = await client({ pageSize: 3 }).listVirtualMachines({ details: ['min', 'nics'] });
      expect(vms).toHaveLength(7);
      const own = cs.requests.filter((r) => r.params.projectid === undefined);
      expect(own.map((r) => r.params.page)).toEqual(['1', '2', '3']);
      expect(own[0]!.params.details).toBe('min,nics');
    } finally {
      cs.vms.length = 0;
    }
  });

  it('lists a VM’s volumes and their primary storage pool', async () => {
    const vm = cs.addVm({ name: 'db-01', state: 'Stopped' }, 2);
    const c = client();
    const vols = await c.listVolumes({ virtualmachineid: String(vm.id) });
    expect(vols.map((v) => [v.type, v.deviceid])).toEqual([
      ['ROOT', 0],
      ['DATADISK', 1],
      ['DATADISK', 2],
    ]);
    for (const v of vols) expect(v).toMatchObject({ virtualmachineid: vm.id, storageid: POOL_ID, path: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const pools = await c.listStoragePools({ id: vols[0]!.storageid! });
    expect(pools).toEqual([expect.objectContaining({ id: POOL_ID, type: 'NetworkFilesystem', path: '/export/primary', state: 'Up' })]);
    expect(cs.requests.find((r) => r.command === 'listVolumes')!.params).toMatchObject({ virtualmachineid: vm.id, listall: 'true' });
  });

  it('stops and starts a VM through async jobs, polling while they are pending', async () => {
    const vm = cs.addVm({ name: 'app-01' });
    const c = client();
    cs.jobPlans.push({ pendingPolls: 3 });
    const stopped = await c.stopVirtualMachine(String(vm.id));
    expect(stopped).toMatchObject({ id: vm.id, state: 'Stopped' });
    expect(cs.requests.filter((r) => r.command === 'queryAsyncJobResult')).toHaveLength(4);
    const started = await c.startVirtualMachine(String(vm.id));
    expect(started).toMatchObject({ id: vm.id, state: 'Running', hostname: 'kvmhost1' });
    await c.stopVirtualMachine(String(vm.id), { forced: true });
    expect(cs.requests.filter((r) => r.command === 'stopVirtualMachine').map((r) => r.params.forced)).toEqual([undefined, 'true']);
  });

  it("reports a failed job with CloudStack's errortext and errorcode", async () => {
    const vm = cs.addVm({ name: 'app-02', state: 'Stopped' });
    cs.jobPlans.push({ pendingPolls: 1, fail: { errorcode: 530, errortext: 'Unable to start VM app-02: insufficient capacity on host' } });
    const err = await failure(client().startVirtualMachine(String(vm.id)));
    expect(err.code).toBe('CONNECTOR.API_ERROR');
    expect(err.message).toContain('Unable to start VM app-02: insufficient capacity on host');
    expect(err.details).toMatchObject({ command: 'startVirtualMachine', errorcode: 530, jobid: expect.any(String) });
  });

  it('gives up waiting for a job after the bounded wait, with CONNECTOR.JOB_TIMEOUT naming the job', async () => {
    const vm = cs.addVm({ name: 'app-03' });
    cs.jobPlans.push({ pendingPolls: 1_000_000 });
    const err = await failure(client({ jobTimeoutMs: 300 }).stopVirtualMachine(String(vm.id)));
    expect(err.code).toBe('CONNECTOR.JOB_TIMEOUT');
    expect(err.message).toContain(String(err.details?.jobid));
    expect(cs.requests.filter((r) => r.command === 'queryAsyncJobResult').length).toBeGreaterThan(2);
  });

  it('never shows the keys when the client is inspected or serialised', async () => {
    const { inspect } = await import('node:util');
    const c = client();
    for (const shown of [inspect(c, { depth: 5, showHidden: true }), JSON.stringify(c)]) {
      expect(shown).not.toContain(cs.secretKey);
      expect(shown).not.toContain(cs.apiKey);
    }
  });

  it('cancels polling when the caller aborts', async () => {
    const vm = cs.addVm({ name: 'app-04' });
    cs.jobPlans.push({ pendingPolls: 1_000_000 });
    const ac = new AbortController();
    // Long poll intervals: the abort lands while the client waits between two polls.
    setTimeout(() => ac.abort(new Error('canceled by test')), 200);
    const started = Date.now();
    await expect(client({ jobPollMs: 10_000 }).stopVirtualMachine(String(vm.id), { signal: ac.signal })).rejects.toThrow('canceled by test');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("maps CloudStack's error answers: 431 and 530 to CONNECTOR.API_ERROR, 432 to CONNECTOR.AUTH_FAILED", async () => {
    const c = client();
    const param = await failure(c.startVirtualMachine('nope'));
    expect(param.code).toBe('CONNECTOR.API_ERROR');
    expect(param.details).toMatchObject({ httpStatus: 431, errorcode: 431, cserrorcode: 4350 });
    expect(param.message).toMatch(/Invalid parameter id value=nope/);

    cs.failNext('listZones', { errorcode: 530, errortext: 'Internal error executing command, please contact your system administrator' });
    const internal = await failure(c.listZones());
    expect(internal.code).toBe('CONNECTOR.API_ERROR');
    expect(internal.details).toMatchObject({ httpStatus: 530, errorcode: 530, errortext: 'Internal error executing command, please contact your system administrator' });

    cs.denied.add('listStoragePools');
    try {
      const denied = await failure(c.listStoragePools());
      expect(denied.code).toBe('CONNECTOR.AUTH_FAILED');
      expect(denied.message).toMatch(/role that allows listStoragePools/);
      expect(denied.details).toMatchObject({ errorcode: 432 });
    } finally {
      cs.denied.clear();
    }
  });

  it('refuses a page size CloudStack would refuse, with its errortext', async () => {
    const err = await failure(client({ pageSize: 1000 }).listZones());
    expect(err.code).toBe('CONNECTOR.API_ERROR');
    expect(err.message).toContain("Page size can't exceed max allowed page size value: 500");
  });

  it('tells a non-CloudStack answer and a proxy without its backend apart', async () => {
    cs.rawNext('listZones', { status: 200, contentType: 'text/html', body: '<html>login</html>' });
    const html = await failure(client().listZones());
    expect(html.code).toBe('CONNECTOR.API_ERROR');
    expect(html.message).toMatch(/not CloudStack JSON.*\/client\/api/);

    cs.rawNext('listZones', { status: 502, contentType: 'text/html', body: '<html>Bad Gateway</html>' });
    const proxy = await failure(client().listZones());
    expect(proxy.code).toBe('CONNECTOR.UNREACHABLE');
    expect(proxy.message).toMatch(/502/);

    const wrongPath = await failure(client({ endpointUrl: cs.url.replace('/client/api', '/client') }).listZones());
    expect(wrongPath.code).toBe('CONNECTOR.API_ERROR');
    expect(wrongPath.details).toMatchObject({ httpStatus: 404 });
  });

  it('fails with CONNECTOR.UNREACHABLE saying what was tried: refused port, timeout', async () => {
    const port = await closedPort();
    const refused = await failure(client({ endpointUrl: `http://127.0.0.1:${port}/client/api` }).listZones());
    expect(refused.code).toBe('CONNECTOR.UNREACHABLE');
    expect(refused.message).toContain(`POST http://127.0.0.1:${port}/client/api (listZones)`);
    expect(refused.message).toMatch(/connection was refused/);
    expect(refused.details).toMatchObject({ cause: 'ECONNREFUSED', endpoint: `http://127.0.0.1:${port}/client/api` });
    expectNoSecrets(refused, cs.secretKey, cs.apiKey);

    cs.delayNext('listZones', 1500);
    const slow = await failure(client({ timeoutMs: 300 }).listZones());
    expect(slow.code).toBe('CONNECTOR.UNREACHABLE');
    expect(slow.message).toContain('no answer within 300 ms');
    expect(slow.details).toMatchObject({ timeoutMs: 300 });
  });

  it('uses the 30 s request timeout, 5 min expiry and 15 min job wait by default', () => {
    const c = client() as unknown as { o: { timeoutMs: number; expiresInSeconds: number; jobTimeoutMs: number; pageSize: number; tls: { verify: boolean } } };
    expect(c.o).toMatchObject({ timeoutMs: 30_000, expiresInSeconds: 300, jobTimeoutMs: 900_000, pageSize: 500, tls: { verify: true } });
  });
});

describe('CloudStack client over https', () => {
  let cs: CloudStackTestServer;
  const certs = makeTestCertificates();
  const client = (o: Partial<CloudStackClientOptions> = {}) => new CloudStackClient({ endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey, name: 'acs-tls', ...o });

  beforeAll(async () => {
    cs = await startCloudStackServer({ tls: { cert: certs.certPem, key: certs.keyPem } });
  });
  afterAll(async () => {
    await cs?.close();
  });

  it('verifies the certificate by default and says to configure the CA', async () => {
    const err = await failure(client().listZones());
    expect(err.code).toBe('CONNECTOR.UNREACHABLE');
    expect(err.message).toMatch(/caCertificate/);
    expect(err.details).toMatchObject({ cause: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/) });
    expect(cs.requests).toEqual([]);
  });

  it('connects with the CA configured', async () => {
    const zones = await client({ tls: { ca: certs.caPem } }).listZones();
    expect(zones).toHaveLength(1);
    expect(cs.rejected).toEqual([]);
  });

  it('checks the host name against the certificate even with the CA configured', async () => {
    // The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
    const other = await startCloudStackServer({ tls: { cert: certs.certPem, key: certs.keyPem }, host: '127.0.0.2', apiKey: cs.apiKey, secretKey: cs.secretKey });
    try {
      const err = await failure(client({ endpointUrl: other.url, tls: { ca: certs.caPem } }).listZones());
      expect(err.code).toBe('CONNECTOR.UNREACHABLE');
      expect(err.details).toMatchObject({ cause: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      expect(err.message).toMatch(/does not name the host/);
    } finally {
      await other.close();
    }
  });

  it('connects without verification only when verification is switched off', async () => {
    expect(await client({ tls: { verify: false } }).listZones()).toHaveLength(1);
  });
});

describe('the CloudStack test server checks signatures like CloudStack', () => {
  // The developer guide's keys: its signed listUsers request must pass the server's own check.
  const apiKey = 'plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg';
  const secretKey = 'VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ';
  let cs: CloudStackTestServer;
  beforeAll(async () => {
    cs = await startCloudStackServer({ apiKey, secretKey });
  });
  afterAll(async () => {
    await cs?.close();
  });
  const get = async (query: string) => {
    const res = await fetch(`${cs.url}?${query}`);
    return { status: res.status, body: (await res.json()) as Record<string, Record<string, unknown>> };
  };

  it("accepts the guide's signed request as it is printed there", async () => {
    const res = await get(`apikey=${apiKey}&command=listUsers&response=json&signature=TTpdDq%2F7j%2FJ58XCRHomKoQXEQds%3D`);
    expect(cs.rejected).toEqual([]);
    // Signature verified; listUsers itself is not served here.
    expect(res.status).toBe(432);
    expect(cs.requests.map((r) => r.command)).toEqual(['listUsers']);
  });

  it('refuses a changed value, a missing signature and an expiry too far ahead with CloudStack’s 401 answer', async () => {
    const tampered = await get(`apikey=${apiKey}&command=listUsers&response=xml&signature=TTpdDq%2F7j%2FJ58XCRHomKoQXEQds%3D`);
    expect(tampered).toEqual({ status: 401, body: { listusersresponse: { uuidList: [], errorcode: 401, errortext: 'unable to verify user credentials and/or request signature' } } });
    expect((await get(`apikey=${apiKey}&command=listUsers&response=json`)).status).toBe(401);
    const far = new CloudStackClient({ endpointUrl: cs.url, apiKey, secretKey, expiresInSeconds: 3600 });
    expect((await failure(far.listZones())).code).toBe('CONNECTOR.AUTH_FAILED');
    expect(cs.rejected.map((r) => r.reason)).toEqual(['signature mismatch', 'missing signature or apiKey', 'expires too far ahead']);
  });
});
