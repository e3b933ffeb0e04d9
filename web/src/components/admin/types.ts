/** Resources only the admin screens use (the shared ones are in api/types.ts). */
import type { Iso } from '../../api/types';

export const HOOK_EVENTS = ['backup.succeeded', 'backup.failed', 'restore.succeeded', 'restore.failed', 'verify.failed'] as const;

export interface Hook {
  id: string;
  name: string;
  kind: 'slack' | 'webhook';
  urlHint: string;
  secretSet: boolean;
  events: string[];
  createdAt: Iso;
  updatedAt: Iso;
}

export interface HookTestResult {
  delivered: boolean;
  event: string;
  deliveryId: string;
  attempts: number;
  status?: number;
  error?: string;
  durationMs: number;
}

export interface HookDelivery {
  id: string;
  event: string;
  test: boolean;
  taskId: string | null;
  delivered: boolean;
  status: number | null;
  error: string | null;
  attempts: number;
  durationMs: number | null;
  at: Iso;
}

export interface Connector {
  id: string;
  name: string;
  kind: 'cloudstack';
  endpointUrl: string;
  apiKeySet: boolean;
  secretKeySet: boolean;
  verifyTls: boolean;
  caCertificate: string | null;
  createdAt: Iso;
  updatedAt: Iso;
}

export interface ConnectorTest {
  reachable: true;
  endpointUrl: string;
  cloudstackVersion: string;
  zones: number;
  roundTripMs: number;
  testedAt: Iso;
}

export interface MachineClient {
  clientId: string;
  name: string;
  role: 'admin' | 'viewer';
  createdAt: Iso;
}

export interface CreatedMachineClient {
  clientId: string;
  clientSecret: string;
  name: string;
  role: 'admin' | 'viewer';
  tokenUrl: string;
}

export interface StorageSelfBackup {
  storageId: string;
  storageName: string;
  last: { file: string; createdAt: Iso; bytes: number } | null;
  count: number;
  error: string | null;
}

export interface SelfBackupStatus {
  enabled: boolean;
  reason: string | null;
  intervalHours: number;
  keep: number;
  storages: StorageSelfBackup[];
}

export interface StorageUsage {
  storageId: string;
  samples: Array<{ at: Iso; capacityBytes: number | null; usedBytes: number | null; freeBytes: number | null; backupBytes: number | null; originalBytes: number | null }>;
  dedupRatio: number | null;
  backupBytes: number | null;
  originalBytes: number | null;
  estimatedFullAt: Iso | null;
  topVms: Array<{ vmId: string; vmName: string; restorePoints: number; deduplicatedBytes: number; originalBytes: number }>;
}

export interface PublicKeysResponse {
  keys: Array<{ algorithm: string; fingerprint: string; authorizedKeysLine: string }>;
  authorizedKeys: string;
  installCommand: string;
}

export interface PolicyPreview {
  nextRuns: Iso[];
  intervalSeconds?: number;
  description?: string;
  prune: {
    vmId: string;
    total: number;
    keptCount: number;
    prunedCount: number;
    kept: Array<{ restorePointId: string; createdAt: Iso; reason: string; deduplicatedSize: number | null; originalSize: number | null }>;
    pruned: Array<{ restorePointId: string; createdAt: Iso; reason: string; deduplicatedSize: number | null; originalSize: number | null }>;
    freedBytes: number | null;
    freedBytesEstimated?: boolean;
  } | null;
}
