/**
 * Crash tests on the KVM lab: real `backroll start --roles worker` processes (built dist/) with
 * the DEFAULT task and VM-lock leases, killed with SIGKILL at a named step (the test-only crash
 * points of src/tasks/crash-points.ts: the process freezes there and announces it), in embedded
 * mode (SQLite, the killed process is started again) or distributed mode (PostgreSQL + Redis/
 * BullMQ, a surviving worker takes over). Tasks are submitted and read through an API-only
 * server in the test process. Works on a running clone of the lab's two-disk VM.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { Lab, LabHost } from '../../src/adapters/ssh/test-lab.js';
import { cloneVm, domState, leftovers, rawSha, removeClone, virshAs, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import type { CrashPoint } from '../../src/tasks/crash-points.js';
import { startBackroll, type BackrollProcess } from './processes.js';
import { dropPrefix, REDIS_URL, uniquePrefix } from './redis.js';
import { startTestServer, type TestServer } from './server.js';

export type CrashMode = 'embedded' | 'distributed';

/** Defaults the crash tests rely on (docs/recovery.md): task lease 30 s, reaper every 15 s. */
export const TASK_LEASE_MS = 30_000;

export interface Crash {
  taskId: string;
  victim: BackrollProcess;
  killedAt: number;
}

export class CrashLab {
  t!: TestServer;
  vm!: CloneVm;
  vmId = randomUUID();
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-crash-storage-'));
  readonly crashFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-crash-')), 'armed');
  readonly workers: BackrollProcess[] = [];
  private readonly all: BackrollProcess[] = [];
  private readonly prefix = uniquePrefix();
  private dataDir = '';
  private mark = Date.now();

  /** Prints how long the last phase took (the CI log shows where the time goes). */
  phase(name: string): void {
    const now = Date.now();
    console.log(`[crash-lab ${this.mode}] ${name}: ${((now - this.mark) / 1000).toFixed(1)} s`);
    this.mark = now;
  }

  constructor(
    readonly mode: CrashMode,
    readonly l: Lab,
    readonly h: LabHost,
  ) {}

