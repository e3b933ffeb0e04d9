/**
 * The shapes of BackROLL's /api/v1 as CloudStack's `backroll` provider parses them (pure).
 * The client reads every body with a Jackson ObjectMapper that fails on unknown
 * properties and parses sizes with Long.parseLong: every object here is built field by
 * field, integers stay integers, times are ISO without offset.
 * See docs/cloudstack.md and the contract in the project's shared notes.
 */
import { parseArchiveName } from '../backups/naming.js';
import type { TaskState } from '../tasks/task.state.js';

/** `2024-11-08T18:24:48.000000` (UTC) from seconds since 1970. */
export function isoNoOffset(epochSeconds: number): string {
  return `${new Date(epochSeconds * 1000).toISOString().slice(0, 19)}.000000`;
}

export interface V1Policy {
  id: string;
  name: string;
  description: string;
  schedule: string;
  storage: string;
  externalhook: string;
  retention_day: number;
  retention_week: number;
  retention_month: number;
  retention_year: number;
  enabled: boolean;
}

export function toV1Policy(p: {
  id: string;
  name: string;
  description: string;
  schedule: string;
  storageId: string;
  hookId: string | null;
  enabled: boolean;
  retention: { daily: number; weekly: number; monthly: number; yearly: number };
}): V1Policy {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    schedule: p.schedule,
    storage: p.storageId,
    externalhook: p.hookId ?? '',
    retention_day: Math.trunc(p.retention.daily),
    retention_week: Math.trunc(p.retention.weekly),
    retention_month: Math.trunc(p.retention.monthly),
    retention_year: Math.trunc(p.retention.yearly),
    enabled: p.enabled,
  };
}

/**
 * The one name CloudStack knows a restore point by: its first disk archive (sorted), so a
 * multi-disk VM is one backup, `config_*` never shows, and a BackROLL repository's
 * single-disk archive names stay what CloudStack already stored. Undefined when the
 * restore point has no disk archive (nothing to restore).
 */
export function restorePointName(archives: readonly string[]): string | undefined {
  return archives.filter((a) => parseArchiveName(a).kind === 'disk').sort()[0];
}

/** The restore point a name from CloudStack designates: any of its archives' names. */
export function findByName<T extends { archives: readonly string[] }>(restorePoints: readonly T[], name: string): T | undefined {
  return restorePoints.find((rp) => rp.archives.includes(name));
}

export interface V1Archive {
  archive: string;
  barchive: string;
  id: string;
  name: string;
  start: string;
  time: string;
}

export function toV1Archive(rp: { id: string; epoch: number; archives: readonly string[] }): V1Archive | undefined {
  const name = restorePointName(rp.archives);
  if (name === undefined) return undefined;
  const at = isoNoOffset(rp.epoch);
  return { archive: name, barchive: name, id: rp.id, name, start: at, time: at };
}

export interface V1Repository {
  id: string;
  last_modified: string;
  location: string;
}

export interface V1BackupList {
  archives: V1Archive[];
  encryption: { mode: string };
  repository: V1Repository;
}

/** `info` of GET /virtualmachines/{uuid}/backups; an unknown VM or one never backed up lists nothing. */
export function toV1BackupList(
  restorePoints: ReadonlyArray<{ id: string; epoch: number; archives: readonly string[] }>,
  repo: { location: string; id: string; encryption: string } | null,
): V1BackupList {
  const archives = restorePoints.map(toV1Archive).filter((a): a is V1Archive => a !== undefined);
  const newest = restorePoints.reduce((m, rp) => Math.max(m, rp.epoch), 0);
  return {
    archives,
    encryption: { mode: repo?.encryption ?? 'none' },
    repository: { id: repo?.id ?? '', last_modified: newest > 0 ? isoNoOffset(newest) : '', location: repo?.location ?? '' },
  };
}

export interface V1ArchiveStats {
  original_size: number;
  compressed_size: number;
  deduplicated_size: number;
  nfiles: number;
}

export function toV1ArchiveStats(s: { originalSize: number; compressedSize: number; deduplicatedSize: number; nfiles: number }): V1ArchiveStats {
  return {
    original_size: Math.round(s.originalSize),
    compressed_size: Math.round(s.compressedSize),
    deduplicated_size: Math.round(s.deduplicatedSize),
    nfiles: Math.round(s.nfiles),
  };
}

