/**
 * The inventory cache on every database (SQLite, PostgreSQL, MariaDB): the repository, and the
 * inventory service against scripted hosts (virsh and qemu-img runners injected, no SSH).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Virsh, type CommandResult } from '../adapters/libvirt/virsh.js';
import { QemuImg } from '../adapters/qemu-img/qemu-img.js';
import { sshError, SshErrorCode } from '../adapters/ssh/ssh-errors.js';
import type { Clock } from '../clock.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { explainHostError } from '../hosts/connection-problems.js';
import { HostRepository, type HostRecord } from '../hosts/host.repository.js';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../test/support/databases.js';
import { buildDisk, type DiscoveredVm } from './inventory.rules.js';
import { InventoryService, type HostAccess } from './inventory.service.js';
import { CloudStackClient } from '../adapters/cloudstack/cloudstack-client.js';
import { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { startCloudStackServer, storagePoolShape, type CloudStackTestServer } from '../../test/support/cloudstack-server.js';
import { VmRepository } from './vm.repository.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

const EVIL = 'evil$(touch PWNED);\'"`id` x';
const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string): CommandResult => ({ code: 1, stdout: '', stderr });
const uuidOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

function domainXml(uuid: string, name: string, opts: { memKiB?: number; cloudStack?: boolean; disk?: string } = {}): string {
  return `<domain type='kvm'><name>${xmlEscape(name)}</name><uuid>${uuid}</uuid><memory unit='KiB'>${opts.memKiB ?? 65536}</memory><vcpu>2</vcpu>
${opts.cloudStack ? "<sysinfo type='smbios'><system><entry name='product'>CloudStack KVM Hypervisor</entry></system></sysinfo>" : ''}
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${opts.disk ?? `/vms/${uuid}.qcow2`}'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='hdc' bus='ide'/></disk></devices></domain>`;
}

interface FakeDomain {
  name: string;
  state: string;
  xml?: string;
  cloudStack?: boolean;
  memKiB?: number;
}

/** A scripted host: its domains by uuid; `before` can change them when a command arrives. */
function fakeHost(domains: Map<string, FakeDomain>, opts: { down?: string; latencyMs?: number; before?: (argv: readonly string[]) => void | Promise<void> } = {}) {
  let inFlight = 0;
  let maxInFlight = 0;
  const calls: string[][] = [];
  const run = async (argv: readonly string[]): Promise<CommandResult> => {
    calls.push([...argv]);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await new Promise((r) => setTimeout(r, opts.latencyMs ?? 0));
      await opts.before?.(argv);
      if (argv[2] === 'qemu-img') {
        const path = argv[argv.length - 1]!;
        if (path.includes('missing')) return fail(`qemu-img: Could not open '${path}': Could not open '${path}': No such file or directory`);
        return ok(JSON.stringify([{ filename: path, format: 'qcow2', 'virtual-size': 64 << 20, 'actual-size': 4096 }]));
      }
      if (opts.down) return fail(opts.down);
      const args = argv.slice(5);
      if (args[0] === 'list') return ok([...domains.keys()].map((u) => `${u}\n`).join('') + '\n');
      const d = domains.get(args[args.length - 1]!);
      if (!d) return fail(`error: failed to get domain '${args[args.length - 1]}'\n`);
      if (args[0] === 'dumpxml') return ok(d.xml ?? domainXml(args[args.length - 1]!, d.name, d));
      if (args[0] === 'domstate') return ok(`${d.state}\n\n`);
      return fail('error: unexpected');
    } finally {
      inFlight--;
    }
  };
  return { run, calls, maxInFlight: () => maxInFlight };
}

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  describe.skipIf(reason !== null)(`VM inventory cache on ${dialect}${reason ? ` (skipped: ${reason})` : ''}`, () => {
    let tdb: TestDatabase;
    let db: Db;
    let vms: VmRepository;
    let hostRepo: HostRepository;
    let poolA: string;
    let poolB: string;
    const hostIds: Record<string, string> = {};
    let now = new Date('2026-01-01T00:00:00Z');
    const clock: Clock = { now: () => now };
    const iso = () => now.toISOString();

    beforeAll(async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateToLatest(db, dialect);
      vms = new VmRepository(db);
      hostRepo = new HostRepository(db);
      const t = iso();
      const storage = randomUUID();
      const policy = randomUUID();
      await db.insertInto('storages').values({ id: storage, name: 's', path: '/tmp', created_at: t, updated_at: t }).execute();
      await db
        .insertInto('policies')
        .values({ id: policy, name: 'p', description: '', schedule: '0 3 * * *', timezone: 'UTC', retention_daily: 7, retention_weekly: 0, retention_monthly: 0, retention_yearly: 0, storage_id: storage, hook_id: null, enabled: 1, quiesce: 'preferred', compression: 'lz4', encryption: 'none', created_at: t, updated_at: t })
        .execute();
      poolA = randomUUID();
      poolB = randomUUID();
      for (const [id, name] of [[poolA, 'pool-a'], [poolB, 'pool-b']] as const) {
        await db.insertInto('pools').values({ id, name, policy_id: policy, connector_id: null, created_at: t, updated_at: t }).execute();
      }
      for (const [name, pool] of [['h1', poolA], ['h2', poolA], ['h3', poolB], ['big', poolB]] as const) {
        const h = await hostRepo.insert({ name, address: '192.0.2.1', sshPort: 22, username: 'root', poolId: pool, tags: [], libvirtUri: 'qemu:///system' }, t);
        hostIds[name] = h.id;
      }
    });
    afterAll(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    const vm = (n: number, over: Partial<DiscoveredVm> = {}): DiscoveredVm => ({
      uuid: uuidOf(n),
      cloudStack: null,
      name: `vm-${n}`,
      state: 'running',
      vcpus: 2,
      memoryBytes: 64 << 20,
      disks: [],
      cloudStackManaged: false,
      systemVm: false,
      ...over,
    });

    describe('repository', () => {
      it('stores, updates, marks absent; big sizes, JSON disks and hostile names survive the round trip', async () => {
        const disk = buildDisk(
          { target: 'vda', bus: 'virtio', type: 'file', path: '/vms/ü €.qcow2', sourceDescription: null, format: 'qcow2', readonly: false, shareable: false, backingChain: [], backingChainKnown: false },
          [{ filename: '/vms/ü €.qcow2', format: 'qcow2', virtualSizeBytes: 2 ** 41, actualSizeBytes: 2 ** 33, backingFilename: null, backingFormat: null, dirty: false, encrypted: false }],
          null,
        );
        const h = hostIds.h1!;
        await vms.apply(h, { added: [vm(1, { name: EVIL, memoryBytes: 2 ** 40, disks: [disk] }), vm(2), vm(3, { name: 'r-5-VM', cloudStackManaged: true, systemVm: true })], updated: [], unchangedIds: [], disappearedIds: [] }, iso());
        const known = await vms.knownOnHost(h);
        expect(known).toHaveLength(3);
        const evil = known.find((k) => k.uuid === uuidOf(1))!;
        expect(evil).toMatchObject({ name: EVIL, memoryBytes: 2 ** 40, present: true, disks: [disk] });
        const rec = await vms.findById(evil.id);
        expect(rec).toMatchObject({ name: EVIL, hostId: h, host: { id: h, name: 'h1', poolId: poolA, connectionState: 'unknown', lastSeenAt: null }, lastSeenAt: iso() });

        now = new Date(now.getTime() + 60_000);
        const two = known.find((k) => k.uuid === uuidOf(2))!;
        const three = known.find((k) => k.uuid === uuidOf(3))!;
        await vms.apply(h, { added: [], updated: [{ id: two.id, vm: vm(2, { state: 'shut off' }) }], unchangedIds: [evil.id], disappearedIds: [three.id] }, iso());
        expect(await vms.findById(two.id)).toMatchObject({ state: 'shut off', updatedAt: iso(), lastSeenAt: iso() });
        expect(await vms.findById(evil.id)).toMatchObject({ lastSeenAt: iso() });
        expect(await vms.findById(three.id)).toMatchObject({ present: false });
        expect(await vms.findById(randomUUID())).toBeUndefined();
      });

      it('a duplicate (host, uuid) is refused by the database', async () => {
        await expect(vms.apply(hostIds.h1!, { added: [vm(2)], updated: [], unchangedIds: [], disappearedIds: [] }, iso())).rejects.toThrow();
        expect(await vms.knownOnHost(hostIds.h1!)).toHaveLength(3); // the transaction left nothing behind
      });

      it('lists with filters and pages: host, pool, state, name substring, system VMs, presence', async () => {
        await vms.apply(hostIds.h2!, { added: [vm(10, { name: 'Web-100%_x' }), vm(11, { name: 'web-2', state: 'paused' })], updated: [], unchangedIds: [], disappearedIds: [] }, iso());
        await vms.apply(hostIds.h3!, { added: [vm(20, { name: 'db-1' })], updated: [], unchangedIds: [], disappearedIds: [] }, iso());
        const names = async (f: Parameters<VmRepository['list']>[1], page = { limit: 50, offset: 0 }) => (await vms.list(page, f)).items.map((v) => v.name);
        expect(await names({})).toEqual(['Web-100%_x', 'db-1', EVIL, 'vm-2', 'web-2'].sort((a, b) => (a < b ? -1 : 1)));
        expect(await names({ includeSystem: true })).toContain('r-5-VM');
        expect(await names({ hostId: hostIds.h2 })).toEqual(['Web-100%_x', 'web-2']);
        expect(await names({ poolId: poolB })).toEqual(['db-1']);
        expect(await names({ state: 'paused' })).toEqual(['web-2']);
        expect(await names({ name: 'WEB' })).toEqual(['Web-100%_x', 'web-2']);
        expect(await names({ name: '%_' })).toEqual(['Web-100%_x']); // wildcards are literal
        expect(await names({ name: '0%' })).toEqual(['Web-100%_x']);
        expect(await names({ name: '!' })).toEqual([]);
        expect(await names({ name: '$(touch' })).toEqual([EVIL]);
        expect(await names({ present: false, includeSystem: true })).toEqual(['r-5-VM']);
        expect(await names({ present: true, includeSystem: true })).not.toContain('r-5-VM');
        const page = await vms.list({ limit: 2, offset: 1 }, {});
        expect(page).toMatchObject({ total: 5, limit: 2, offset: 1 });
        expect(page.items).toHaveLength(2);
      });
    });

    describe('inventory service against scripted hosts', () => {
      const domains: Record<string, Map<string, FakeDomain>> = {};
      const hosts: Record<string, ReturnType<typeof fakeHost>> = {};
      const access: HostAccess = {
        virsh: (h: HostRecord) => new Virsh(hosts[h.name]!.run, h.libvirtUri, { concurrency: 3 }),
        qemuImg: (id: string) => new QemuImg(hosts[Object.keys(hostIds).find((n) => hostIds[n] === id)!]!.run),
        recordSuccess: (id) => hostRepo.recordConnection(id, { state: 'connected', errorCode: null, message: null, lastSeenAt: iso() }),
        recordFailure: async (h, err) => {
          const e = explainHostError(err, h, null);
          await hostRepo.recordConnection(h.id, { state: 'failed', errorCode: e.code, message: e.message });
          return e;
        },
      };
      let inventory: InventoryService;

      beforeAll(async () => {
        // Start from empty hosts h1..h3.
        await db.deleteFrom('virtual_machines').execute();
        inventory = new InventoryService({ vms, hosts: hostRepo, access, clock, concurrencyPerHost: 3 });
        domains.h1 = new Map([
          [uuidOf(1), { name: EVIL, state: 'running' }],
          [uuidOf(2), { name: 'r-12-VM', state: 'running', cloudStack: true }],
          [uuidOf(3), { name: 'i-2-3-VM', state: 'shut off', cloudStack: true }],
        ]);
        domains.h2 = new Map([[uuidOf(10), { name: 'web', state: 'running' }]]);
        domains.h3 = new Map([[uuidOf(20), { name: 'db', state: 'running' }]]);
        domains.big = new Map();
        for (const n of ['h1', 'h2', 'h3']) hosts[n] = fakeHost(domains[n]!);
        hosts.big = fakeHost(domains.big);
      });

      it('discovers every domain of every host: states, CloudStack flags, disks with sizes; addresses domains by uuid only', async () => {
        const s = await inventory.refreshAll();
        expect(s.hosts.map((h) => [h.hostName, h.ok, h.found, h.added])).toEqual([
          ['big', true, 0, 0],
          ['h1', true, 3, 3],
          ['h2', true, 1, 1],
          ['h3', true, 1, 1],
        ]);
        const list = (await vms.list({ limit: 50, offset: 0 }, { hostId: hostIds.h1, includeSystem: true })).items;
        expect(list.map((v) => [v.name, v.state, v.cloudStackManaged, v.systemVm])).toEqual([
          [EVIL, 'running', false, false],
          ['i-2-3-VM', 'shut off', true, false],
          ['r-12-VM', 'running', true, true],
        ]);
        expect(list[0]!.disks).toEqual([expect.objectContaining({ target: 'vda', path: `/vms/${uuidOf(1)}.qcow2`, virtualSizeBytes: 64 << 20, actualSizeBytes: 4096, backingChainSource: 'qemu-img', problem: null })]);
        expect(list[0]!.host).toMatchObject({ connectionState: 'connected', lastSeenAt: iso() });
        for (const argv of hosts.h1!.calls) expect(argv.join(' ')).not.toContain('evil');
      });

      it('one failing host does not stop the others; its VMs stay as they were and its error is recorded', async () => {
        now = new Date(now.getTime() + 60_000);
        hosts.h2 = fakeHost(domains.h2!, { down: 'error: failed to connect to the hypervisor\nerror: Failed to connect socket to /run/libvirt/libvirt-sock: Connection refused\n' });
        const s = await inventory.refreshAll();
        const h2 = s.hosts.find((h) => h.hostName === 'h2')!;
        expect(h2).toMatchObject({ ok: false, found: 0, disappeared: 0, error: { code: 'HOST.LIBVIRT_DOWN', message: expect.stringContaining('libvirtd runs') } });
        expect(s.hosts.filter((h) => h.hostName !== 'h2').every((h) => h.ok)).toBe(true);
        expect((await hostRepo.findById(hostIds.h2!))!.connection).toMatchObject({ state: 'failed', errorCode: 'HOST.LIBVIRT_DOWN' });
        expect((await vms.list({ limit: 50, offset: 0 }, { hostId: hostIds.h2 })).items.map((v) => [v.name, v.present])).toEqual([['web', true]]);
        // The host comes back: connected again.
        hosts.h2 = fakeHost(domains.h2!);
        expect((await inventory.refreshHost(hostIds.h2!)).hosts[0]).toMatchObject({ ok: true, found: 1, added: 0, updated: 0 });
        expect((await hostRepo.findById(hostIds.h2!))!.connection).toMatchObject({ state: 'connected', errorCode: null });
      });

      it('a domain undefined between listing and reading is skipped; an unreadable one is left alone; a removed one is marked absent', async () => {
        domains.h1!.set(uuidOf(4), { name: 'transient', state: 'running' });
        domains.h1!.get(uuidOf(3))!.xml = '<domain><name>broken'; // not well-formed
        hosts.h1 = fakeHost(domains.h1!, {
          before: (argv) => {
            if (argv.includes(uuidOf(4))) domains.h1!.delete(uuidOf(4)); // gone as soon as it is read
          },
        });
        domains.h1!.delete(uuidOf(2)); // r-12-VM removed for good
        const s = (await inventory.refreshHost(hostIds.h1!)).hosts[0]!;
        expect(s).toMatchObject({ ok: true, found: 1, vanished: 1, disappeared: 1, added: 0, vmErrors: [{ uuid: uuidOf(3), code: 'LIBVIRT.BAD_XML' }] });
        const all = (await vms.list({ limit: 50, offset: 0 }, { hostId: hostIds.h1, includeSystem: true })).items;
        expect(all.map((v) => [v.name, v.present])).toEqual([
          [EVIL, true],
          ['i-2-3-VM', true],
          ['r-12-VM', false],
        ]);
      });

      it('a disk qemu-img cannot read is reported on the disk; a lost connection fails the host', async () => {
        domains.h3!.get(uuidOf(20))!.xml = domainXml(uuidOf(20), 'db', { disk: '/vms/missing.qcow2' });
        hosts.h3 = fakeHost(domains.h3!);
        expect((await inventory.refreshHost(hostIds.h3!)).hosts[0]).toMatchObject({ ok: true, updated: 1 });
        const db1 = (await vms.list({ limit: 5, offset: 0 }, { hostId: hostIds.h3 })).items[0]!;
        expect(db1.disks[0]).toMatchObject({ path: '/vms/missing.qcow2', virtualSizeBytes: null, problem: { code: 'QEMU_IMG.IMAGE_NOT_FOUND' } });

        const lost = fakeHost(domains.h3!);
        hosts.h3 = {
          ...lost,
          run: async (argv) => {
            if (argv[2] === 'qemu-img') throw sshError(SshErrorCode.CONNECTION_LOST, 'connection to root@192.0.2.1:22 was lost');
            return lost.run(argv);
          },
        };
        expect((await inventory.refreshHost(hostIds.h3!)).hosts[0]).toMatchObject({ ok: false, error: { code: 'HOST.CONNECTION_LOST' } });
      });

      it('hundreds of domains: read in parallel up to the limit, not one by one', async () => {
        for (let n = 1000; n < 1300; n++) domains.big!.set(uuidOf(n), { name: `vm-${n}`, state: n % 2 ? 'running' : 'shut off' });
        hosts.big = fakeHost(domains.big!, { latencyMs: 5 });
        const t0 = Date.now();
        const s = (await inventory.refreshHost(hostIds.big!)).hosts[0]!;
        expect(s).toMatchObject({ ok: true, found: 300, added: 300 });
        // 3 domains at once, dumpxml and domstate together: 6 commands in flight.
        expect(hosts.big.maxInFlight()).toBe(6);
        expect(hosts.big.calls).toHaveLength(1 + 300 * 3);
        expect(Date.now() - t0).toBeLessThan(300 * 3 * 5);
        expect((await vms.list({ limit: 1, offset: 0 }, { hostId: hostIds.big })).total).toBe(300);
        // Unchanged on the next pass.
        expect((await inventory.refreshHost(hostIds.big!)).hosts[0]).toMatchObject({ found: 300, added: 0, updated: 0, disappeared: 0 });
      });

      it('concurrent refreshes of one host share one run', async () => {
        hosts.h2 = fakeHost(domains.h2!, { latencyMs: 20 });
        const [a, b] = await Promise.all([inventory.refreshHost(hostIds.h2!), inventory.refreshHost(hostIds.h2!)]);
        expect(a.hosts[0]).toEqual(b.hosts[0]);
        expect(hosts.h2.calls.filter((c) => c.includes('list'))).toHaveLength(1);
      });

      it('a host deleted while it is being refreshed: reported, no crash', async () => {
        const h = await hostRepo.insert({ name: 'gone', address: '192.0.2.9', sshPort: 22, username: 'root', poolId: poolA, tags: [], libvirtUri: 'qemu:///system' }, iso());
        hostIds.gone = h.id;
        hosts.gone = fakeHost(new Map([[uuidOf(99), { name: 'orphan', state: 'running' }]]), {
          before: async (argv) => {
            if (argv.includes('dumpxml')) await hostRepo.delete(h.id);
          },
        });
        expect((await inventory.refreshHost(h.id)).hosts[0]).toMatchObject({ ok: false, error: { code: 'HOST.NOT_FOUND' } });
        expect(await vms.knownOnHost(h.id)).toEqual([]);
      });

      it('an unknown host is a 404', async () => {
        await expect(inventory.refreshHost(randomUUID())).rejects.toMatchObject({ code: 'HOST.NOT_FOUND' });
      });
    });

    describe("inventory with the pool's CloudStack connector (strict CloudStack test server)", () => {
      let cs: CloudStackTestServer;
      let inventory: InventoryService;
      const warnings: string[] = [];
      const doms = { h1: new Map<string, FakeDomain>(), h2: new Map<string, FakeDomain>() };
      const STOPPED = '0b7a3f5e-1111-4222-8333-944445555666';
      const POOL = '6b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3';

      beforeAll(async () => {
        await db.deleteFrom('virtual_machines').execute();
        cs = await startCloudStackServer();
        cs.pools.push(storagePoolShape(POOL, 'smp', { type: 'SharedMountPoint', path: '/srv/primary' }));
        const client = new CloudStackClient({ endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey, name: 'acs', jobPollMs: 10 });
        const connector = randomUUID();
        await db.insertInto('connectors').values({ id: connector, name: 'acs', kind: 'cloudstack', endpoint_url: cs.url, api_key_sealed: 'x', secret_key_sealed: 'y', verify_tls: 1, ca_certificate: null, created_at: iso(), updated_at: iso() }).execute();
        await db.updateTable('pools').set({ connector_id: connector }).where('id', '=', poolA).execute();
        doms.h1.set(uuidOf(40), { name: 'i-2-40-VM', state: 'running', cloudStack: true });
        doms.h2.set(uuidOf(41), { name: 'plain', state: 'running' });
        cs.addVm({ id: uuidOf(40), name: 'web', displayname: 'Web', instancename: 'i-2-40-VM', state: 'Running', account: 'acme' });
        cs.addVm({ id: STOPPED, name: 'db', displayname: 'DB', instancename: 'i-2-41-VM', state: 'Stopped', volumePaths: ['vol-root', 'vol-data'], storageId: POOL }, 1);
        const scripted: HostAccess = {
          virsh: (h: HostRecord) => new Virsh(fakeHost(doms[h.name as 'h1' | 'h2']).run, h.libvirtUri, { concurrency: 3 }),
          qemuImg: () => new QemuImg(fakeHost(new Map()).run),
          recordSuccess: async () => {},
          recordFailure: async (h, err) => explainHostError(err, h, null),
        };
        inventory = new InventoryService({ vms, hosts: hostRepo, access: scripted, clock, concurrencyPerHost: 3, cloudStack: new CloudStackAccess(db, async () => client), warn: (m) => void warnings.push(m) });
      });
      afterAll(async () => {
        await db.updateTable('pools').set({ connector_id: null }).where('id', '=', poolA).execute();
        await cs?.close();
      });
      const onHost = async (h: string) => (await vms.list({ limit: 50, offset: 0 }, { hostId: hostIds[h], includeSystem: true })).items;

      it('enriches the domains CloudStack knows and lists the VM it stopped on the pool\'s first host, with its volumes', async () => {
        const [s1, s2] = [await inventory.refreshHost(hostIds.h1!), await inventory.refreshHost(hostIds.h2!)];
        expect(s1.hosts[0]).toMatchObject({ ok: true, cloudStack: { ok: true, instances: 1, stopped: 1, error: null } });
        expect(s2.hosts[0]).toMatchObject({ ok: true, cloudStack: { ok: true, instances: 0, stopped: 0, error: null } });
        const h1 = await onHost('h1');
        expect(h1.map((v) => [v.name, v.state, v.cloudStack?.displayName, v.cloudStack?.state, v.cloudStack?.stoppedOutsideLibvirt])).toEqual([
          ['i-2-40-VM', 'running', 'Web', 'Running', false],
          ['i-2-41-VM', 'shut off', 'DB', 'Stopped', true],
        ]);
        expect(h1[1]!.disks.map((d) => [d.target, d.path, d.format])).toEqual([
          ['vda', '/srv/primary/vol-root', 'qcow2'],
          ['vdb', '/srv/primary/vol-data', 'qcow2'],
        ]);
        expect((await onHost('h2')).map((v) => [v.name, v.cloudStack])).toEqual([['plain', null]]);
        expect(cs.rejected).toEqual([]);
      });

      it('a failing connector changes nothing CloudStack said and never fails the host; an expunged VM then disappears', async () => {
        now = new Date(now.getTime() + 60_000);
        cs.failNext('listVirtualMachines', { errorcode: 530, errortext: 'Internal error executing command' });
        const s = await inventory.refreshHost(hostIds.h1!);
        expect(s.hosts[0]).toMatchObject({ ok: true, disappeared: 0, cloudStack: { ok: false, error: { code: 'CONNECTOR.API_ERROR' } } });
        expect(warnings.join('\n')).toContain('Internal error executing command');
        const h1 = await onHost('h1');
        expect(h1.map((v) => [v.name, v.present, v.cloudStack?.state])).toEqual([
          ['i-2-40-VM', true, 'Running'],
          ['i-2-41-VM', true, 'Stopped'],
        ]);
        cs.vms.splice(cs.vms.findIndex((v) => v.id === STOPPED), 1);
        const again = await inventory.refreshHost(hostIds.h1!);
        expect(again.hosts[0]).toMatchObject({ ok: true, disappeared: 1, cloudStack: { ok: true, stopped: 0 } });
        expect((await onHost('h1')).map((v) => [v.name, v.present])).toEqual([
          ['i-2-40-VM', true],
          ['i-2-41-VM', false],
        ]);
      });
    });
  });
}
