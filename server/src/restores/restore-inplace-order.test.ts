/**
 * The order of an in-place restore of a running VM (docs/recovery.md): the VM is asked to stop
 * while its new image is extracted beside the disk, the swap waits until it is off, the start
 * comes after the swap; and when the extracted image fails its check, the restore waits for the
 * stop, then restarts the VM on its untouched disk. Real borg, real qemu-img, real files; the
 * host is a scripted virsh (a power-off that takes 1.5 s), so no lab is needed.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BorgReader } from '../adapters/borg/extract.js';
import { localImageTool, type ImageTool } from '../adapters/qemu-img/check.js';
import type { TaskContext } from '../tasks/task-context.js';
import type { HostExec } from './domain-control.js';
import { nodeRestoreFiles, type RestoreFiles } from './restore-files.js';
import { RestoreEngine } from './restore-engine.js';
import { loadSource } from './restore-source.js';

const HAVE_TOOLS = spawnSync('borg', ['--version']).status === 0 && spawnSync('qemu-img', ['--version']).status === 0;

describe.skipIf(!HAVE_TOOLS)('in-place restore of a running VM: stop beside the extraction, swap after the stop', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-inplace-order-'));
  const repo = path.join(root, 'repo');
  const env = { ...process.env, BORG_BASE_DIR: path.join(root, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
  const epoch = 1796000100;
  const disk = path.join(root, 'vms', 'vm1-vda.qcow2');
  const uuid = randomUUID();
  const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const run = (cmd: string, argv: string[]) => {
    const r = spawnSync(cmd, argv, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  };
  let archived = '';

  beforeAll(() => {
    fs.mkdirSync(path.dirname(disk), { recursive: true });
    run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 2M', disk]);
    archived = sha(disk);
    run('borg', ['init', '--encryption=none', repo]);
    run('borg', ['create', `${repo}::vda_vm1-vda_${epoch}`, disk]);
    // The guest changed its disk after the backup.
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 0 1M', disk]);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  /** virsh as a host would answer it; `events` gets each step with its time. */
  function scriptedHost(events: Array<[string, number]>) {
    let state = 'running';
    const at = (e: string) => events.push([e, performance.now()]);
    const xml = `<domain type='kvm'><name>vm1</name><uuid>${uuid}</uuid><memory unit='KiB'>65536</memory><vcpu>1</vcpu><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
    const exec: HostExec = async (argv) => {
      const sub = argv[5];
      const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
      if (sub === 'domstate') return ok(`${state}\n`);
      if (sub === 'dumpxml') return ok(xml);
      if (sub === 'shutdown') return ok(); // the guest ignores ACPI
      if (sub === 'destroy') {
        at('power-off begins');
        await new Promise((r) => setTimeout(r, 1500));
        state = 'shut off';
        at('VM off');
        return ok();
      }
      if (sub === 'start') {
        at('start');
        state = 'running';
        return ok();
      }
      return { code: 1, stdout: '', stderr: `error: unexpected virsh ${argv.join(' ')}` };
    };
    return exec;
  }

  async function restore(events: Array<[string, number]>, images: ImageTool = localImageTool()) {
    const at = (e: string) => events.push([e, performance.now()]);
    const files: RestoreFiles = {
      ...nodeRestoreFiles,
      makePrivateDir: async (d) => {
        at('extraction begins');
        return nodeRestoreFiles.makePrivateDir(d);
      },
      rename: async (a, b) => {
        if (b === disk) at('swap');
        return nodeRestoreFiles.rename(a, b);
      },
    };
    const reader = new BorgReader({ baseDir: root });
    const access = { repo, passphrase: null, unencrypted: true };
    const rp = { id: randomUUID(), vmId: 'vm1', storageId: 's', storagePath: root, repository: repo, epoch, originalSize: null };
    const src = await loadSource(reader, access, rp);
    const engine = new RestoreEngine({ borg: reader, images, files, hostExec: () => scriptedHost(events), shutdownGraceMs: 0 });
    const ctx: TaskContext = { taskId: randomUUID(), signal: new AbortController().signal, startedBy: 'user:test', log: async () => {}, progress: () => {} };
    return engine.inPlace(ctx, { id: 'vm1', hostId: 'h', uuid, name: 'vm1' }, { id: 'h', name: 'h', libvirtUri: 'qemu:///system' }, rp, src);
  }
  const when = (events: Array<[string, number]>, e: string) => {
    const hit = events.find(([x]) => x === e);
    if (!hit) throw new Error(`no "${e}" in ${JSON.stringify(events)}`);
    return hit[1];
  };

  it('a failing check: the restore waits for the stop, then restarts the VM on its untouched disk', async () => {
    const before = sha(disk);
    const events: Array<[string, number]> = [];
    const bad: ImageTool = { ...localImageTool(), check: async () => ({ ok: false, exitCode: 2, corruptions: 1, leaks: 0, message: 'injected corruption' }) };
    await expect(restore(events, bad)).rejects.toMatchObject({ code: 'RESTORE.VERIFY_FAILED' });
    expect(sha(disk)).toBe(before);
    expect(when(events, 'start')).toBeGreaterThanOrEqual(when(events, 'VM off'));
    expect(events.some(([e]) => e === 'swap')).toBe(false);
    expect(fs.readdirSync(path.dirname(disk))).toEqual(['vm1-vda.qcow2']);
  });

  it('the extraction runs while the VM stops; the swap comes after the VM is off, the start after the swap', async () => {
    const events: Array<[string, number]> = [];
    const res = await restore(events);
    expect(res).toMatchObject({ stoppedBy: 'destroyed', restarted: true });
    expect(sha(disk)).toBe(archived);
    expect(when(events, 'extraction begins')).toBeLessThan(when(events, 'VM off'));
    expect(when(events, 'swap')).toBeGreaterThanOrEqual(when(events, 'VM off'));
    expect(when(events, 'start')).toBeGreaterThanOrEqual(when(events, 'swap'));
    expect(fs.readdirSync(path.dirname(disk))).toEqual(['vm1-vda.qcow2']);
  });
});
