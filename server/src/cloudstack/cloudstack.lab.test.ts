/**
 * CloudStack VMs on the KVM lab, through the real API server and the pool's CloudStack
 * connector (the signature-checking CloudStack test server, whose start/stop jobs really start
 * and stop the lab domain, as CloudStack's agent does):
 *  - a transient domain carrying CloudStack's SMBIOS sysinfo is recognised and enriched
 *    (instance id, display name, account, domain, project, CloudStack's state); a system VM
 *    (`r-<n>-VM`) is listed and refused for backup with VM.SYSTEM_VM;
 *  - a "stopped" CloudStack VM that exists only as volume files + API answers is listed, backed
 *    up and restored in place byte-identically, without any start/stop;
 *  - a running CloudStack VM restored in place is stopped and started through CloudStack
 *    (stopVirtualMachine, then startVirtualMachine), never with virsh.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, runAsHostUser, type LabHost } from '../adapters/ssh/test-lab.js';
import { HAVE_BORG, domainXml, domState, leftovers, rawSha, run, scribble, virshAs } from '../restores/restore-lab-fixtures.js';
import { startCloudStackServer, storagePoolShape, type CloudStackTestServer } from '../../test/support/cloudstack-server.js';
import { startLabApiServer } from '../../test/support/lab-server.js';
import type { TestServer } from '../../test/support/server.js';
import { BackupListInfo, CloudStackClient as V1Client } from '../../test/v1/cloudstack-client.js';
import { createMachineClient } from '../idp/index.js';
import { Type } from '@sinclair/typebox';

const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');

/** CloudStack's sysinfo (LibvirtVMDef.SysinfoDef / CloudStack's KVM agent) for an instance. */
function withCloudStackSysinfo(xml: string, uuid: string): string {
  const sysinfo =
    `  <sysinfo type='smbios'>\n    <system>\n      <entry name='manufacturer'>Apache Software Foundation</entry>\n` +
    `      <entry name='product'>CloudStack KVM Hypervisor</entry>\n      <entry name='uuid'>${uuid}</entry>\n    </system>\n  </sysinfo>\n`;
  return xml.replace('  <os>', `${sysinfo}  <os>`).replace("<type arch='x86_64' machine='pc'>hvm</type>", "<type arch='x86_64' machine='pc'>hvm</type><smbios mode='sysinfo'/>");
}

