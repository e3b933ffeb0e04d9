/** The libvirt adapter over real SSH against the lab's real session libvirt. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from '../ssh/ssh-pool.js';
import { canaryPresent, lab, labConnectOptions, labSkipReason, runAsHostUser, type LabHost } from '../ssh/test-lab.js';
import { Virsh, type ListedDomain } from './virsh.js';

const EVIL = 'evil$(touch PWNED);\'"`id` x';
const STATES = ['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'];

/** What virsh says locally (as the host user, no SSH, no shell): uuids, names, and the `list --all` table. */
function localListing(h: LabHost) {
  const v = (...args: string[]) => {
    const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, ...args]);
    if (r.status !== 0) throw new Error(`local virsh ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const lines = (s: string) => s.split('\n').filter((x) => x.trim() !== '');
  const uuids = lines(v('list', '--all', '--uuid')).sort();
  const names = lines(v('list', '--all', '--name')).sort();
  // Table rows: " 20   evil$(touch PWNED);'"`id` x   running"
  const stateRe = new RegExp(`^\\s*(\\S+)\\s+(.*?)\\s+(${STATES.join('|')})\\s*$`);
  const stateByName = new Map<string, string>();
  for (const row of lines(v('list', '--all')).slice(2)) {
    const m = stateRe.exec(row);
    if (!m) throw new Error(`cannot parse virsh list row ${JSON.stringify(row)}`);
    stateByName.set(m[2]!, m[3]!);
  }
  return { uuids, names, stateByName };
}

describe.skipIf(!lab)(`libvirt adapter (virsh over SSH) against the KVM lab${labSkipReason}`, () => {
  const l = lab!;
  let pool: SshPool;
  const virshFor = (h: LabHost, uri = h.libvirtUri) => Virsh.overSsh(pool.executor(h.name), uri);

  beforeAll(() => {
    expect(canaryPresent(l)).toEqual([]);
    pool = new SshPool({ resolveHost: (id) => labConnectOptions(l, l.hosts.find((h) => h.name === id)!.user) });
  });
  afterAll(() => {
    pool?.closeAll();
    expect(canaryPresent(l)).toEqual([]);
  });

  it('version(): libvirt answers at the host URI', async () => {
    const v = await virshFor(l.hosts[0]!).version();
    expect(v.library).toMatch(/^\d+\.\d+/);
    // The session daemon (libvirt 9.0) prints no "Running against daemon" line: only the hypervisor.
    expect(v.hypervisor).toMatch(/^QEMU \d+/);
  });

  it('a bogus URI: HOST.LIBVIRT_DOWN with virsh stderr', async () => {
    const err = await virshFor(l.hosts[0]!, 'qemu:///nonexistent')
      .version()
      .then(
        () => null,
        (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> },
      );
    expect(err).toMatchObject({ code: 'HOST.LIBVIRT_DOWN' });
    expect(String(err!.details.stderr)).toMatch(/failed to connect to the hypervisor/);
    expect(err!.message).toContain('qemu:///nonexistent');
  });

  describe.each(l ? l.hosts.map((h) => [h.name, h] as const) : [])('host %s', (_name, h) => {
    let listed: ListedDomain[];

    it('listDomains equals local `virsh list --all` (uuids, names, states)', async () => {
      // Other suites may define/undefine domains concurrently: retry a few times on a mismatch.
      for (let attempt = 1; ; attempt++) {
        const before = localListing(h);
        listed = await virshFor(h).listDomains();
        const after = localListing(h);
        try {
          expect(listed.map((d) => d.uuid).sort()).toEqual(before.uuids);
          expect(listed.map((d) => d.name).sort()).toEqual(before.names);
          for (const d of listed) expect([d.name, d.state]).toEqual([d.name, before.stateByName.get(d.name)]);
          expect(after.uuids).toEqual(before.uuids);
          break;
        } catch (e) {
          if (attempt >= 3) throw e;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    });

    it('every lab VM is listed with its state; disks and backing files match lab.json', async () => {
      const v = virshFor(h);
      for (const vm of h.vms) {
        const d = listed.find((x) => x.name === vm.name);
        expect(d, `VM ${vm.name} listed`).toBeDefined();
        expect(d!.state).toBe(vm.state);
        const disks = await v.diskChain(d!.uuid);
        expect(disks.map((x) => [x.target, x.type, x.path, x.format])).toEqual(vm.disks.map((x) => [x.target, 'file', x.path, x.format]));
        for (const [i, disk] of disks.entries()) {
          const want = vm.disks[i]!.backing;
          if (vm.state === 'running') {
            // Live XML states the whole chain.
            expect(disk.backingChainKnown).toBe(true);
            expect(disk.backingChain.map((b) => b.path)).toEqual(want ? [want] : []);
          } else {
            expect(disk.backingChain.map((b) => b.path)).toEqual(want && disk.backingChainKnown ? [want] : []);
          }
        }
      }
    });

    it('no guest agent in the lab VMs (no channel), snapshots are a list', async () => {
      const v = virshFor(h);
      const vm = listed.find((x) => x.name === h.vms[0]!.name)!;
      expect(await v.guestAgent(vm.uuid)).toEqual({ configured: false, channelState: null, responding: null });
      expect(await v.hasGuestAgent(vm.uuid)).toBe(false);
      expect(Array.isArray(await v.snapshots(vm.uuid))).toBe(true);
    });

    it('unknown domains: VM.NOT_FOUND (by uuid and by a hostile name)', async () => {
      const v = virshFor(h);
      await expect(v.domainState(randomUUID())).rejects.toMatchObject({ code: 'VM.NOT_FOUND' });
      await expect(v.domainXml('nope$(touch PWNED);`id`')).rejects.toMatchObject({ code: 'VM.NOT_FOUND' });
    });
  });

  it('the hostile-name VM can also be addressed by its name (one quoted argv element)', async () => {
    const found = l.hosts.find((x) => x.vms.some((vm) => vm.name === EVIL));
    expect(found, 'lab.json lists the hostile-name VM (scripts/lab/up.sh creates it)').toBeDefined();
    const h = found!;
    const v = virshFor(h);
    const info = await v.domainInfo(EVIL);
    expect(info.name).toBe(EVIL);
    expect(await v.domainState(EVIL)).toBe(h.vms.find((vm) => vm.name === EVIL)!.state);
    expect(await v.domainState(info.uuid)).toBe(await v.domainState(EVIL));
    expect(canaryPresent(l)).toEqual([]);
  });

  it('all calls went through one pooled connection per host', () => {
    for (const h of l.hosts) expect(pool.stats(h.name)?.connectionsOpened).toBe(1);
  });
});
