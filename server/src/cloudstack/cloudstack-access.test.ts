/**
 * The CloudStack side of inventory, backups and restores against the signature-checking
 * CloudStack test server: volumes mapped to files of the primary storage (strictly: no path
 * leaves the pool, symlinks and non-files refused), instances looked up by id, and a VM stopped
 * and started through CloudStack's asynchronous jobs (graceful first, forced when that fails).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CloudStackClient } from '../adapters/cloudstack/cloudstack-client.js';
import { AppError } from '../errors.js';
import { DomainControl } from '../restores/domain-control.js';
import { CloudStackVmControl } from '../restores/cloudstack-vm-control.js';
import { startCloudStackServer, storagePoolShape, type CloudStackTestServer } from '../../test/support/cloudstack-server.js';
import { CloudStackAccess } from './cloudstack-access.js';
import { CloudStackVmErrorCode } from './cloudstack-vm.rules.js';

async function failure(p: Promise<unknown>): Promise<AppError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(AppError);
  return outcome.error as AppError;
}

describe('CloudStack access (volumes, instances, stop/start) against a strict CloudStack API', () => {
  let cs: CloudStackTestServer;
  let client: CloudStackClient;
  let dir: string;
  const SMP = randomUUID();
  // No database: these tests give the client directly.
  const access = () => new CloudStackAccess(undefined as never, async () => client);

  beforeAll(async () => {
    cs = await startCloudStackServer();
    client = new CloudStackClient({ endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey, name: 'acs', jobPollMs: 10 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-primary-'));
    cs.pools.push(storagePoolShape(SMP, 'primary-smp', { type: 'SharedMountPoint', path: dir }));
  });
  afterAll(async () => {
    await cs?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(cs.rejected).toEqual([]);
    cs.requests.length = 0;
  });

  const vmWithFiles = (names: string[], seed: Record<string, unknown> = {}) => {
    for (const n of names) if (!n.includes('/')) fs.writeFileSync(path.join(dir, n), 'x');
    return cs.addVm({ name: `vm-${randomUUID().slice(0, 6)}`, state: 'Stopped', volumePaths: names, storageId: SMP, ...seed }, names.length - 1);
  };

  it('maps a stopped VM\'s volumes to files of its primary storage, ROOT first, with guest devices and formats', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const vm = vmWithFiles([a, b]);
    const inst = await access().settledInstance(client, String(vm.id), 'x');
    const disks = await access().volumeDisks(client, inst, { check: true });
    expect(disks.map((d) => [d.target, d.path, d.format, d.type])).toEqual([
      ['vda', path.join(dir, a), 'qcow2', 'ROOT'],
      ['vdb', path.join(dir, b), 'qcow2', 'DATADISK'],
    ]);
    expect(cs.requests.map((r) => r.command)).toEqual(['listVirtualMachines', 'listVirtualMachines', 'listVolumes', 'listVolumes', 'listStoragePools']);
  });

  it('refuses volume paths that leave the pool, symlinks and non-files, and pools without files', async () => {
    const bad = async (names: string[]) => {
      const vm = cs.addVm({ name: `bad-${randomUUID().slice(0, 6)}`, state: 'Stopped', volumePaths: names, storageId: SMP });
      const inst = (await access().instance(client, String(vm.id)))!;
      return failure(access().volumeDisks(client, inst, { check: true }));
    };
    expect((await bad(['../etc/passwd'])).code).toBe(CloudStackVmErrorCode.VOLUME_PATH_INVALID);
    expect((await bad(['/etc/passwd'])).code).toBe(CloudStackVmErrorCode.VOLUME_PATH_INVALID);
    expect((await bad([`${dir}/../x`])).code).toBe(CloudStackVmErrorCode.VOLUME_PATH_INVALID);
    const link = randomUUID();
    // A link out of the pool, to a scratch file of this test: never to a system file (the
    // suite runs as root, and an earlier draft writing through such a link clobbered /etc/passwd).
    const outside = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cs-outside-')), 'target.qcow2');
    fs.writeFileSync(outside, 'outside');
    fs.symlinkSync(outside, path.join(dir, link));
    const e = await bad([link]);
    expect(e.code).toBe(CloudStackVmErrorCode.VOLUME_PATH_INVALID);
    expect(e.message).toContain('symbolic link');
    const sub = randomUUID();
    fs.mkdirSync(path.join(dir, sub));
    expect((await bad([sub])).code).toBe(CloudStackVmErrorCode.VOLUME_PATH_INVALID);
    expect((await bad([randomUUID()])).code).toBe('VM.DISK_NOT_ACCESSIBLE');
    // An RBD pool has no files; an NFS pool is the agent's mount point /mnt/<pool id>.
    const rbd = randomUUID();
    cs.pools.push(storagePoolShape(rbd, 'ceph', { type: 'RBD', path: 'rbd-pool' }));
    const vm = cs.addVm({ name: 'on-ceph', state: 'Stopped', storageId: rbd });
    expect((await failure(access().volumeDisks(client, (await access().instance(client, String(vm.id)))!, { check: false }))).code).toBe(CloudStackVmErrorCode.VOLUME_UNSUPPORTED);
    const nfs = cs.addVm({ name: 'on-nfs', state: 'Stopped', volumePaths: ['0b7a3f5e-1111-4222-8333-944445555666'] });
    const [root] = await access().volumeDisks(client, (await access().instance(client, String(nfs.id)))!, { check: false });
    expect(root!.path).toBe(`/mnt/${String(cs.pools[0]!.id)}/0b7a3f5e-1111-4222-8333-944445555666`);
  });

  it('an unknown instance is undefined (CloudStack answers 431), a transitional one is VM_BUSY', async () => {
    expect(await access().instance(client, randomUUID())).toBeUndefined();
    const vm = cs.addVm({ name: 'busy' });
    vm.state = 'Starting';
    expect((await failure(access().settledInstance(client, String(vm.id), 'busy'))).code).toBe(CloudStackVmErrorCode.VM_BUSY);
    expect((await failure(access().settledInstance(client, randomUUID(), 'gone'))).code).toBe(CloudStackVmErrorCode.VM_UNKNOWN);
  });

  it('stops and starts through CloudStack jobs; a failed graceful stop is forced; the jobs are polled to their end', async () => {
    const vm = cs.addVm({ name: 'web', state: 'Running' });
    const noLibvirt = new DomainControl(async () => {
      throw new Error('virsh must not be used');
    }, 'qemu:///system');
    const ctl = new CloudStackVmControl(client, access(), noLibvirt, { id: String(vm.id) }, 'web');
    expect(await ctl.state('x')).toBe('running');
    const logs: string[] = [];
    const log = async (m: string) => void logs.push(m);
    cs.jobPlans.push({ pendingPolls: 1, fail: { errorcode: 530, errortext: 'Failed to stop VM: guest did not shut down' } }, { pendingPolls: 2 });
    expect(await ctl.stop('x', 1000, log)).toBe('destroyed');
    expect(vm.state).toBe('Stopped');
    expect(await ctl.stop('x', 1000, log)).toBe('already');
    await ctl.start('x');
    expect(vm.state).toBe('Running');
    const calls = cs.requests.filter((r) => r.command.endsWith('VirtualMachine')).map((r) => `${r.command}${r.params.forced ? ' forced' : ''}`);
    expect(calls).toEqual(['stopVirtualMachine', 'stopVirtualMachine forced', 'startVirtualMachine']);
    expect(cs.requests.filter((r) => r.command === 'queryAsyncJobResult').length).toBeGreaterThanOrEqual(6);
    expect(logs.join('\n')).toContain('Failed to stop VM: guest did not shut down');
    // A start CloudStack fails is an error with CloudStack's words.
    vm.state = 'Stopped';
    cs.jobPlans.push({ pendingPolls: 0, fail: { errorcode: 533, errortext: 'Unable to create a deployment for VM' } });
    const e = await failure(ctl.start('x'));
    expect(e.code).toBe('CONNECTOR.API_ERROR');
    expect(e.message).toContain('Unable to create a deployment');
  });
});
