/** Rows for the console's read models, written straight into a test database. */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../src/db/database.js';
import type { TaskTable } from '../../src/db/schema.js';

export const iso = (ms: number) => new Date(ms).toISOString();

export async function seedStorage(db: Db, name: string, dir: string): Promise<string> {
  const id = randomUUID();
  const t = iso(Date.now());
  await db.insertInto('storages').values({ id, name, path: dir, created_at: t, updated_at: t }).execute();
  return id;
}

export async function seedPolicy(db: Db, o: { name: string; storageId: string; schedule?: string; enabled?: boolean; timezone?: string }): Promise<string> {
  const id = randomUUID();
  const t = iso(Date.now());
  await db
    .insertInto('policies')
    .values({
      id,
      name: o.name,
      description: '',
      schedule: o.schedule ?? '0 2 * * *',
      timezone: o.timezone ?? 'UTC',
      retention_daily: 7,
      retention_weekly: 0,
      retention_monthly: 0,
      retention_yearly: 0,
      storage_id: o.storageId,
      hook_id: null,
      enabled: o.enabled === false ? 0 : 1,
      quiesce: 'off',
      compression: 'lz4',
      encryption: 'none',
      created_at: t,
      updated_at: t,
    })
    .execute();
  return id;
}

export async function seedPool(db: Db, name: string, policyId: string): Promise<string> {
  const id = randomUUID();
  const t = iso(Date.now());
  await db.insertInto('pools').values({ id, name, policy_id: policyId, connector_id: null, created_at: t, updated_at: t }).execute();
  return id;
}

export async function seedHost(
  db: Db,
  o: { name: string; poolId: string; state?: string; errorCode?: string | null; tags?: string[]; fingerprint?: string | null },
): Promise<string> {
  const id = randomUUID();
  const t = iso(Date.now());
  await db
    .insertInto('hosts')
    .values({
      id,
      name: o.name,
      address: `${o.name}.example`,
      ssh_port: 22,
      username: 'root',
      pool_id: o.poolId,
      tags: JSON.stringify(o.tags ?? []),
      libvirt_uri: 'qemu:///system',
      host_key: null,
      host_key_fingerprint: o.fingerprint ?? null,
      connection_state: o.state ?? 'connected',
      connection_error_code: o.errorCode ?? null,
      connection_message: o.errorCode ? `${o.errorCode}: see the host` : null,
      last_seen_at: t,
      created_at: t,
      updated_at: t,
    })
    .execute();
  return id;
}

export async function seedVm(db: Db, o: { name: string; hostId: string; systemVm?: boolean; present?: boolean; state?: string }): Promise<string> {
  const id = randomUUID();
  const t = iso(Date.now());
  await db
    .insertInto('virtual_machines')
    .values({
      id,
      host_id: o.hostId,
      uuid: randomUUID(),
      name: o.name,
      state: o.state ?? 'running',
      vcpus: 2,
      memory_bytes: 2 * 2 ** 30,
      disks: JSON.stringify([{ target: 'vda' }, { target: 'vdb' }]),
      cloudstack_managed: 0,
      system_vm: o.systemVm ? 1 : 0,
      present: o.present === false ? 0 : 1,
      last_seen_at: t,
      created_at: t,
      updated_at: t,
    })
    .execute();
  return id;
}

export function taskRow(o: Partial<TaskTable> & { kind: string; state: string; created_at: string }): TaskTable {
  return {
    id: randomUUID(),
    target_type: null,
    target_id: null,
    parent_id: null,
    progress_percent: null,
    bytes_done: null,
    bytes_total: null,
    rate_bytes_per_second: null,
    started_by: null,
    result: null,
    error_code: null,
    error_message: null,
    attempts: 1,
    started_at: null,
    finished_at: null,
    updated_at: o.created_at,
    payload: null,
    progress_step: null,
    retry_of: null,
    resource_host_id: null,
    resource_storage_id: null,
    cancel_requested_at: null,
    lease_owner: null,
    lease_expires_at: null,
    schedule_run_id: null,
    awaiting_children: 0,
    ...o,
  };
}

/** A finished vm.backup task of a VM. */
export async function seedBackupTask(db: Db, vmId: string, state: string, atMs: number, extra: Partial<TaskTable> = {}): Promise<string> {
  const row = taskRow({
    kind: 'vm.backup',
    state,
    target_type: 'vm',
    target_id: vmId,
    created_at: iso(atMs - 60_000),
    started_at: iso(atMs - 60_000),
    finished_at: ['queued', 'running'].includes(state) ? null : iso(atMs),
    updated_at: iso(atMs),
    error_code: state === 'failed' ? 'BACKUP.DISK_READ' : null,
    error_message: state === 'failed' ? 'disk read failed' : null,
    started_by: 'schedule:x',
    ...extra,
  });
  await db.insertInto('tasks').values(row).execute();
  return row.id;
}

export async function seedRestorePoint(db: Db, o: { vmId: string; storageId: string; atMs: number; original?: number; dedup?: number }): Promise<string> {
  const id = randomUUID();
  const epoch = Math.floor(o.atMs / 1000);
  await db
    .insertInto('restore_points')
    .values({
      id,
      vm_id: o.vmId,
      storage_id: o.storageId,
      repository: `/r/${o.vmId}`,
      epoch,
      archives: JSON.stringify([`vda_${epoch}`]),
      original_size: o.original ?? 1000,
      compressed_size: o.original ?? 1000,
      deduplicated_size: o.dedup ?? 100,
      duration_ms: 1000,
      task_id: null,
      created_at: iso(o.atMs),
      started_by: null,
      disks: null,
      source: 'backroll',
    })
    .execute();
  return id;
}