export interface V1RepositoryInfo {
  cache: {
    path: string;
    stats: { total_chunks: number; total_csize: number; total_size: number; total_unique_chunks: number; unique_csize: number; unique_size: number };
  };
  encryption: { mode: string };
  repository: V1Repository;
  security_dir: string;
}

/** borg 1.x `info --json` of a repository, as BackROLL passed it through. */
export function toV1RepositoryInfo(i: {
  id: string;
  location: string;
  lastModified: string | null;
  encryption: string;
  stats: { totalSize: number; totalCompressedSize: number; uniqueSize: number; uniqueCompressedSize: number; totalChunks: number; uniqueChunks: number } | null;
  cachePath?: string | null;
  securityDir?: string | null;
}): V1RepositoryInfo {
  const s = i.stats;
  const int = (n: number | undefined) => Math.round(n ?? 0);
  return {
    cache: {
      path: i.cachePath ?? '',
      stats: {
        total_chunks: int(s?.totalChunks),
        total_csize: int(s?.totalCompressedSize),
        total_size: int(s?.totalSize),
        total_unique_chunks: int(s?.uniqueChunks),
        unique_csize: int(s?.uniqueCompressedSize),
        unique_size: int(s?.uniqueSize),
      },
    },
    encryption: { mode: i.encryption },
    repository: { id: i.id, last_modified: i.lastModified ?? '', location: i.location },
    security_dir: i.securityDir ?? '',
  };
}

export type V1Status =
  | { state: 'PENDING'; current: 0; total: 1; status: 'Pending...' }
  | { state: 'FAILURE'; current: 1; total: 1; status: string }
  | { state: 'SUCCESS'; info: unknown };

export const pending = (): V1Status => ({ state: 'PENDING', current: 0, total: 1, status: 'Pending...' });
export const failure = (message: string): V1Status => ({ state: 'FAILURE', current: 1, total: 1, status: message });
export const success = (info: unknown): V1Status => ({ state: 'SUCCESS', info });

/**
 * A task as CloudStack polls it: queued or running (or any state that is not an end) is
 * PENDING; succeeded is SUCCESS with `info` of its kind; every other end is FAILURE.
 */
export function taskStatus(t: { kind: string; state: TaskState; result: unknown; error: { code: string; message: string } | null }): V1Status {
  if (t.state === 'succeeded') return success(successInfo(t.kind, t.result));
  if (t.state === 'failed' || t.state === 'canceled' || t.state === 'interrupted' || t.state === 'partial') {
    return failure(t.error?.message ?? `the task ended ${t.state}`);
  }
  return pending();
}

/** vm.backup: the backup's name (one string); deletes and restores: null (a date in it breaks the client). */
function successInfo(kind: string, result: unknown): unknown {
  if (kind === 'vm.backup') {
    const archives = (result as { archives?: unknown } | null)?.archives;
    const name = Array.isArray(archives) ? restorePointName(archives.filter((a): a is string => typeof a === 'string')) : undefined;
    return name ?? null;
  }
  return null;
}

/** The reads CloudStack starts as asynchronous calls; answered when polled. */
export type V1Query = { op: 'policies' } | { op: 'list'; vm: string } | { op: 'stats'; vm: string; name: string } | { op: 'repository'; vm: string };

const QUERY_PREFIX = 'q1.';

/**
 * A read's status id carries the read itself (base64url JSON): any api process can answer
 * the poll, nothing is stored, and the answer is as fresh as the poll. It grants nothing:
 * the poll needs a token allowed to make the same read.
 */
export function queryId(q: V1Query): string {
  return `${QUERY_PREFIX}${Buffer.from(JSON.stringify(q), 'utf8').toString('base64url')}`;
}

export function parseQueryId(id: string): V1Query | undefined {
  if (!id.startsWith(QUERY_PREFIX) || id.length > 2048) return undefined;
  let q: unknown;
  try {
    q = JSON.parse(Buffer.from(id.slice(QUERY_PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (q === null || typeof q !== 'object') return undefined;
  const o = q as Record<string, unknown>;
  const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512;
  if (o.op === 'policies') return { op: 'policies' };
  if ((o.op === 'list' || o.op === 'repository') && str(o.vm)) return { op: o.op, vm: o.vm };
  if (o.op === 'stats' && str(o.vm) && str(o.name)) return { op: 'stats', vm: o.vm, name: o.name };
  return undefined;
}
