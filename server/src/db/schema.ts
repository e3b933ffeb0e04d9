import type { Generated } from 'kysely';

/**
 * Table shapes, portable across SQLite, PostgreSQL and MySQL/MariaDB:
 * ids are UUID strings, timestamps ISO-8601 UTC strings (sortable), booleans
 * 0/1 integers, lists and objects JSON text. Repositories convert to domain types.
 */
export interface StorageTable {
  id: string;
  name: string;
  path: string;
  created_at: string;
  updated_at: string;
}

export interface HookTable {
  id: string;
  name: string;
  kind: string;
  url_sealed: string;
  secret_sealed: string | null;
  events: string;
  created_at: string;
  updated_at: string;
}

export interface PolicyTable {
  id: string;
  name: string;
  description: string;
  schedule: string;
  timezone: string;
  retention_daily: number;
  retention_weekly: number;
  retention_monthly: number;
  retention_yearly: number;
  storage_id: string;
  hook_id: string | null;
  enabled: number;
  quiesce: string;
  compression: string;
  encryption: string;
  created_at: string;
  updated_at: string;
  /** 0008: a backup reads the whole disk at least every this many days (incremental backups). */
  full_every_days?: number;
  /** 0008: 1 = running qcow2 v3 VMs are read through pull-mode backup jobs with checkpoints. */
  changed_block_tracking?: number;
}

export interface ConnectorTable {
  id: string;
  name: string;
  kind: string;
  endpoint_url: string;
  api_key_sealed: string;
  secret_key_sealed: string;
  /** 0006: verify the endpoint's certificate (0/1) and extra trusted CAs (PEM). */
  verify_tls: number;
  ca_certificate: string | null;
  created_at: string;
  updated_at: string;
}

export interface PoolTable {
  id: string;
  name: string;
  policy_id: string;
  connector_id: string | null;
  created_at: string;
  updated_at: string;
}

export interface HostTable {
  id: string;
  name: string;
  address: string;
  ssh_port: number;
  username: string;
  pool_id: string;
  tags: string;
  libvirt_uri: string;
  /** 0010: 'auto' | 'mount' | 'ssh' — how a backup reads this host's disks (DiskAccess). */
  disk_access?: string;
  host_key: string | null;
  host_key_fingerprint: string | null;
  connection_state: string;
  connection_error_code: string | null;
  connection_message: string | null;
  last_seen_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface VirtualMachineTable {
  id: string;
  host_id: string;
  uuid: string;
  name: string;
  state: string;
  vcpus: number;
  memory_bytes: number;
  disks: string;
  cloudstack_managed: number;
  system_vm: number;
  present: number;
  /** 0009: CloudStack's view of the VM (JSON, CloudStackVmInfo), null when CloudStack does not know it. */
  cloudstack?: string | null;
  last_seen_at: string;
  created_at: string;
  updated_at: string;
}

export interface TaskTable {
  id: string;
  kind: string;
  state: string;
  target_type: string | null;
  target_id: string | null;
  parent_id: string | null;
  progress_percent: number | null;
  bytes_done: number | null;
  bytes_total: number | null;
  rate_bytes_per_second: number | null;
  started_by: string | null;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** JSON of the handler's input; never secrets. */
  payload: string | null;
  progress_step: string | null;
  retry_of: string | null;
  resource_host_id: string | null;
  resource_storage_id: string | null;
  cancel_requested_at: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
  schedule_run_id: string | null;
  awaiting_children: number;
}

export interface TaskSlotTable {
  scope: string;
  slot: number;
  task_id: string;
  expires_at: string;
}

export interface ScheduleRunTable {
  id: string;
  policy_id: string;
  scheduled_for: string;
  recorded_at: string;
  outcome: string;
  pool_count: number;
  detail: string | null;
}

export interface ScheduleCursorTable {
  policy_id: string;
  schedule: string;
  timezone: string;
  next_run_at: string;
  updated_at: string;
}

export interface TaskLogTable {
  task_id: string;
  seq: number;
  at: string;
  level: string;
  message: string;
}

/** Unique (vm_id, repository, epoch) since 0004 (0001 had (vm_id, epoch)). */
export interface RestorePointTable {
  id: string;
  vm_id: string;
  storage_id: string;
  repository: string;
  epoch: number;
  archives: string;
  original_size: number | null;
  compressed_size: number | null;
  deduplicated_size: number | null;
  duration_ms: number | null;
  task_id: string | null;
  created_at: string;
  /** 0004: `user:<name>`, `schedule:<policy id>`… of the backup task. */
  started_by: string | null;
  /** 0004: JSON list of the disks (target, path, format, archive, sizes). */
  disks: string | null;
  /** 0004: `backroll` (made by Backroll) or `borg` (found in the repository by a reconcile). */
  source: string | null;
  /** 0008: `full` | `incremental` (null: made before 0008, a full read). */
  read_mode?: string | null;
  bytes_to_read?: number | null;
  bytes_read?: number | null;
  full_reason?: string | null;
  /** 0008: the libvirt checkpoint created with this restore point, and its full XML. */
  checkpoint_name?: string | null;
  checkpoint_xml?: string | null;
  /** 0008: epoch of the full read this restore point's chain of incrementals started from. */
  chain_full_epoch?: number | null;
}

/** 0004: one row per locked VM; the lease is renewed by heartbeats and dies with its holder. */
export interface VmLockTable {
  vm_id: string;
  token: string;
  owner: string;
  purpose: string;
  acquired_at: string;
  expires_at: string;
}

/** 0007: one storage's figures at one moment (recorded periodically by the api role). */
export interface StorageUsageSampleTable {
  id: string;
  storage_id: string;
  at: string;
  capacity_bytes: number | null;
  used_bytes: number | null;
  free_bytes: number | null;
  /** Sums over the storage's restore points: deduplicated and original sizes. */
  backup_bytes: number;
  original_bytes: number;
}

/** 0007: one notification sent by a hook (or a test), its outcome. */
export interface HookDeliveryTable {
  id: string;
  hook_id: string;
  event: string;
  test: number;
  task_id: string | null;
  delivered: number;
  status: number | null;
  error: string | null;
  attempts: number;
  duration_ms: number;
  at: string;
}

/** 0011: compaction bookkeeping per borg repository (backups/compaction.ts). */
export interface RepositoryCompactionTable {
  repository_key: string;
  repository: string;
  compacted_at: string | null;
  /** When archives were first deleted since the last compaction; null: nothing to reclaim. */
  deleted_since: string | null;
}

export interface Database {
  storages: StorageTable;
  hooks: HookTable;
  policies: PolicyTable;
  connectors: ConnectorTable;
  pools: PoolTable;
  hosts: HostTable;
  virtual_machines: VirtualMachineTable;
  tasks: TaskTable;
  task_logs: TaskLogTable;
  task_slots: TaskSlotTable;
  schedule_runs: ScheduleRunTable;
  schedule_cursors: ScheduleCursorTable;
  restore_points: RestorePointTable;
  vm_locks: VmLockTable;
  storage_usage_samples: StorageUsageSampleTable;
  hook_deliveries: HookDeliveryTable;
  repository_compactions: RepositoryCompactionTable;
}

// Keep Generated referenced for future auto columns without changing imports.
export type _Unused = Generated<number>;
