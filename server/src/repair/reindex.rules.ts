/**
 * `backroll repair reindex`, the pure part: which directory of a storage may be a VM's
 * repository, what a restore point found in a repository records (from its archives and,
 * for Backroll's own backups, the `backroll.json` of its config archive), and what changes
 * in the index of one repository (added, kept, missing, incomplete).
 *
 * Repository bytes are untrusted: `backroll.json` only fills the disks of a restore point
 * when it agrees with the archives themselves, and a uuid read from a repository is used
 * only to find a VM the inventory already has, never to choose a host or a path.
 */
import { createHash } from 'node:crypto';
import type { ArchiveGroup } from '../backups/naming.js';
import { parseArchiveName, TEMPLATE_DIR } from '../backups/naming.js';
import type { RestorePointDisk } from '../backups/restore-point.repository.js';

/** Directories of a storage that are never a VM's repository. */
export const NOT_REPOSITORIES = new Set([TEMPLATE_DIR, '.backroll', 'lost+found']);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID.test(s);
}

/**
 * Why a directory entry of a storage cannot be a repository name, or null when it can:
 * one path component, not `.`/`..`, no `::` (borg's separator), no NUL, not a reserved directory.
 */
export function repositoryNameProblem(name: string): string | null {
  if (name === '' || name === '.' || name === '..') return `${JSON.stringify(name)} is not a directory name`;
  if (name.includes('/') || name.includes('\0')) return `${JSON.stringify(name)} is not a single path component`;
  if (name.includes('::')) return `${JSON.stringify(name)} contains "::", which borg reads as the archive separator`;
  if (NOT_REPOSITORIES.has(name)) return `${JSON.stringify(name)} is reserved (${[...NOT_REPOSITORIES].join(', ')})`;
  return null;
}

/**
 * The uuid of a VM known only from its repository without one (a BackROLL repository whose
 * VM is gone): stable per storage and directory, so a second reindex finds the same row.
 * Name-based (RFC 4122 version 5 layout over SHA-1).
 */
