/**
 * A guest cannot make the worker copy its files or connect out (Trust issue, section 2): a running
 * lab VM with raw disks whose guest writes qcow2 headers naming `<data dir>/secret.key` and
 * `nbd://127.0.0.1:<port>` as their "backing files"; the backup reads the disks as the raw images
 * libvirt declares. The VM is made for this file (and removed after): the shared lab is unchanged.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, runAsHostUser, type LabHost } from '../adapters/ssh/test-lab.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createBackupModule, type BackupModule } from './index.js';
import { domUuid, fakeContext, hostVirsh, insertInventory, LAB_SCRIPTS } from './lab-fixtures.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const skip = !lab || borgMissing;
const reason = labSkipReason || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');
const VM = 'vm-rawguest';

function asHost(h: LabHost, ...argv: string[]): string {
  const r = runAsHostUser(h, argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(skip)(`a guest's fake qcow2 header on a raw disk, against the KVM lab${reason}`, () => {
  const l = lab!;
  let h1: LabHost;
  let db: Db;
  let tmp: string;
  let dataDir: string;
  let storage: string;
  let mod: BackupModule;
  let server: net.Server;
  let port: number;
  let connections = 0;
  let vmId: string;
  const files: string[] = [];

  beforeAll(async () => {
    h1 = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-rawguest-'));
    dataDir = path.join(tmp, 'data');
    storage = path.join(tmp, 'storage');
    fs.mkdirSync(dataDir, { mode: 0o700 });
    fs.mkdirSync(storage);
    fs.writeFileSync(path.join(dataDir, 'secret.key'), 'the worker secret\n', { mode: 0o600 });
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;

    // Left from an interrupted run of this file.
    if (runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'domstate', '--domain', VM]).status === 0) {
      runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'destroy', '--domain', VM]);
      hostVirsh(h1, 'undefine', '--domain', VM);
    }
    const vms = path.join(h1.home, 'vms');
    const disk = (t: string) => path.join(vms, `${VM}-${t}.img`);
    const header = (t: string) => path.join(vms, `${VM}-${t}-header.qcow2`);
    files.push(disk('vda'), disk('vdb'), header('vda'), header('vdb'), path.join(vms, `${VM}.xml`));
    for (const t of ['vda', 'vdb']) {
      fs.rmSync(disk(t), { force: true });
      asHost(h1, 'truncate', '-s', '16M', disk(t));
    }
    asHost(h1, 'qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', path.join(dataDir, 'secret.key'), '-F', 'raw', header('vda'), '16M');
    asHost(h1, 'qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', `nbd://127.0.0.1:${port}/export`, '-F', 'raw', header('vdb'), '16M');
    const disks = ['vda', 'vdb']
      .map((t) => `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk(t)}'/><target dev='${t}' bus='virtio'/></disk>`)
      .join('');
    const xml = `<domain type='${l.domainType}'><name>${VM}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>${disks}</devices></domain>\n`;
    fs.writeFileSync(path.join(vms, `${VM}.xml`), xml, { mode: 0o644 });
    hostVirsh(h1, 'define', path.join(vms, `${VM}.xml`));
    hostVirsh(h1, 'start', '--domain', VM);
    // The guest writes the headers (through its own block device, as any guest can).
    for (const t of ['vda', 'vdb']) {
      const r = spawnSync('bash', [path.join(LAB_SCRIPTS, 'write-guest.sh'), h1.user, VM, '0', '65536', `file:${header(t)}`, t], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`write-guest.sh: ${r.stderr}`);
    }
    // What a format probe of the disks would now see: qcow2 images with those backing files.
    const probed = JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', disk('vda')], { encoding: 'utf8' }).stdout) as Record<string, unknown>;
    expect(probed).toMatchObject({ format: 'qcow2', 'backing-filename': path.join(dataDir, 'secret.key') });

    db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    await migrateToLatest(db);
    const inv = await insertInventory(db, l, storage);
    vmId = randomUUID();
    const now = new Date().toISOString();
    await db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: inv.hosts.get('kvmhost1')!, uuid: domUuid(h1, VM), name: VM, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    const { sshHostAccess } = await import('./host-access.js');
    const { BackupLookup } = await import('./backup.lookup.js');
    mod = createBackupModule({ db, dataDir, hosts: sshHostAccess(new BackupLookup(db), l.clientKeyPath) });
  });

  afterAll(async () => {
    if (h1) {
      runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'destroy', '--domain', VM]);
      runAsHostUser(h1, ['virsh', '-c', h1.libvirtUri, 'undefine', '--domain', VM]);
      for (const f of files) fs.rmSync(f, { force: true });
    }
    mod?.hosts.close?.();
    await db?.destroy();
    await new Promise((resolve) => server?.close(resolve));
    if (tmp && !process.env.BACKROLL_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('backs the disks up as raw images: no secret copied into <storage>/template, no connection out', async () => {
    const ctx = fakeContext();
    const result = await mod.engine.backupVm({ vmId }, ctx);
    expect(connections).toBe(0);
    const template = path.join(storage, 'template');
    expect(fs.existsSync(template) ? fs.readdirSync(template) : []).toEqual([]);
    expect(ctx.lines.map((x) => x.message).join('\n')).not.toContain('secret.key');
    const rp = (await mod.restorePoints.listByVm(vmId)).find((r) => r.id === result.restorePointId)!;
    expect(rp.disks.map((d) => ({ target: d.target, format: d.format, backingChain: d.backingChain }))).toEqual([
      { target: 'vda', format: 'raw', backingChain: [] },
      { target: 'vdb', format: 'raw', backingChain: [] },
    ]);
    // The VM is back on its raw disks.
    const xml = hostVirsh(h1, 'dumpxml', '--domain', VM);
    expect(xml).not.toMatch(/backroll-\d+\.qcow2/);
  });
});
