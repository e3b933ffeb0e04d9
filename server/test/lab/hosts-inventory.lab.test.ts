/**
 * Hosts, SSH keys and the VM inventory through the real API of a real server (SQLite), against
 * the real KVM lab (sshd on 127.0.0.1:2222, session libvirt per host user, real qemu-img).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Virsh } from '../../src/adapters/libvirt/virsh.js';
import { canaryPresent, lab, labSkipReason, runAsHostUser, sshKeygenFingerprint, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { systemClock } from '../../src/clock.js';
import { HostRepository, type HostRecord } from '../../src/hosts/host.repository.js';
import { InventoryService, type HostAccess } from '../../src/virtual-machines/inventory.service.js';
import { VmRepository } from '../../src/virtual-machines/vm.repository.js';
import { freePort } from '../support/ports.js';
import { authorize, unauthorize } from '../support/lab-keys.js';
import { startTestServer, type ApiResponse, type TestServer } from '../support/server.js';

const STATES = ['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'];
const EVIL = 'evil$(touch PWNED);\'"`id` x';
const CONNECT_TIMEOUT_S = 3;

/** `virsh list --all` run locally as the host user (no SSH, no shell): uuid → { name, state }. */
function localListing(h: LabHost): Map<string, { name: string; state: string }> {
  const v = (...args: string[]) => {
    const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, ...args]);
    if (r.status !== 0) throw new Error(`local virsh ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout.split('\n').filter((x) => x.trim() !== '');
  };
  const uuids = v('list', '--all', '--uuid');
  const names = v('list', '--all', '--name');
  const stateRe = new RegExp(`^\\s*(\\S+)\\s+(.*?)\\s+(${STATES.join('|')})\\s*$`);
  const stateByName = new Map<string, string>();
  for (const row of v('list', '--all').slice(2)) {
    const m = stateRe.exec(row);
    if (!m) throw new Error(`cannot parse virsh list row ${JSON.stringify(row)}`);
    stateByName.set(m[2]!, m[3]!);
  }
  // --uuid and --name list in the same order.
  const out = new Map<string, { name: string; state: string }>();
  uuids.forEach((u, i) => out.set(u, { name: names[i]!, state: stateByName.get(names[i]!) ?? '?' }));
  return out;
}



/** A TCP server that accepts and never says anything: an sshd that hangs. */
function silentServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        port: (srv.address() as net.AddressInfo).port,
        close: () => {
          for (const s of sockets) s.destroy();
          srv.close();
        },
      }),
    ),
  );
}

const expectProblem = (res: ApiResponse, status: number, code: string) => {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe(code);
};

describe.skipIf(!lab)(`hosts, SSH keys and VM inventory through the API against the KVM lab${labSkipReason}`, () => {
  const l = lab!;
  let t: TestServer;
  let poolId: string;
  const hostIds: Record<string, string> = {};
  const addedKeys: string[] = [];
  const hostKeyFp = () => sshKeygenFingerprint(l.hostKeyPath);
  const labHost = (name: string) => l.hosts.find((h) => h.name === name)!;

  const register = async (name: string, body: Record<string, unknown> = {}) => {
    const res = await t.api('POST', '/api/v2/hosts', { body: { name, address: l.sshHost, sshPort: l.sshPort, username: name, libvirtUri: 'qemu:///session', poolId, ...body } });
    expect(res.status, res.text).toBe(201);
    hostIds[name] = res.body.id;
    return res.body as HostRecord;
  };
  const vmsOf = async (hostId: string, query = '') => {
    const res = await t.api('GET', `/api/v2/virtual-machines?hostId=${hostId}&limit=500&includeSystem=true${query}`);
    expect(res.status, res.text).toBe(200);
    return res.body.items as Array<Record<string, any>>;
  };

  beforeAll(async () => {
    expect(canaryPresent(l)).toEqual([]);
    t = await startTestServer('sqlite', { BACKROLL_SSH_CONNECT_TIMEOUT_SECONDS: String(CONNECT_TIMEOUT_S) });
    const storageDir = fs.mkdtempSync(path.join(t.dataDir, 'storage-'));
    const storage = await t.api('POST', '/api/v2/storages', { body: { name: 'lab', path: storageDir } });
    const policy = await t.api('POST', '/api/v2/policies', { body: { name: 'lab', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, enabled: false, storageId: storage.body.id } });
    expect(policy.status, policy.text).toBe(201);
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'lab', policyId: policy.body.id } });
    expect(pool.status, pool.text).toBe(201);
    poolId = pool.body.id;
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    unauthorize(l.hosts.map((h) => h.home), addedKeys);
    expect(canaryPresent(l)).toEqual([]);
  });

  it('generates its key pairs on first start and serves them with the command that authorises them', async () => {
    const res = await t.api('GET', '/api/v2/ssh/public-keys', { token: t.viewerToken });
    expect(res.status, res.text).toBe(200);
    const dir = path.join(t.dataDir, 'ssh');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'id_ed25519')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'id_rsa')).mode & 0o777).toBe(0o600);
    const host = os.hostname();
    expect(res.body.keys).toEqual([
      { algorithm: 'ssh-ed25519', fingerprint: sshKeygenFingerprint(path.join(dir, 'id_ed25519.pub')), authorizedKeysLine: expect.stringMatching(new RegExp(`^ssh-ed25519 \\S+ backroll@${host}$`)) },
      { algorithm: 'ssh-rsa', fingerprint: sshKeygenFingerprint(path.join(dir, 'id_rsa.pub')), authorizedKeysLine: expect.stringMatching(new RegExp(`^ssh-rsa \\S+ backroll@${host}$`)) },
    ]);
    expect(res.body.authorizedKeys).toBe(res.body.keys.map((k: { authorizedKeysLine: string }) => `${k.authorizedKeysLine}\n`).join(''));
    expect(res.body.installCommand).toContain(`'${res.body.keys[0].authorizedKeysLine}'`);
  });

  it('registers the lab hosts; a key not yet authorised: 409 HOST.AUTH_FAILED carrying the keys to install', async () => {
    for (const h of l.hosts) await register(h.name);
    const keys = (await t.api('GET', '/api/v2/ssh/public-keys')).body;
    const res = await t.api('POST', `/api/v2/hosts/${hostIds.kvmhost2}/connect`);
    expectProblem(res, 409, 'HOST.AUTH_FAILED');
    expect(res.body.publicKeys).toEqual(keys.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine));
    expect(res.body.installCommand).toBe(keys.installCommand);
    expect(res.body.detail).toMatch(/kvmhost2.*authorized_keys/);
    const host = (await t.api('GET', `/api/v2/hosts/${hostIds.kvmhost2}`)).body;
    expect(host.connection).toMatchObject({ state: 'failed', errorCode: 'HOST.AUTH_FAILED', message: res.body.detail, lastSeenAt: null });
    expect(host.hostKeyFingerprint).toBeNull(); // nothing pinned by a failed login
  });

  it('authorised with authorize-key.sh: connect pins the host key on first use (= ssh-keygen -lf) and checks libvirt', async () => {
    const lines = (await t.api('GET', '/api/v2/ssh/public-keys')).body.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine);
    addedKeys.push(...lines);
    authorize(lines);
    for (const h of l.hosts) {
      const res = await t.api('POST', `/api/v2/hosts/${hostIds[h.name]}/connect`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.hostKeyFingerprint).toBe(hostKeyFp());
      expect(res.body.connection).toMatchObject({ state: 'connected', errorCode: null, message: expect.stringMatching(/^connected: libvirt \d+\.\d+.*QEMU/) });
      expect(Date.parse(res.body.connection.lastSeenAt)).toBeGreaterThan(Date.now() - 60_000);
    }
    const row = await t.server.db.selectFrom('hosts').select(['host_key']).where('id', '=', hostIds.kvmhost1!).executeTakeFirstOrThrow();
    expect(row.host_key).toBe(fs.readFileSync(l.hostKeyPath, 'utf8').trim().split(/\s+/).slice(0, 2).join(' '));
  });

  it('refresh: the inventory equals `virsh list --all` on each host (uuids, names, states), hostile name included', async () => {
    for (let attempt = 1; ; attempt++) {
      // Other suites may define or undefine domains meanwhile: compare only a stable listing.
      const before = Object.fromEntries(l.hosts.map((h) => [h.name, localListing(h)]));
      const res = await t.api('POST', '/api/v2/virtual-machines/refresh');
      expect(res.status, res.text).toBe(200);
      const after = Object.fromEntries(l.hosts.map((h) => [h.name, localListing(h)]));
      try {
        expect(res.body.hosts.map((s: { hostName: string; ok: boolean; error: unknown }) => [s.hostName, s.ok, s.error])).toEqual(l.hosts.map((h) => [h.name, true, null]));
        for (const h of l.hosts) {
          expect([...after[h.name]!.entries()]).toEqual([...before[h.name]!.entries()]);
          const listed = (await vmsOf(hostIds[h.name]!, '&present=true')).map((v) => [v.uuid, { name: v.name, state: v.state }]);
          expect(new Map(listed as Array<[string, { name: string; state: string }]>)).toEqual(before[h.name]);
        }
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    const all = await vmsOf(hostIds.kvmhost1!);
    expect(all.map((v) => v.name)).toContain(EVIL);
    expect(canaryPresent(l)).toEqual([]);
  }, 120_000);

  it('disks, formats, backing files and sizes match lab.json (qemu-img for shut-off VMs too); host lastSeenAt is shown', async () => {
    const check = async () => {
      for (const h of l.hosts) {
        const listed = await vmsOf(hostIds[h.name]!, '&present=true');
        for (const vm of h.vms) {
          const v = listed.find((x) => x.name === vm.name);
          expect(v, `${h.name}/${vm.name}`).toBeDefined();
          expect(v!).toMatchObject({ state: vm.state, vcpus: 1, memoryBytes: 64 * 1024 * 1024, cloudStackManaged: false, systemVm: false, present: true });
          expect(v!.host).toMatchObject({ id: hostIds[h.name], name: h.name, poolId, connectionState: 'connected', lastSeenAt: expect.any(String) });
          expect(
            v!.disks.map((d: Record<string, any>) => ({ target: d.target, type: d.type, path: d.path, format: d.format, size: d.virtualSizeBytes, backing: d.backingChain.map((b: { path: string }) => b.path), src: d.backingChainSource, problem: d.problem })),
            `${h.name}/${vm.name}`,
          ).toEqual(
            (vm.disks as unknown as Array<{ target: string; path: string; format: string; backing: string | null; sizeBytes: number }>).map((d) => ({
              target: d.target,
              type: 'file',
              path: d.path,
              format: d.format,
              size: d.sizeBytes,
              backing: d.backing ? [d.backing] : [],
              src: 'qemu-img',
              problem: null,
            })),
          );
          for (const d of v!.disks) expect(d.actualSizeBytes).toBeGreaterThan(0);
        }
      }
    };
    // Backup and restore suites running meanwhile put snapshot overlays on lab VMs or stop them for a
    // while: refresh again until the lab is at rest.
    for (let attempt = 1; ; attempt++) {
      try {
        await check();
        break;
      } catch (e) {
        if (attempt >= 8) throw e;
        console.warn(`lab not at rest (attempt ${attempt}): ${(e as Error).message.split('\n')[0]}`);
        await new Promise((r) => setTimeout(r, 3000));
        for (const h of l.hosts) await t.api('POST', `/api/v2/hosts/${hostIds[h.name]}/refresh`);
      }
    }
  }, 90_000);

  it('lists from the cache with filters; one VM by id; unknown ids are 404', async () => {
    const byName = await t.api('GET', `/api/v2/virtual-machines?name=${encodeURIComponent('$(TOUCH pwned)')}`);
    expect(byName.body.items.map((v: { name: string }) => v.name)).toEqual([EVIL]);
    const running = await t.api('GET', `/api/v2/virtual-machines?poolId=${poolId}&state=${encodeURIComponent('shut off')}&limit=500`);
    expect(running.body.items.map((v: { name: string }) => v.name).sort()).toEqual(expect.arrayContaining(l.hosts.flatMap((h) => h.vms.filter((vm) => vm.state === 'shut off').map((vm) => vm.name))));
    const one = await t.api('GET', `/api/v2/virtual-machines/${byName.body.items[0].id}`, { token: t.viewerToken });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ name: EVIL, hostId: hostIds.kvmhost1 });
    expectProblem(await t.api('GET', `/api/v2/virtual-machines/${randomUUID()}`), 404, 'VM.NOT_FOUND');
    expectProblem(await t.api('POST', `/api/v2/hosts/${randomUUID()}/refresh`), 404, 'HOST.NOT_FOUND');
    expectProblem(await t.api('GET', '/api/v2/virtual-machines?state=weird'), 400, 'REQUEST.INVALID');
    expectProblem(await t.api('POST', '/api/v2/virtual-machines/refresh', { token: t.viewerToken }), 403, 'AUTH.ADMIN_REQUIRED');
  });

  it('refresh of one host: nothing changed the second time', async () => {
    const res = await t.api('POST', `/api/v2/hosts/${hostIds.kvmhost2}/refresh`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.hosts).toEqual([expect.objectContaining({ hostId: hostIds.kvmhost2, ok: true, found: labHost('kvmhost2').vms.length, error: null })]);
    expect(res.body.hosts[0].added).toBe(0);
  });

  it('a wrong user: 409 HOST.AUTH_FAILED that says the user may not exist', async () => {
    await register('lab-nouser', { username: 'nosuchuser' });
    const res = await t.api('POST', `/api/v2/hosts/${hostIds['lab-nouser']}/connect`);
    expectProblem(res, 409, 'HOST.AUTH_FAILED');
    expect(res.body.detail).toMatch(/user "nosuchuser" does not exist/);
  });

  it('an unreachable host (closed loopback port): 503 HOST.UNREACHABLE at once', async () => {
    await register('lab-closed', { sshPort: await freePort(), username: 'kvmhost1' });
    const t0 = Date.now();
    const res = await t.api('POST', `/api/v2/hosts/${hostIds['lab-closed']}/connect`);
    expectProblem(res, 503, 'HOST.UNREACHABLE');
    expect(res.body.detail).toMatch(/ECONNREFUSED.*sshd listens/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a host that accepts and never answers: 503 HOST.TIMEOUT within the configured timeout', async () => {
    const silent = await silentServer();
    try {
      await register('lab-hang', { sshPort: silent.port, username: 'kvmhost1' });
      const t0 = Date.now();
      const res = await t.api('POST', `/api/v2/hosts/${hostIds['lab-hang']}/connect`);
      expectProblem(res, 503, 'HOST.TIMEOUT');
      expect(res.body.detail).toContain(`${CONNECT_TIMEOUT_S * 1000} ms`);
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_S * 1000 - 100);
      expect(took).toBeLessThan(CONNECT_TIMEOUT_S * 1000 + 2500);
    } finally {
      silent.close();
    }
  });

  it('libvirt not reachable at the URI (qemu:///system as kvmhost1): 503 HOST.LIBVIRT_DOWN with what virsh said', async () => {
    await register('lab-system-uri', { username: 'kvmhost1', libvirtUri: 'qemu:///system' });
    const res = await t.api('POST', `/api/v2/hosts/${hostIds['lab-system-uri']}/connect`);
    expectProblem(res, 503, 'HOST.LIBVIRT_DOWN');
    expect(res.body.detail).toMatch(/qemu:\/\/\/system: failed to connect to the hypervisor/);
    expect(res.body.detail).toMatch(/user "kvmhost1" may use qemu:\/\/\/system/);
    expect(res.body.stderr).toMatch(/error: failed to connect to the hypervisor/);
    // SSH itself worked: the host key was pinned.
    expect((await t.api('GET', `/api/v2/hosts/${hostIds['lab-system-uri']}`)).body.hostKeyFingerprint).toBe(hostKeyFp());
  });

  it('refresh of every host: each broken host fails with its own code, the lab hosts are inventoried', async () => {
    const silent = await silentServer();
    try {
      await t.api('PATCH', `/api/v2/hosts/${hostIds['lab-hang']}`, { body: { sshPort: silent.port } });
      const res = await t.api('POST', '/api/v2/virtual-machines/refresh');
      expect(res.status, res.text).toBe(200);
      const by = Object.fromEntries(res.body.hosts.map((s: { hostName: string; ok: boolean; error: { code: string } | null }) => [s.hostName, s.error?.code ?? 'ok']));
      expect(by).toEqual({
        kvmhost1: 'ok',
        kvmhost2: 'ok',
        'lab-nouser': 'HOST.AUTH_FAILED',
        'lab-closed': 'HOST.UNREACHABLE',
        'lab-hang': 'HOST.TIMEOUT',
        'lab-system-uri': 'HOST.LIBVIRT_DOWN',
      });
      const hosts = (await t.api('GET', '/api/v2/hosts?limit=500')).body.items;
      for (const h of hosts) expect([h.name, h.connection.state]).toEqual([h.name, by[h.name] === 'ok' ? 'connected' : 'failed']);
    } finally {
      silent.close();
    }
  }, 60_000);

  it('a changed host key is refused until an admin re-trusts the key the host presents', async () => {
    const id = hostIds.kvmhost1!;
    const other = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
    await t.server.db.updateTable('hosts').set({ host_key_fingerprint: other }).where('id', '=', id).execute();

    const res = await t.api('POST', `/api/v2/hosts/${id}/connect`);
    expectProblem(res, 409, 'HOST.KEY_CHANGED');
    expect(res.body).toMatchObject({ pinnedFingerprint: other, presentedFingerprint: hostKeyFp() });
    expect(res.body.detail).toContain(`trust-host-key {"fingerprint": "${hostKeyFp()}"}`);
    expect((await t.api('GET', `/api/v2/hosts/${id}`)).body.connection).toMatchObject({ state: 'failed', errorCode: 'HOST.KEY_CHANGED' });
    // Its inventory cannot be refreshed either, and its VMs stay as they were.
    const refreshed = await t.api('POST', `/api/v2/hosts/${id}/refresh`);
    expect(refreshed.body.hosts[0]).toMatchObject({ ok: false, error: { code: 'HOST.KEY_CHANGED' }, disappeared: 0 });
    expect((await vmsOf(id, '&present=true')).length).toBeGreaterThanOrEqual(labHost('kvmhost1').vms.length);

    expectProblem(await t.api('POST', `/api/v2/hosts/${id}/trust-host-key`, { body: { fingerprint: 'aa:bb:cc' } }), 400, 'HOST.FINGERPRINT_INVALID');
    const wrong = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
    const refused = await t.api('POST', `/api/v2/hosts/${id}/trust-host-key`, { body: { fingerprint: wrong } });
    expectProblem(refused, 409, 'HOST.FINGERPRINT_MISMATCH');
    expect(refused.body).toMatchObject({ expectedFingerprint: wrong, presentedFingerprint: hostKeyFp() });
    expect((await t.api('GET', `/api/v2/hosts/${id}`)).body.hostKeyFingerprint).toBe(other); // nothing changed
    expectProblem(await t.api('POST', `/api/v2/hosts/${id}/trust-host-key`, { body: { fingerprint: hostKeyFp() }, token: t.viewerToken }), 403, 'AUTH.ADMIN_REQUIRED');

    const trusted = await t.api('POST', `/api/v2/hosts/${id}/trust-host-key`, { body: { fingerprint: hostKeyFp() } });
    expect(trusted.status, trusted.text).toBe(200);
    expect(trusted.body).toMatchObject({ hostKeyFingerprint: hostKeyFp(), connection: { state: 'connected', errorCode: null } });
    expect((await t.api('POST', `/api/v2/hosts/${id}/refresh`)).body.hosts[0]).toMatchObject({ ok: true });
  });

  it('a new address forgets the pin and the pooled connection; the key is pinned again on first use', async () => {
    const id = hostIds.kvmhost2!;
    // A rename keeps the connection (and the fields a PATCH leaves out).
    const renamed = await t.api('PATCH', `/api/v2/hosts/${id}`, { body: { name: 'kvmhost2-renamed' } });
    expect(renamed.body).toMatchObject({ sshPort: l.sshPort, username: 'kvmhost2', libvirtUri: 'qemu:///session', hostKeyFingerprint: hostKeyFp(), connection: { state: 'connected' } });
    expect(t.server.services.hostConnections.pool.stats(id)?.connected).toBe(true);
    const moved = await t.api('PATCH', `/api/v2/hosts/${id}`, { body: { address: 'localhost' } });
    expect(moved.body).toMatchObject({ hostKeyFingerprint: null, connection: { state: 'unknown' } });
    expect(t.server.services.hostConnections.pool.stats(id)).toBeUndefined();
    const res = await t.api('POST', `/api/v2/hosts/${id}/connect`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.hostKeyFingerprint).toBe(hostKeyFp());
  });

  it('a domain undefined between listing and reading is skipped (real virsh over SSH, runner wrapped)', async () => {
    const h = labHost('kvmhost2');
    const name = `backroll-vanishing-${randomBytes(4).toString('hex')}`;
    const uuid = randomUUID();
    const xmlFile = path.join(h.home, `${name}.xml`);
    fs.writeFileSync(xmlFile, `<domain type='${l.domainType}'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`);
    fs.chmodSync(xmlFile, 0o644);
    try {
      const def = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'define', xmlFile]);
      expect(def.status, def.stderr).toBe(0);
      const connections = t.server.services.hostConnections;
      let undefinedIt = false;
      const access: HostAccess = {
        virsh: (host: HostRecord) =>
          new Virsh(async (argv, o) => {
            if (!undefinedIt && argv.includes(uuid)) {
              undefinedIt = true;
              const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'undefine', '--domain', uuid]);
              if (r.status !== 0) throw new Error(`undefine failed: ${r.stderr}`);
            }
            return connections.pool.exec(host.id, argv, o);
          }, host.libvirtUri),
        qemuImg: (hostId) => connections.qemuImg(hostId),
        recordSuccess: (hostId) => connections.recordSuccess(hostId),
        recordFailure: (host, err) => connections.recordFailure(host, err),
      };
      const inventory = new InventoryService({ vms: new VmRepository(t.server.db), hosts: new HostRepository(t.server.db), access, clock: systemClock, concurrencyPerHost: 4 });
      const s = (await inventory.refreshHost(hostIds.kvmhost2!)).hosts[0]!;
      expect(undefinedIt).toBe(true);
      expect(s).toMatchObject({ ok: true, vanished: 1, vmErrors: [], error: null });
      expect((await vmsOf(hostIds.kvmhost2!)).map((v) => v.uuid)).not.toContain(uuid);
    } finally {
      runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'undefine', '--domain', uuid]);
      fs.rmSync(xmlFile, { force: true });
    }
  });

  it('the SSH connections were reused: one per host', () => {
    const stats = t.server.services.hostConnections.pool.stats(hostIds.kvmhost1!);
    // kvmhost1: reset by the tampered-pin connect and by trust-host-key; pooled since.
    expect(stats?.connectionsOpened).toBe(1);
  });
});

describe.skipIf(!lab)(`periodic inventory in the worker role, fresh data dir${labSkipReason}`, () => {
  const l = lab!;
  let t: TestServer;
  let lines: string[] = [];

  beforeAll(async () => {
    t = await startTestServer('sqlite', { BACKROLL_INVENTORY_INTERVAL_SECONDS: '1', BACKROLL_SSH_CONNECT_TIMEOUT_SECONDS: '5' });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    unauthorize(l.hosts.map((h) => h.home), lines);
  });

  it('refreshes on its own: records AUTH_FAILED while its key is not authorised, inventories once it is', async () => {
    const storage = await t.api('POST', '/api/v2/storages', { body: { name: 's', path: fs.mkdtempSync(path.join(t.dataDir, 'st-')) } });
    const policy = await t.api('POST', '/api/v2/policies', { body: { name: 'p', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, enabled: false, storageId: storage.body.id } });
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'p', policyId: policy.body.id } });
    const h = l.hosts[0]!;
    const host = await t.api('POST', '/api/v2/hosts', { body: { name: h.name, address: l.sshHost, sshPort: l.sshPort, username: h.user, libvirtUri: h.libvirtUri, poolId: pool.body.id } });
    expect(host.status, host.text).toBe(201);
    const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
      for (let i = 0; i < 100; i++) {
        const v = await probe();
        if (v !== undefined) return v;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    await waitFor('AUTH_FAILED on the host', async () => {
      const c = (await t.api('GET', `/api/v2/hosts/${host.body.id}`)).body.connection;
      return c.errorCode === 'HOST.AUTH_FAILED' ? c : undefined;
    });
    lines = (await t.api('GET', '/api/v2/ssh/public-keys')).body.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine);
    authorize(lines);
    const vms = await waitFor('VMs in the inventory', async () => {
      const items = (await t.api('GET', `/api/v2/virtual-machines?hostId=${host.body.id}&limit=500`)).body.items as Array<{ name: string }>;
      return items.length >= h.vms.length ? items : undefined;
    });
    expect(vms.map((v) => v.name)).toEqual(expect.arrayContaining(h.vms.map((v) => v.name)));
    expect((await t.api('GET', `/api/v2/hosts/${host.body.id}`)).body).toMatchObject({ hostKeyFingerprint: sshKeygenFingerprint(l.hostKeyPath), connection: { state: 'connected' } });
    expect(canaryPresent(l)).toEqual([]);
  }, 60_000);
});
