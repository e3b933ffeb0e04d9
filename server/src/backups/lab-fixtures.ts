/**
 * Test-only: inventory rows (storage, policy, pool, host, VM) for lab VMs, inserted
 * through the database like the inventory would, and helpers to read disks.
 */
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../db/database.js';
import type { TaskContext, TaskLogLevel, TaskProgress } from '../tasks/task-context.js';
import { runAsHostUser, type Lab, type LabHost } from '../adapters/ssh/test-lab.js';

export const EVIL = 'evil$(touch PWNED);\'"`id` x';

export async function insertInventory(db: Db, l: Lab, storagePath: string, policy: Partial<{ quiesce: string; compression: string; encryption: string; daily: number; weekly: number; monthly: number; yearly: number }> = {}) {
  const now = new Date().toISOString();
  const storageId = randomUUID();
  const policyId = randomUUID();
  const poolId = randomUUID();
  await db.insertInto('storages').values({ id: storageId, name: `lab-${storageId.slice(0, 8)}`, path: storagePath, created_at: now, updated_at: now }).execute();
  await db
    .insertInto('policies')
    .values({
      id: policyId,
      name: `lab-${policyId.slice(0, 8)}`,
      description: '',
      schedule: '0 3 * * *',
      timezone: 'UTC',
      retention_daily: policy.daily ?? 7,
      retention_weekly: policy.weekly ?? 4,
      retention_monthly: policy.monthly ?? 0,
      retention_yearly: policy.yearly ?? 0,
      storage_id: storageId,
      hook_id: null,
      enabled: 1,
      quiesce: policy.quiesce ?? 'preferred',
      compression: policy.compression ?? 'lz4',
      encryption: policy.encryption ?? 'none',
      created_at: now,
      updated_at: now,
    })
    .execute();
  await db.insertInto('pools').values({ id: poolId, name: `lab-${poolId.slice(0, 8)}`, policy_id: policyId, connector_id: null, created_at: now, updated_at: now }).execute();
  const hosts = new Map<string, string>();
  for (const h of l.hosts) {
    const id = randomUUID();
    hosts.set(h.name, id);
    await db
      .insertInto('hosts')
      .values({
        id,
        name: `${h.name}-${id.slice(0, 4)}`,
        address: l.sshHost,
        ssh_port: l.sshPort,
        username: h.user,
        pool_id: poolId,
        tags: '[]',
        libvirt_uri: h.libvirtUri,
        host_key: null,
        host_key_fingerprint: null,
        connection_state: 'connected',
        connection_error_code: null,
        connection_message: null,
        last_seen_at: now,
        created_at: now,
        updated_at: now,
      })
      .execute();
  }
  const vms = new Map<string, string>();
  for (const h of l.hosts) {
    for (const vm of h.vms) {
      const uuid = domUuid(h, vm.name);
      const id = randomUUID();
      vms.set(`${h.name}/${vm.name}`, id);
      await db
        .insertInto('virtual_machines')
        .values({ id, host_id: hosts.get(h.name)!, uuid, name: vm.name, state: vm.state, vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
    }
  }
  return { storageId, policyId, poolId, hosts, vms };
}

export function domUuid(h: LabHost, name: string): string {
  const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'domuuid', '--domain', name]);
  if (r.status !== 0) throw new Error(`domuuid ${name}: ${r.stderr}`);
  return r.stdout.trim();
}

export function hostVirsh(h: LabHost, ...args: string[]): string {
  const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, ...args]);
  if (r.status !== 0) throw new Error(`virsh ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Disk sources of a domain (live or --inactive XML). */
export function sourcesOf(h: LabHost, name: string, inactive = false): string[] {
  const xml = hostVirsh(h, 'dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', name);
  const disks = xml.split('<disk ').slice(1).map((d) => d.split('</disk>')[0]!);
  return disks.map((d) => /<source file='([^']*)'/.exec(d)?.[1] ?? '');
}

export const LAB_SCRIPTS = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../scripts/lab');

export function writeGuest(h: LabHost, vm: string, offset: string, length: string, byte: number, target = 'vda'): void {
  const r = spawnSync('bash', [path.join(LAB_SCRIPTS, 'write-guest.sh'), h.user, vm, offset, length, `0x${byte.toString(16)}`, target], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`write-guest.sh failed: ${r.stderr}`);
}

export function writeGuestAsync(h: LabHost, vm: string, offset: string, length: string, byte: number): Promise<void> {
  return new Promise((resolve, reject) => {
    import('node:child_process').then(({ execFile }) =>
      execFile('bash', [path.join(LAB_SCRIPTS, 'write-guest.sh'), h.user, vm, offset, length, `0x${byte.toString(16)}`], (err, _o, stderr) => (err ? reject(new Error(`write-guest.sh: ${stderr}`)) : resolve())),
    );
  });
}

/** `qemu-img convert -O raw` of an image (with -U: it may be in use). */
export function toRaw(image: string, out: string, extra: string[] = []): void {
  const r = spawnSync('qemu-img', ['convert', '-U', ...extra, '-O', 'raw', image, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img convert ${image}: ${r.stderr}`);
}

export function sha256(file: string): string {
  const r = spawnSync('sha256sum', [file], { encoding: 'utf8' });
  return r.stdout.split(' ')[0]!;
}

/** The bytes of a raw file in [offset, offset+length) are all `byte`. */
export function allBytes(rawFile: string, offset: number, length: number, byte: number): boolean {
  const fd = fs.openSync(rawFile, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf.every((b) => b === byte);
  } finally {
    fs.closeSync(fd);
  }
}

export interface FakeContext extends TaskContext {
  lines: Array<{ level: TaskLogLevel; message: string }>;
  progresses: TaskProgress[];
  controller: AbortController;
}

/** A TaskContext for running handlers directly; `onLog` may await (the engine awaits its log lines). */
export function fakeContext(onLog?: (message: string) => Promise<void> | void): FakeContext {
  const controller = new AbortController();
  const lines: FakeContext['lines'] = [];
  const progresses: TaskProgress[] = [];
  return {
    taskId: randomUUID(),
    signal: controller.signal,
    startedBy: 'user:lab-test',
    controller,
    lines,
    progresses,
    async log(level, message) {
      lines.push({ level, message });
      if (process.env.BACKROLL_TEST_VERBOSE) process.stderr.write(`[${level}] ${message}\n`);
      await onLog?.(message);
    },
    progress(p) {
      progresses.push(p);
    },
  };
}
