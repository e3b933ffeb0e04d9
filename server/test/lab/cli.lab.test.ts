/**
 * The terminal client end to end on the KVM lab: a real server (SQLite, embedded job system)
 * whose own SSH key is authorised on the lab hosts with scripts/lab/authorize-key.sh, hosts
 * connected and inventoried through the API, and the REAL `bin/backroll.js` run as a child
 * process (credentials in its environment, never in argv) to back up and restore with --wait.
 * Works on a shut-off clone of a lab VM (the lab's own VMs stay untouched).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { EXIT } from '../../src/cli/client/format.js';
import { createMachineClient } from '../../src/idp/clients.js';
import { cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, scribble, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import { authorize, unauthorize } from '../support/lab-keys.js';
import { startTestServer, type TestServer } from '../support/server.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real binary asynchronously (the server answers from this very process, so a
 * spawnSync would block it). Only the variables it needs: no BACKROLL_TOKEN leaks in.
 */
function cli(args: string[], env: Record<string, string>, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), LANG: 'C.UTF-8', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`backroll ${args.join(' ')} did not end within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;



describe.skipIf(reason !== '')(`the backroll CLI backs up and restores a lab VM end to end with --wait${reason}`, () => {
  const l = lab!;
  let h: LabHost;
  let t: TestServer;
  let storage: string;
  let env: Record<string, string>;
  let vm: CloneVm;
  let atBackup: string;
  let backupTaskId: string;
  let restorePointId: string;
  const restoreTaskIds: string[] = [];
  const addedKeys: string[] = [];
  const tempDirs: string[] = [];
  const tag = randomBytes(3).toString('hex');

  beforeAll(async () => {
    h = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    t = await startTestServer('sqlite');
    storage = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 'lab', path: storage } });
    expect(st.status, st.text).toBe(201);
    const pol = await t.api('POST', '/api/v2/policies', {
      body: { name: 'lab', schedule: '0 3 * * *', retention: { daily: 2, weekly: 0, monthly: 0, yearly: 0 }, enabled: false, storageId: st.body.id, encryption: 'repokey', compression: 'lz4', quiesce: 'off' },
    });
    expect(pol.status, pol.text).toBe(201);
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'lab', policyId: pol.body.id } });
    expect(pool.status, pool.text).toBe(201);

    // The server's own key pair, authorised on the lab hosts like an operator would.
    const keys = await t.api('GET', '/api/v2/ssh/public-keys');
    expect(keys.status, keys.text).toBe(200);
    const lines = keys.body.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine) as string[];
    addedKeys.push(...lines);
    authorize(lines);

    // A shut-off clone, so its content is stable and restores need not stop a guest.
    vm = cloneVm(l, h, 'vm-stopped', `cli-${tag}`, `cli-${tag}`, false);

    for (const lh of l.hosts) {
      const host = await t.api('POST', '/api/v2/hosts', { body: { name: lh.name, address: l.sshHost, sshPort: l.sshPort, username: lh.user, libvirtUri: lh.libvirtUri, poolId: pool.body.id } });
      expect(host.status, host.text).toBe(201);
      const c = await t.api('POST', `/api/v2/hosts/${host.body.id}/connect`);
      expect(c.status, c.text).toBe(200);
    }
    const refreshed = await t.api('POST', '/api/v2/virtual-machines/refresh');
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(refreshed.body.hosts.map((s: { hostName: string; ok: boolean }) => [s.hostName, s.ok])).toEqual(l.hosts.map((x) => [x.name, true]));

    // The CLI's machine client; its secret goes into the child's environment only.
    const client = createMachineClient(t.dataDir, t.server.secretBox, `cli-lab-${tag}`, 'admin');
    env = { BACKROLL_URL: t.url, BACKROLL_CLIENT_ID: client.clientId, BACKROLL_CLIENT_SECRET: client.clientSecret };
    atBackup = rawSha(vm.disks[0]!.path);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    if (vm) removeClone(h, vm);
    unauthorize(
      l.hosts.map((x) => x.home),
      addedKeys,
    );
    for (const d of [storage, ...tempDirs]) if (d) fs.rmSync(d, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('vm list: the inventory, with the clone shut off', async () => {
    const r = await cli(['vm', 'list'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATE\s+UUID$/);
    const row = lines.find((x) => x.includes(vm.uuid));
    expect(row, r.stdout).toBeDefined();
    expect(row).toMatch(new RegExp(`\\s${vm.name}\\s+shut off\\s+${vm.uuid}$`));
    expect(r.stdout).toContain('vm-stopped');
    expect(r.stdout).toContain('vm2-stopped');
    // The secret never reaches argv (only the environment), and is never printed.
    expect(r.stdout + r.stderr).not.toContain(env.BACKROLL_CLIENT_SECRET);
  });

  it('backup <vm> --wait: exit 0, "task <id> succeeded" last, progress with % on stderr', async () => {
    const r = await cli(['backup', vm.name, '--wait'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const out = r.stdout.trimEnd().split('\n');
    const started = /^task (\S+) (queued|running) \(vm\.backup\)$/.exec(out[0]!);
    expect(started, r.stdout).not.toBeNull();
    backupTaskId = started![1]!;
    expect(out[out.length - 1]).toBe(`task ${backupTaskId} succeeded`);
    const progress = r.stderr.split('\n').filter((x) => x.includes('%'));
    expect(progress.length, r.stderr).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toMatch(/^\[#+\]\s+100\.0%.*succeeded/);
    expect(r.stderr).not.toContain('\u001b['); // not a terminal: plain lines, no redraws
    const task = await t.api('GET', `/api/v2/tasks/${backupTaskId}`);
    expect(task.body).toMatchObject({ kind: 'vm.backup', state: 'succeeded', startedBy: expect.stringMatching(/^client:/) });
  }, 240_000);

  it('vm restore-points <vm>: lists the new restore point', async () => {
    const rps = await t.api('GET', `/api/v2/virtual-machines?name=${encodeURIComponent(vm.name)}`);
    const vmId = rps.body.items.find((v: { uuid: string }) => v.uuid === vm.uuid).id;
    const api = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
    expect(api.body.items).toHaveLength(1);
    restorePointId = api.body.items[0].id;
    expect(api.body.items[0].taskId).toBe(backupTaskId);

    const r = await cli(['vm', 'restore-points', vm.name], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+EPOCH\s+CREATED\s+SIZE\s+DEDUPLICATED\s+READ$/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^${restorePointId}\\s+${api.body.items[0].epoch}\\s+\\S+\\s+\\d+(\\.\\d)? (B|KiB|MiB|GiB)`));
    // A shut-off VM is read in full (no changed-block tracking): the reason follows.
    expect(api.body.items[0].read.mode).toBe('full');
    expect(lines[1]).toMatch(/\s{2}full: \d+(\.\d)? (B|KiB|MiB|GiB) of \d+(\.\d)? (B|KiB|MiB|GiB) read \(.+\)$/);
  });

  it('restore <vm> latest --to-dir <empty dir> --wait: the disk image (same content) and domain.xml', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-cli-restore-'));
    tempDirs.push(dir);
    const r = await cli(['restore', vm.name, 'latest', '--to-dir', dir, '--wait'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const out = r.stdout.trimEnd().split('\n');
    const id = /^task (\S+) \S+ \(vm\.restore\)$/.exec(out[0]!)?.[1];
    expect(id, r.stdout).toBeDefined();
    restoreTaskIds.push(id!);
    expect(out[out.length - 1]).toBe(`task ${id} succeeded`);
    expect(r.stderr).toMatch(/%/);
    const disk = path.basename(vm.disks[0]!.path);
    expect(fs.readdirSync(dir).sort()).toEqual(['backroll.json', 'domain.xml', disk].sort());
    expect(fs.readFileSync(path.join(dir, 'domain.xml'), 'utf8')).toContain(vm.uuid);
    expect(rawSha(path.join(dir, disk))).toBe(atBackup);
    const task = await t.api('GET', `/api/v2/tasks/${id}`);
    expect(task.body.payload).toMatchObject({ restorePointId, mode: 'directory', directory: dir });
  }, 240_000);

  it('restore <vm> latest --wait (in place): the changed disk is back as backed up, the VM stays shut off', async () => {
    scribble(h, vm, 'vda', false, '0xc4');
    expect(rawSha(vm.disks[0]!.path)).not.toBe(atBackup);
    const r = await cli(['restore', vm.name, 'latest', '--wait'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const out = r.stdout.trimEnd().split('\n');
    const id = /^task (\S+) \S+ \(vm\.restore\)$/.exec(out[0]!)?.[1];
    expect(id, r.stdout).toBeDefined();
    restoreTaskIds.push(id!);
    expect(out[out.length - 1]).toBe(`task ${id} succeeded`);
    expect(r.stderr).toMatch(/%/);
    expect(rawSha(vm.disks[0]!.path)).toBe(atBackup);
    expect(domState(h, vm.uuid)).toBe('shut off');
    expect(leftovers(vm.dir)).toEqual([]);
    const task = await t.api('GET', `/api/v2/tasks/${id}`);
    expect(task.body).toMatchObject({ state: 'succeeded', payload: { restorePointId, mode: 'in-place' } });
  }, 240_000);

  it('task list shows the backup and the restores; task logs <id> prints its lines', async () => {
    const r = await cli(['task', 'list', '--limit', '50'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    expect(r.stdout.split('\n')[0]).toMatch(/^ID\s+KIND\s+STATE\s+PROGRESS\s+CREATED\s+BY$/);
    for (const [id, kind] of [[backupTaskId, 'vm.backup'], ...restoreTaskIds.map((x) => [x, 'vm.restore'])] as Array<[string, string]>) {
      expect(r.stdout, `task ${id}`).toMatch(new RegExp(`^${id}\\s+${kind.replace('.', '\\.')}\\s+succeeded\\s+100%\\s`, 'm'));
    }
    const byKind = await cli(['task', 'list', '--kind', 'vm.restore'], env);
    expect(byKind.code, show(byKind)).toBe(EXIT.ok);
    expect(byKind.stdout).not.toContain(backupTaskId);

    for (const id of [backupTaskId, restoreTaskIds[1]!]) {
      const logs = await cli(['task', 'logs', id], env);
      expect(logs.code, show(logs)).toBe(EXIT.ok);
      const lines = logs.stdout.trimEnd().split('\n');
      expect(lines.length, logs.stdout).toBeGreaterThan(1);
      for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\S+ (DEBUG|INFO |WARN |ERROR) /);
    }
    expect((await cli(['task', 'logs', restoreTaskIds[1]!], env)).stdout).toContain('qemu-img check');
  }, 120_000);

  it('errors: an unknown VM exits 5 with a clear message; a wrong client secret exits 4', async () => {
    const missing = await cli(['backup', 'no-such-vm'], env);
    expect(missing.code, show(missing)).toBe(EXIT.notFound);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^backroll: no VM named "no-such-vm" in the inventory/);

    const noRp = await cli(['restore', vm.name, '12345'], env);
    expect(noRp.code, show(noRp)).toBe(EXIT.notFound);
    expect(noRp.stderr).toContain(`has no restore point "12345"`);

    const wrong = await cli(['backup', vm.name, '--wait'], { ...env, BACKROLL_CLIENT_SECRET: `${env.BACKROLL_CLIENT_SECRET}x` });
    expect(wrong.code, show(wrong)).toBe(EXIT.auth);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/^backroll: the token endpoint refused the client: invalid_client/);
    // Nothing was started by either.
    const tasks = await t.api('GET', '/api/v2/tasks?kind=vm.backup&limit=50');
    expect(tasks.body.items.map((x: { id: string }) => x.id)).toEqual([backupTaskId]);
  }, 60_000);

  it('pool backup <pool> --wait: POST /pools/{id}/backup starts the parent pool.backup, one vm.backup child per eligible VM, exit 0', async () => {
    // Only the clone stays eligible (the lab's own VMs are marked gone from the inventory), so
    // the pool backup touches no lab VM; the parent still fans out through the real handler.
    const vmRow = (await t.api('GET', `/api/v2/virtual-machines?name=${encodeURIComponent(vm.name)}`)).body.items.find((v: { uuid: string }) => v.uuid === vm.uuid);
    await t.server.db.updateTable('virtual_machines').set({ present: 0 }).where('id', '!=', vmRow.id).execute();
    const before = (await t.api('GET', `/api/v2/virtual-machines/${vmRow.id}/restore-points`)).body.items.length;

    const r = await cli(['pool', 'backup', 'lab', '--wait'], env);
    expect(r.code, show(r)).toBe(EXIT.ok);
    const out = r.stdout.trimEnd().split('\n');
    const parentId = /^task (\S+) (queued|running) \(pool\.backup\)$/.exec(out[0]!)?.[1];
    expect(parentId, r.stdout).toBeDefined();
    expect(out[out.length - 1]).toBe(`task ${parentId} succeeded`);
    const parent = await t.api('GET', `/api/v2/tasks/${parentId}`);
    expect(parent.body).toMatchObject({ kind: 'pool.backup', state: 'succeeded', target: { type: 'pool' }, startedBy: expect.stringMatching(/^client:/) });
    const children = await t.api('GET', `/api/v2/tasks?parentId=${parentId}`);
    expect(children.body.items.map((c: { kind: string; state: string; target: { id: string } }) => [c.kind, c.state, c.target.id])).toEqual([['vm.backup', 'succeeded', vmRow.id]]);
    expect((await t.api('GET', `/api/v2/virtual-machines/${vmRow.id}/restore-points`)).body.items).toHaveLength(before + 1);

    const unknown = await cli(['pool', 'backup', 'no-such-pool'], env);
    expect(unknown.code, show(unknown)).toBe(EXIT.notFound);
    expect(unknown.stderr).toContain('no pool "no-such-pool"');
  }, 240_000);
});
