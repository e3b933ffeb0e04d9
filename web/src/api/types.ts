// Types of the /api/v2 resources the console uses (see /work/wt/UI-API.md, docs/api-console.md).
export type Iso = string;

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface TaskPage extends Page<Task> {
  totalCapped?: boolean;
  nextCursor?: string | null;
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  code?: string;
  detail?: string;
  instance?: string;
  requestId?: string;
  errors?: FieldProblem[];
  [extra: string]: unknown;
}

export interface FieldProblem {
  path: string;
  message: string;
}

export interface ConsoleConfig {
  issuer: string;
  clientId: string;
  redirectUri: string;
  scope: string;
  resource?: string;
  embeddedIdp: boolean;
  version: string;
}

export interface Me {
  subject: string;
  name: string;
  roles: string[];
  isAdmin: boolean;
  kind: 'user' | 'client';
  tokenExpiresAt?: Iso;
}

export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'interrupted' | 'partial';
export const TASK_STATES: TaskState[] = ['queued', 'running', 'succeeded', 'failed', 'partial', 'canceled', 'interrupted'];
export const FINISHED_STATES: TaskState[] = ['succeeded', 'failed', 'partial', 'canceled', 'interrupted'];

export interface TaskProgress {
  percent: number | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  rateBytesPerSecond: number | null;
  step: string | null;
}

export interface Task {
  id: string;
  kind: string;
  state: TaskState;
  target: { type: string; id: string } | null;
  targetName?: string | null;
  parentId: string | null;
  retryOf: string | null;
  startedBy: string | null;
  payload?: Record<string, unknown>;
  resources?: { hostId?: string | null; storageId?: string | null };
  progress: TaskProgress | null;
  result?: unknown;
  error: { code: string; message: string } | null;
  attempts?: number;
  cancelRequested?: boolean;
  worker?: string | null;
  scheduleRunId?: string | null;
  createdAt: Iso;
  startedAt: Iso | null;
  finishedAt: Iso | null;
  updatedAt: Iso;
  children?: { total: number; byState: Partial<Record<TaskState, number>> };
}

export interface TaskLogLine {
  seq: number;
  at: Iso;
  level: 'debug' | 'info' | 'warn' | 'error' | string;
  message: string;
}

export type Protection = 'protected' | 'atRisk' | 'unprotected' | 'noPolicy' | 'excluded';

export interface VmRow {
  id: string;
  uuid: string;
  name: string;
  state: string;
  present: boolean;
  systemVm: boolean;
  cloudStackManaged: boolean;
  vcpus: number;
  memoryBytes: number;
  diskCount: number;
  host: { id: string; name: string; connectionState: string; tags: string[] } | null;
  pool: { id: string; name: string } | null;
  policy: { id: string; name: string; enabled: boolean } | null;
  lastBackup: { taskId: string; state: TaskState; at: Iso; errorCode: string | null } | null;
  lastRestorePointAt: Iso | null;
  nextRunAt: Iso | null;
  protection: Protection;
  restorePoints: { count: number; originalBytes: number; deduplicatedBytes: number };
  running: { taskId: string; kind: string; percent: number | null } | null;
}

export interface VmDisk {
  target: string;
  bus?: string;
  type?: string;
  path?: string | null;
  source?: string | null;
  format?: string | null;
  readonly?: boolean;
  shareable?: boolean;
  virtualSizeBytes?: number | null;
  actualSizeBytes?: number | null;
  backingChain?: string[];
  problem: { code: string; message: string } | null;
}

export interface VirtualMachine {
  id: string;
  uuid: string;
  name: string;
  state: string;
  vcpus: number;
  memoryBytes: number;
  disks: VmDisk[];
  cloudStackManaged: boolean;
  systemVm: boolean;
  present: boolean;
  lastSeenAt: Iso | null;
  hostId: string;
  host: { id: string; name: string; poolId: string | null; connectionState: string; lastSeenAt: Iso | null } | null;
  createdAt: Iso;
  updatedAt: Iso;
}

export interface RestorePointDisk {
  target: string;
  path?: string;
  format?: string;
  archive?: string;
  virtualSize?: number | null;
  backingChain?: string[];
  originalSize: number | null;
  compressedSize: number | null;
  deduplicatedSize: number | null;
}

/** How a restore point's disks were read (issue 11). mode null: made before incremental backups, or imported. */
export interface RestorePointRead {
  mode: 'full' | 'incremental' | null;
  bytesToRead: number | null;
  bytesRead: number | null;
  fullReason: string | null;
  diskSize: number | null;
}