export function placeholderUuid(storageId: string, name: string): string {
  const h = createHash('sha1').update(`backroll-reindex\0${storageId}\0${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

export interface ManifestReading {
  /** The restore point's disks as the backup recorded them; [] when the manifest does not agree with the archives. */
  disks: RestorePointDisk[];
  /** The VM uuid the manifest names (valid uuid), or null. */
  vmUuid: string | null;
  vmName: string | null;
  /** Why the manifest was not used for the disks. */
  problem: string | null;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Reads `backroll.json` of a config archive against the restore point's archives: its disks
 * are used only when they name exactly the group's disk archives, each with the target the
 * archive name carries and an absolute path.
 */
export function readManifest(raw: string, group: ArchiveGroup): ManifestReading {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return { disks: [], vmUuid: null, vmName: null, problem: 'backroll.json is not JSON' };
  }
  if (typeof m !== 'object' || m === null) return { disks: [], vmUuid: null, vmName: null, problem: 'backroll.json is not an object' };
  const o = m as Record<string, unknown>;
  const vm = (typeof o.vm === 'object' && o.vm !== null ? o.vm : {}) as Record<string, unknown>;
  const uuid = str(vm.uuid) ?? str(o.uuid);
  const vmUuid = isUuid(uuid) ? uuid.toLowerCase() : null;
  const vmName = str(vm.name) ?? str(o.name);
  const fail = (problem: string): ManifestReading => ({ disks: [], vmUuid, vmName, problem });
  if (typeof o.epoch === 'number' && o.epoch !== group.epoch) return fail(`backroll.json is of epoch ${o.epoch}, its archive of epoch ${group.epoch}`);
  if (!Array.isArray(o.disks)) return fail('backroll.json lists no disks');
  const archives = new Map<string, string>();
  for (const a of group.archives) {
    const p = parseArchiveName(a);
    if (p.kind === 'disk') archives.set(a, p.target);
  }
  const disks: RestorePointDisk[] = [];
  for (const d of o.disks as unknown[]) {
    const r = (typeof d === 'object' && d !== null ? d : {}) as Record<string, unknown>;
    const target = str(r.target);
    const p = str(r.path);
    const archive = str(r.archive);
    if (!target || !p || !archive) return fail('a disk of backroll.json lacks its target, path or archive');
    if (archives.get(archive) !== target) return fail(`backroll.json names archive ${archive} for disk ${target}, which the restore point does not hold`);
    if (!p.startsWith('/') || p.includes('\0')) return fail(`backroll.json gives disk ${target} the path ${JSON.stringify(p)}, not an absolute path`);
    const chain = Array.isArray(r.backingChain) && r.backingChain.every((x) => typeof x === 'string') ? (r.backingChain as string[]) : [];
    disks.push({ target, path: p, format: str(r.format), archive, virtualSize: num(r.virtualSize), backingChain: chain, originalSize: null, compressedSize: null, deduplicatedSize: null });
  }
  const listed = new Set(disks.map((d) => d.archive));
  if (listed.size !== disks.length || listed.size !== archives.size) {
    return fail(`backroll.json lists ${disks.length} disk(s), the restore point holds ${archives.size} disk archive(s)`);
  }
  disks.sort((a, b) => a.target.localeCompare(b.target));
  return { disks, vmUuid, vmName, problem: null };
}

/** An index row of the repository, as the plan needs it. */
export interface IndexedPoint {
  id: string;
  vmId: string;
  epoch: number;
  archives: string[];
}

export interface RepositoryPlan {
  /** Restore points in the repository that the index lacks (newest first). */
  add: ArchiveGroup[];
  /** Index rows whose restore point is in the repository with the archives they record. */
  kept: IndexedPoint[];
  /** Index rows whose epoch has no archive left in the repository. */
  missing: IndexedPoint[];
  /** Index rows whose epoch is there, but not with the archives they record (some vanished or were added). */
  incomplete: Array<IndexedPoint & { absent: string[]; extra: string[] }>;
}

/** Compares the repository's restore points with the index rows of that repository. */
export function planRepository(groups: readonly ArchiveGroup[], rows: readonly IndexedPoint[]): RepositoryPlan {
  const byEpoch = new Map<number, IndexedPoint[]>();
  for (const r of rows) byEpoch.set(r.epoch, [...(byEpoch.get(r.epoch) ?? []), r]);
  const present = new Map(groups.map((g) => [g.epoch, g]));
  const plan: RepositoryPlan = { add: [], kept: [], missing: [], incomplete: [] };
  for (const g of groups) if (!byEpoch.has(g.epoch)) plan.add.push(g);
  for (const r of rows) {
    const g = present.get(r.epoch);
    if (!g) {
      plan.missing.push(r);
      continue;
    }
    const absent = r.archives.filter((a) => !g.archives.includes(a));
    const extra = r.archives.length === 0 ? [] : g.archives.filter((a) => !r.archives.includes(a));
    if (absent.length > 0 || extra.length > 0) plan.incomplete.push({ ...r, absent, extra });
    else plan.kept.push(r);
  }
  return plan;
}

/** The row of a restore point found in a repository: the engine's identity (repository, epoch), its time. */
export function foundRestorePoint(
  g: ArchiveGroup,
  at: { id: string; vmId: string; storageId: string; repository: string },
  disks: RestorePointDisk[],
) {
  return {
    id: at.id,
    vmId: at.vmId,
    storageId: at.storageId,
    repository: at.repository,
    epoch: g.epoch,
    archives: [...g.archives].sort(),
    disks,
    originalSize: null,
    compressedSize: null,
    deduplicatedSize: null,
    durationMs: null,
    taskId: null,
    startedBy: null,
    source: 'borg' as const,
    createdAt: new Date(g.epoch * 1000).toISOString(),
  };
}