describe.skipIf(reason !== '')(`CloudStack VMs on the KVM lab${reason}`, () => {
  const l = lab!;
  let h: LabHost;
  let t: TestServer;
  let cs: CloudStackTestServer;
  let dataDir: string;
  let storage: string;
  let hostId: string;
  let primary: string;
  const tag = randomBytes(3).toString('hex');
  const n = 100 + (randomBytes(1)[0]! % 100);
  const PRIMARY_ID = randomUUID();
  const running = { uuid: randomUUID(), name: `i-2-${n}-VM`, vol: randomUUID(), xml: '' };
  const system = { uuid: randomUUID(), name: `r-${n}-VM`, vol: randomUUID(), xml: '' };
  const stopped = { uuid: randomUUID(), name: `i-2-${n + 1}-VM`, vols: [randomUUID(), randomUUID()] };
  const transient: string[] = [];

  const own = (file: string) => {
    const st = fs.statSync(h.home);
    fs.chownSync(file, st.uid, st.gid);
  };
  const copyDisk = (from: string, to: string) => {
    run('cp', ['--sparse=always', from, to]);
    own(to);
    fs.chmodSync(to, 0o640);
  };
  const createTransient = (xmlFile: string) => virshAs(h, 'create', '--file', xmlFile);
  const defineTransient = (vm: { uuid: string; name: string; vol: string; xml: string }) => {
    vm.xml = path.join(primary, `${vm.name}.xml`);
    fs.writeFileSync(vm.xml, withCloudStackSysinfo(domainXml(l, vm.name, vm.uuid, [{ target: 'vda', path: path.join(primary, vm.vol) }]), vm.uuid));
    own(vm.xml);
    createTransient(vm.xml);
    transient.push(vm.uuid);
  };
  const waitTask = async (id: string) => {
    for (let i = 0; i < 480; i++) {
      const r = await t.api('GET', `/api/v2/tasks/${id}`);
      if (['succeeded', 'failed', 'canceled', 'interrupted', 'partial'].includes(r.body.state)) return r.body;
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`task ${id} did not end`);
  };
  const vmByUuid = async (uuid: string) => {
    const res = await t.api('GET', '/api/v2/virtual-machines?includeSystem=true&limit=500');
    expect(res.status, res.text).toBe(200);
    return (res.body.items as Array<Record<string, any>>).find((v) => v.uuid === uuid);
  };

  beforeAll(async () => {
    h = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    let poolId: string;
    ({ t, dataDir, storage, hostId, poolId } = await startLabApiServer(l, h, { encryption: 'none', compression: 'lz4', quiesce: 'off' }));
    const connected = await t.api('POST', `/api/v2/hosts/${hostId}/connect`);
    expect(connected.status, connected.text).toBe(200);

    // The primary storage: a SharedMountPoint pool in the host user's home.
    primary = path.join(h.home, `cs-primary-${tag}`);
    fs.mkdirSync(primary);
    own(primary);
    const src = (vm: string) => h.vms.find((v) => v.name === vm)!.disks;
    copyDisk(src('vm-running')[0]!.path, path.join(primary, running.vol));
    copyDisk(src('vm-stopped')[0]!.path, path.join(primary, system.vol));
    src('vm-twodisks').forEach((d, i) => copyDisk(d.path, path.join(primary, stopped.vols[i]!)));
    defineTransient(running);
    defineTransient(system);

    cs = await startCloudStackServer();
    cs.pools.push(storagePoolShape(PRIMARY_ID, 'primary-lab', { type: 'SharedMountPoint', path: primary }));
    cs.addVm({ id: running.uuid, name: 'web', displayname: 'Web server', instancename: running.name, state: 'Running', account: 'acme', projectid: randomUUID(), project: 'shop', volumePaths: [running.vol], storageId: PRIMARY_ID });
    cs.addVm({ id: stopped.uuid, name: 'db', displayname: 'Database', instancename: stopped.name, state: 'Stopped', account: 'acme', volumePaths: stopped.vols, storageId: PRIMARY_ID }, 1);
    // What CloudStack's agent does for a start/stop job: the domain is transient, so a stop undefines it.
    cs.onJob = async (command, vm) => {
      if (vm.id !== running.uuid) throw new Error(`no agent work planned for ${String(vm.id)}`);
      if (command === 'stopVirtualMachine') virshAs(h, 'destroy', '--domain', running.uuid);
      else createTransient(running.xml);
    };

    const conn = await t.api('POST', '/api/v2/connectors', { body: { name: 'acs', endpointUrl: cs.url, apiKey: cs.apiKey, secretKey: cs.secretKey } });
    expect(conn.status, conn.text).toBe(201);
    const pool = (await t.api('GET', `/api/v2/pools/${poolId}`)).body;
    const patched = await t.api('PATCH', `/api/v2/pools/${poolId}`, { body: { name: pool.name, policyId: pool.policyId, connectorId: conn.body.id } });
    expect(patched.status, patched.text).toBe(200);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await cs?.close();
    for (const u of transient) {
      const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'domstate', '--domain', u]);
      if (r.status === 0) runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'destroy', '--domain', u]);
    }
    if (primary) fs.rmSync(primary, { recursive: true, force: true });
    if (storage) fs.rmSync(storage, { recursive: true, force: true });
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('recognises CloudStack domains (SMBIOS), enriches them through the connector, lists stopped and system VMs', async () => {
    const res = await t.api('POST', `/api/v2/hosts/${hostId}/refresh`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.hosts[0]).toMatchObject({ ok: true, vmErrors: [], cloudStack: { ok: true, instances: 1, stopped: 1, error: null } });

    const web = await vmByUuid(running.uuid);
    expect(web).toMatchObject({
      name: running.name,
      state: 'running',
      cloudStackManaged: true,
      systemVm: false,
      present: true,
      cloudStack: { id: running.uuid, instanceName: running.name, displayName: 'Web server', account: 'acme', domain: 'ROOT', project: 'shop', state: 'Running', stoppedOutsideLibvirt: false },
    });
    const router = await vmByUuid(system.uuid);
    expect(router).toMatchObject({ name: system.name, cloudStackManaged: true, systemVm: true, cloudStack: null });
    const db = await vmByUuid(stopped.uuid);
    expect(db).toMatchObject({ name: stopped.name, state: 'shut off', cloudStackManaged: true, systemVm: false, present: true, cloudStack: { displayName: 'Database', state: 'Stopped', stoppedOutsideLibvirt: true } });
    expect(db!.disks.map((d: { target: string; path: string; format: string }) => [d.target, d.path, d.format])).toEqual([
      ['vda', path.join(primary, stopped.vols[0]!), 'qcow2'],
      ['vdb', path.join(primary, stopped.vols[1]!), 'qcow2'],
    ]);
    // Plain lab VMs (no sysinfo, unknown to CloudStack) stay plain.
    expect(await vmByUuid(virshAs(h, 'domuuid', '--domain', 'vm-running').trim())).toMatchObject({ cloudStackManaged: false, cloudStack: null });
    // Listed, never backed up; hidden from the default list.
    const refused = await t.api('POST', `/api/v2/virtual-machines/${router!.id}/backups`);
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.code).toBe('VM.SYSTEM_VM');
    const plain = await t.api('GET', '/api/v2/virtual-machines?limit=500');
    expect(plain.body.items.map((v: { uuid: string }) => v.uuid)).not.toContain(system.uuid);
  }, 120_000);

  it('a VM CloudStack stopped (volume files + API answers only) is backed up and restored in place byte-identically', async () => {
    const vm = (await vmByUuid(stopped.uuid))!;
    const files = stopped.vols.map((v) => path.join(primary, v));
    const before = files.map(rawSha);
    cs.requests.length = 0;
    const started = await t.api('POST', `/api/v2/virtual-machines/${vm.id}/backups`);
    expect(started.status, started.text).toBe(202);
    const task = await waitTask(started.body.id);
    expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
    const rps = (await t.api('GET', `/api/v2/virtual-machines/${vm.id}/restore-points`)).body.items;
    expect(rps).toHaveLength(1);
    expect(rps[0].disks.map((d: { target: string; path: string }) => [d.target, d.path])).toEqual([
      ['vda', files[0]],
      ['vdb', files[1]],
    ]);
    expect(rps[0].repository).toBe(path.join(storage, stopped.name));
    // Asked CloudStack before and after reading (it must still be stopped), never started or stopped it.
    expect(cs.requests.map((r) => r.command)).not.toContain('startVirtualMachine');
    expect(cs.requests.map((r) => r.command)).not.toContain('stopVirtualMachine');
    expect(cs.requests.filter((r) => r.command === 'listVirtualMachines' && r.params.id === stopped.uuid).length).toBeGreaterThanOrEqual(2);

    for (const f of files) {
      run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xe7 0 1M', f]);
      own(f);
    }
    expect(files.map(rawSha)).not.toEqual(before);
    const restore = await t.api('POST', `/api/v2/virtual-machines/${vm.id}/restores`, { body: { restorePointId: rps[0].id, mode: 'in-place' } });
    expect(restore.status, restore.text).toBe(202);
    const rt = await waitTask(restore.body.id);
    expect(rt.state, JSON.stringify(rt.error)).toBe('succeeded');
    expect(rt.result).toMatchObject({ mode: 'in-place', stoppedBy: 'already', restarted: false });
    expect(files.map(rawSha)).toEqual(before);
    expect(leftovers(primary)).toEqual([]);
    expect(cs.requests.map((r) => r.command)).not.toContain('startVirtualMachine');
    // Still not in libvirt: nothing was defined behind CloudStack's back.
    expect(runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'domstate', '--domain', stopped.uuid]).status).not.toBe(0);
  }, 240_000);

  it('a running CloudStack VM restored in place is stopped and started through CloudStack, on its restored disk', async () => {
    const vm = (await vmByUuid(running.uuid))!;
    const file = path.join(primary, running.vol);
    const started = await t.api('POST', `/api/v2/virtual-machines/${vm.id}/backups`);
    expect(started.status, started.text).toBe(202);
    const task = await waitTask(started.body.id);
    expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
    const atBackup = rawSha(file);
    const rp = (await t.api('GET', `/api/v2/virtual-machines/${vm.id}/restore-points`)).body.items[0];

    scribble(h, { name: running.name, uuid: running.uuid, dir: primary, disks: [{ target: 'vda', path: file, backing: null }], template: null }, 'vda', true, '0xd7');
    expect(rawSha(file)).not.toBe(atBackup);
    cs.requests.length = 0;
    const restore = await t.api('POST', `/api/v2/virtual-machines/${vm.id}/restores`, { body: { restorePointId: rp.id, mode: 'in-place' } });
    expect(restore.status, restore.text).toBe(202);
    const rt = await waitTask(restore.body.id);
    expect(rt.state, JSON.stringify(rt.error)).toBe('succeeded');
    expect(rt.result).toMatchObject({ mode: 'in-place', stoppedBy: 'shutdown', restarted: true });
    expect(cs.requests.filter((r) => r.command.endsWith('VirtualMachine')).map((r) => r.command)).toEqual(['stopVirtualMachine', 'startVirtualMachine']);
    // Both jobs were polled to their end.
    expect(cs.requests.filter((r) => r.command === 'queryAsyncJobResult').length).toBeGreaterThanOrEqual(4);
    expect(domState(h, running.uuid)).toBe('running');
    expect(virshAs(h, 'dominfo', '--domain', running.uuid)).toMatch(/Persistent:\s+no/);
    expect(rawSha(file)).toBe(atBackup);
    expect(leftovers(primary)).toEqual([]);
    const logs = await t.api('GET', `/api/v2/tasks/${rt.id}/log`);
    expect(JSON.stringify(logs.body)).toContain('through CloudStack');
  }, 240_000);

  it('/api/v1 as CloudStack drives it, on the stopped CloudStack VM: singlebackup → SUCCESS → listed once → restore (byte-identical) → delete', async () => {
    const app = createMachineClient(dataDir, t.server.secretBox, `cloudstack-${tag}`, 'admin');
    const c = new V1Client(`${t.url}/api/v1`, '2025-04', app.clientId, app.clientSecret);
    const files = stopped.vols.map((v) => path.join(primary, v));
    const before = files.map(rawSha);
    const listed = async () => (await c.success(await c.start('GET', `/virtualmachines/${stopped.uuid}/backups`), BackupListInfo, 'GET backups')).archives as Array<{ name: string }>;
    const earlier = (await listed()).map((a) => a.name);
    cs.requests.length = 0;
    const name = await c.success(await c.start('POST', `/tasks/singlebackup/${stopped.uuid}`), Type.String({ minLength: 1 }), 'POST singlebackup');
    expect(name).toMatch(new RegExp(`^vda_${stopped.vols[0]}_\\d{10}$`));
    const now = await listed();
    // The two-disk VM's new restore point is ONE backup.
    expect(now.map((a) => a.name).filter((x) => !earlier.includes(x))).toEqual([name]);
    expect(cs.requests.map((r) => r.command)).not.toContain('startVirtualMachine');

    for (const f of files) {
      run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xa9 0 1M', f]);
      own(f);
    }
    const restored = await c.poll(await c.start('POST', `/tasks/restore/${stopped.uuid}`, { virtual_machine_id: stopped.uuid, backup_name: name, storage: '', mode: 'single' }));
    expect(restored).toEqual({ state: 'SUCCESS', info: null });
    expect(files.map(rawSha)).toEqual(before);
    expect(leftovers(primary)).toEqual([]);

    const deleted = await c.success(await c.start('DELETE', `/virtualmachines/${stopped.uuid}/backups/${name}`), Type.Null(), 'DELETE backup');
    expect(deleted).toBeNull();
    expect((await listed()).map((a) => a.name)).toEqual(earlier);
  }, 240_000);

  it('a start CloudStack refuses after the swap: the original disk is put back and the VM started again through CloudStack', async () => {
    const vm = (await vmByUuid(running.uuid))!;
    const file = path.join(primary, running.vol);
    const rp = (await t.api('GET', `/api/v2/virtual-machines/${vm.id}/restore-points`)).body.items[0];
    scribble(h, { name: running.name, uuid: running.uuid, dir: primary, disks: [{ target: 'vda', path: file, backing: null }], template: null }, 'vda', true, '0xb3');
    const current = rawSha(file);
    cs.requests.length = 0;
    // stop: succeeds; the first start: CloudStack's job fails; the rollback's start: succeeds.
    cs.jobPlans.push({ pendingPolls: 1 }, { pendingPolls: 1, fail: { errorcode: 533, errortext: 'Unable to create a deployment for VM[User|i-2-VM]' } });
    const restore = await t.api('POST', `/api/v2/virtual-machines/${vm.id}/restores`, { body: { restorePointId: rp.id, mode: 'in-place' } });
    expect(restore.status, restore.text).toBe(202);
    const rt = await waitTask(restore.body.id);
    expect(rt.state).toBe('failed');
    expect(rt.error.code).toBe('RESTORE.START_FAILED');
    expect(rt.error.message).toContain('Unable to create a deployment');
    expect(cs.requests.filter((r) => r.command.endsWith('VirtualMachine')).map((r) => r.command)).toEqual(['stopVirtualMachine', 'startVirtualMachine', 'startVirtualMachine']);
    expect(domState(h, running.uuid)).toBe('running');
    expect(rawSha(file)).toBe(current);
    expect(leftovers(primary)).toEqual([]);
  }, 240_000);
});