export interface RestorePoint {
  id: string;
  vmId: string;
  storageId: string;
  repository: string;
  epoch?: number;
  archives: string[];
  disks: RestorePointDisk[];
  originalSize: number | null;
  compressedSize: number | null;
  deduplicatedSize: number | null;
  durationMs: number | null;
  taskId: string | null;
  startedBy: string | null;
  source: 'backroll' | 'borg' | string;
  createdAt: Iso;
  /** Absent from servers before issue 11. */
  read?: RestorePointRead;
}

export type RestoreMode = 'in-place' | 'new-vm' | 'directory';

export interface RestoreRequest {
  restorePointId: string;
  mode: RestoreMode;
  newName?: string;
  hostId?: string;
  start?: boolean;
  directory?: string;
}

export interface PreflightCheck {
  code: string;
  ok: boolean;
  severity: 'error' | 'warning';
  message: string;
}

export interface RestorePreflight {
  ok: boolean;
  sizeBytes: number | null;
  estimatedSeconds: number | null;
  estimateBasis?: { restores: number; bytesPerSecond: number | null };
  target?: { kind: string; hostId?: string; directory?: string; freeBytes: number | null };
  checks: PreflightCheck[];
}

export interface StorageCard {
  id: string;
  name: string;
  path: string;
  capacityBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  capacityAt?: Iso | null;
  capacityError?: { code: string; message: string } | null;
  backupBytes: number | null;
  originalBytes: number | null;
  dedupRatio: number | null;
  samples: { at: Iso; usedBytes: number | null; capacityBytes: number | null }[];
  estimatedFullAt: Iso | null;
}

export interface Dashboard {
  generatedAt: Iso;
  protection: Record<Protection, number> & { total: number };
  taskMatrix: { since: Iso; kinds: string[]; states: TaskState[]; cells: { kind: string; state: TaskState; count: number }[] };
  issues: {
    failingVms: { vmId: string; vmName: string; hostId: string | null; hostName: string | null; recent: { taskId: string; state: TaskState; at: Iso; errorCode: string | null }[] }[];
    hostsNotConnected: { hostId: string; hostName: string; state: string; errorCode: string | null; message: string | null; lastSeenAt: Iso | null }[];
    hostKeyChanged: { hostId: string; hostName: string; message: string | null; pinnedFingerprint: string | null }[];
  };
  running: Task[];
  storages: StorageCard[];
  nextRuns: { policyId: string; policyName: string; at: Iso; poolCount: number; vmCount: number }[];
  gettingStarted: { storage: boolean; policy: boolean; pool: boolean; host: boolean; hostConnected: boolean; firstBackup: boolean; complete: boolean };
}

/** How backups read a host's VM disks: mounted storage on the worker, through the host over SSH, or auto (mount when readable). */
export type DiskAccess = 'auto' | 'mount' | 'ssh';

export interface Host {
  id: string;
  name: string;
  address: string;
  sshPort: number;
  username: string;
  poolId: string | null;
  tags: string[];
  libvirtUri: string;
  diskAccess: DiskAccess;
  hostKeyFingerprint: string | null;
  connection: { state: 'unknown' | 'connected' | 'failed'; errorCode: string | null; message: string | null; lastSeenAt: Iso | null };
  createdAt: Iso;
  updatedAt: Iso;
}

export interface Pool {
  id: string;
  name: string;
  policyId: string | null;
  connectorId: string | null;
  hostCount: number;
  createdAt: Iso;
  updatedAt: Iso;
}

export interface Policy {
  id: string;
  name: string;
  description?: string | null;
  schedule: string;
  timezone: string;
  retention: { daily: number; weekly: number; monthly: number; yearly: number };
  storageId: string;
  hookId: string | null;
  enabled: boolean;
  quiesce: 'off' | 'preferred' | 'required';
  compression: string;
  encryption: 'none' | 'repokey';
  changedBlockTracking: boolean;
  fullEveryDays: number;
  nextRuns: Iso[];
  lastRun: { id: string; scheduledFor: Iso; recordedAt: Iso; trigger: string; outcome: string; tasks: { id: string; state: TaskState }[] } | null;
  createdAt: Iso;
  updatedAt: Iso;
}

export interface Storage {
  id: string;
  name: string;
  path: string;
  capacityBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  capacityAt?: Iso | null;
  capacityError?: { code: string; message: string } | null;
  createdAt: Iso;
  updatedAt: Iso;
}

/** Events of GET /api/v2/events. */
export type ServerEvent =
  | { type: 'hello'; id?: string; data: { resumed: boolean; serverTime: Iso } }
  | { type: 'task'; id?: string; data: Task }
  | { type: 'host'; id?: string; data: Host }
  | { type: 'vm'; id?: string; data: { id: string; hostId: string; name: string; state: string; present: boolean; updatedAt: Iso } }
  | { type: 'resync'; id?: string; data: { reason: string } }
  | { type: 'expired'; id?: string; data: { code: string; detail?: string } };