  async setUp(tag: string): Promise<void> {
    this.arm(null);
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-crash-data-'));
    fs.mkdirSync(path.join(this.dataDir, 'ssh'), { mode: 0o700 });
    fs.copyFileSync(this.l.clientKeyPath, path.join(this.dataDir, 'ssh', 'id_ed25519'));
    fs.chmodSync(path.join(this.dataDir, 'ssh', 'id_ed25519'), 0o600);
    const env: Record<string, string> = this.mode === 'distributed' ? { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: this.prefix } : {};
    this.t = await startTestServer(this.mode === 'embedded' ? 'sqlite' : 'postgres', env, { roles: ['api'], dataDir: this.dataDir });
    const api = async (p: string, body: unknown) => {
      const r = await this.t.api('POST', p, { body });
      expect(r.status, r.text).toBe(201);
      return r.body.id as string;
    };
    const storageId = await api('/api/v2/storages', { name: 'crash', path: this.storage });
    const policyId = await api('/api/v2/policies', { name: 'crash', schedule: '0 3 * * *', retention: { daily: 3, weekly: 0, monthly: 0, yearly: 0 }, storageId, encryption: 'none', compression: 'lz4', quiesce: 'off' });
    // These tests kill the worker at the snapshot path's steps (snapshot, borg create, block
    // commit); kill -9 in the middle of an incremental (pull-mode) backup is tested in
    // src/backups/incremental.lab.test.ts.
    await this.t.server.db.updateTable('policies').set({ changed_block_tracking: 0 }).where('id', '=', policyId).execute();
    const poolId = await api('/api/v2/pools', { name: 'crash', policyId });
    const hostId = await api('/api/v2/hosts', { name: this.h.name, address: this.l.sshHost, sshPort: this.l.sshPort, username: this.h.user, poolId, libvirtUri: this.h.libvirtUri });
    await this.t.server.db.updateTable('hosts').set({ connection_state: 'connected' }).where('id', '=', hostId).execute();
    this.vm = cloneVm(this.l, this.h, 'vm-twodisks', `crash-${tag}`, `crash-${tag}`, true);
    const now = new Date().toISOString();
    await this.t.server.db
      .insertInto('virtual_machines')
      .values({ id: this.vmId, host_id: hostId, uuid: this.vm.uuid, name: this.vm.name, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
  }

  async tearDown(): Promise<void> {
    await Promise.all(this.all.map((w) => w.stop()));
    await this.t?.close();
    if (this.vm) removeClone(this.h, this.vm);
    fs.rmSync(this.storage, { recursive: true, force: true });
    fs.rmSync(path.dirname(this.crashFile), { recursive: true, force: true });
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    if (this.mode === 'distributed') await dropPrefix(this.prefix);
  }

  get tasks() {
    return this.t.server.services.tasks;
  }

  /** The step at which the next worker to reach it freezes; null: none. */
  arm(step: CrashPoint | `fail:${CrashPoint}` | null): void {
    fs.writeFileSync(this.crashFile, step ? `${step}\n` : '');
  }

  async startWorker(): Promise<BackrollProcess> {
    const w = startBackroll('worker', {
      BACKROLL_DATA_DIR: this.dataDir,
      BACKROLL_DATABASE_URL: this.mode === 'embedded' ? `sqlite:${this.t.db.config.url}` : this.t.db.config.url,
      ...(this.mode === 'distributed' ? { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: this.prefix } : {}),
      BACKROLL_INVENTORY_INTERVAL_SECONDS: '0',
      // The lab guests have no OS: they ignore the ACPI shutdown of a restore (not a lease).
      BACKROLL_VM_SHUTDOWN_TIMEOUT_SECONDS: '1',
      BACKROLL_TEST_CRASH_POINTS: this.crashFile,
    });
    this.workers.push(w);
    this.all.push(w);
    await w.waitFor('"msg":"worker started"', 120_000);
    return w;
  }

  async backup(): Promise<string> {
    const r = await this.t.api('POST', `/api/v2/virtual-machines/${this.vmId}/backups`);
    expect(r.status, r.text).toBe(202);
    return r.body.id;
  }

  async restoreInPlace(restorePointId: string): Promise<string> {
    const r = await this.t.api('POST', `/api/v2/virtual-machines/${this.vmId}/restores`, { body: { restorePointId, mode: 'in-place' } });
    expect(r.status, r.text).toBe(202);
    return r.body.id;
  }

  async latestRestorePoint(): Promise<string> {
    const r = await this.t.api('GET', `/api/v2/virtual-machines/${this.vmId}/restore-points`);
    expect(r.status, r.text).toBe(200);
    return r.body.items[0].id;
  }

  async waitTask(id: string, timeoutMs = 180_000) {
    return this.tasks.waitFor(id, timeoutMs);
  }

  /**
   * Arms `step`, submits a task, waits until a worker freezes at that step and kills it with
   * SIGKILL; then starts a worker again (embedded: the restart that recovers; distributed: a
   * replacement, a survivor recovers once the lease has run out).
   */
  async crashAt(step: CrashPoint, submit: () => Promise<string>): Promise<Crash> {
    this.arm(step);
    const taskId = await submit();
    const line = `backroll test crash point reached: ${step} (task ${taskId})`;
    this.phase(`${step}: submitted`);
    const victim = await Promise.any(this.workers.map((w) => w.waitFor(line, 180_000).then(() => w)));
    this.phase(`${step}: reached`);
    expect((await this.tasks.get(taskId)).state).toBe('running');
    await victim.kill9();
    const killedAt = Date.now();
    this.arm(null);
    this.workers.splice(this.workers.indexOf(victim), 1);
    await this.startWorker();
    this.phase(`${step}: killed, worker started`);
    return { taskId, victim, killedAt };
  }

  /** Waits for the task to be interrupted and recovered; returns the log and ms from the kill. */
  async recovered(crash: Crash): Promise<{ log: string[]; afterKillMs: number }> {
    const end = Date.now() + 120_000;
    for (;;) {
      const task = await this.tasks.get(crash.taskId);
      const log = (await this.tasks.logs(crash.taskId)).items.map((l) => l.message);
      if (task.state === 'interrupted' && log.some((m) => m === 'recovery finished' || m.startsWith('recovery failed'))) {
        expect(task.error?.code).toBe('TASK.INTERRUPTED');
        expect(log.filter((m) => m.startsWith('recovery failed'))).toEqual([]);
        expect(log).toContain('recovery finished');
        this.phase('recovered');
        return { log, afterKillMs: Date.now() - crash.killedAt };
      }
      if (Date.now() > end) throw new Error(`task ${crash.taskId} not recovered (${task.state}); log:\n${log.join('\n')}\nworkers:\n${this.workers.map((w) => w.output().slice(-3000)).join('\n---\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The automatic retry of an interrupted backup, once it has ended. */
  async retryOf(taskId: string) {
    const end = Date.now() + 180_000;
    for (;;) {
      const page = await this.tasks.list({ kind: 'vm.backup' }, { limit: 50, offset: 0 });
      const retry = page.items.find((x) => x.retryOf === taskId);
      if (retry) return this.waitTask(retry.id);
      if (Date.now() > end) throw new Error(`no automatic retry of ${taskId}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The VM runs on its own base disks (live and persistent definition), nothing of Backroll next to them. */
  expectWhole(): void {
    expect(domState(this.h, this.vm.uuid)).toBe('running');
    const paths = this.vm.disks.map((d) => d.path);
    expect(sourcesOf(this.h, this.vm.uuid, false)).toEqual(paths);
    expect(sourcesOf(this.h, this.vm.uuid, true)).toEqual(paths);
    for (const d of this.vm.disks) expect(backingOf(this.h, this.vm.uuid, d.target), `${d.target} has a backing file`).toBe(false);
    expect(leftovers(this.vm.dir)).toEqual([]);
  }

  shas(): Record<string, string> {
    return Object.fromEntries(this.vm.disks.map((d) => [d.target, rawSha(d.path)]));
  }
}

function sourcesOf(h: LabHost, uuid: string, inactive: boolean): string[] {
  const xml = virshAs(h, 'dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', uuid);
  return xml
    .split('<disk ')
    .slice(1)
    .map((d) => /<source file='([^']*)'/.exec(d.split('</disk>')[0]!)?.[1] ?? '');
}

/** Whether libvirt sees a backing store under the disk (an overlay left on it). */
function backingOf(h: LabHost, uuid: string, target: string): boolean {
  const xml = virshAs(h, 'dumpxml', '--domain', uuid);
  const disk = xml.split('<disk ').slice(1).find((d) => d.includes(`dev='${target}'`))!;
  return /<backingStore type=/.test(disk);
}

export const crashTag = () => randomBytes(3).toString('hex');
