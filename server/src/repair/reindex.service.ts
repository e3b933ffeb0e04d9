/**
 * `backroll repair reindex` / `POST /api/v2/system/reindex`: rebuilds the restore-point index
 * from the borg repositories on the storages, after the database was lost but the keys and
 * passphrases were not (a DR import, a fresh database on the same data dir), or after
 * `backroll import backroll` (BackROLL's repositories).
 *
 * For each storage, each directory `<storage>/<name>` that is a real directory (never a
 * symbolic link, never outside the storage) holding a borg repository: its archives are
 * listed and grouped into restore points exactly as the backup engine names them
 * (backups/naming.ts), and matched to an inventory VM:
 *   - by the uuid of the repository's owner record (`backroll-vm.json`) or of its newest
 *     `backroll.json`, when the repository names one;
 *   - else (a BackROLL repository) by the VM name, which is the directory name.
 * A VM the inventory does not have is reported with its restore points; with
 * `attachToHost` it is recorded as an absent VM (present = 0) of that host (the operator
 * chooses the host: repository bytes never do), so its restore points are listed and can be
 * restored as a new VM or to a directory.
 *
 * Idempotent: rows already in the index are kept as they are; missing restore points are
 * added (`source: borg`); rows whose archives vanished are reported and deleted only with
 * `pruneMissing`. Writes for a VM run under its lock, so a reindex never races a backup
 * (which would otherwise find its own restore point already indexed). `dryRun` writes nothing.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { Borg, RepoAccess } from '../adapters/borg/borg.js';
import type { BorgReader } from '../adapters/borg/extract.js';
import { groupByEpoch, type ArchiveGroup } from '../backups/naming.js';
import type { RepositoryStore } from '../backups/repository-store.js';
import type { RestorePointDisk, RestorePointRepository } from '../backups/restore-point.repository.js';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { parseJson } from '../db/errors.js';
import { AppError, invalid, notFound } from '../errors.js';
import type { VmLocks } from '../locks/vm-lock.js';
import { foundRestorePoint, isUuid, NOT_REPOSITORIES, placeholderUuid, planRepository, readManifest, repositoryNameProblem, type IndexedPoint } from './reindex.rules.js';

export interface ReindexOptions {
  dryRun?: boolean;
  pruneMissing?: boolean;
  /** Only this storage (id or name). */
  storage?: string;
  /** Only this repository directory (a VM name) on each storage reindexed. */
  repository?: string;
  /** Host (id or name) that VMs missing from the inventory are recorded on, as absent VMs. */
  attachToHost?: string;
  signal?: AbortSignal;
  /** After each repository: done of total. */
  onProgress?(p: { done: number; total: number; storage: string; repository: string }): void;
  log?(level: 'info' | 'warn', message: string): Promise<void> | void;
}

export type RepositoryStatus =
  /** Matched to a VM of the inventory (or recorded as an absent VM); its index is complete. */
  | 'indexed'
  /** A VM the inventory does not have: restore points listed in the report only. */
  | 'unmatched'
  /** Several inventory VMs fit (same name on two hosts, no uuid in the repository). */
  | 'ambiguous'
  /** Not a directory Backroll reads: a symbolic link, a name it cannot be, a path outside the storage. */
  | 'refused'
  /** A directory without a borg repository. */
  | 'not-a-repository'
  /** The VM's lock is held (a backup or restore runs): run again later. */
  | 'busy'
  /** borg or the passphrase failed (code and message tell why). */
  | 'failed'
  /** Index rows of a repository directory that no longer exists. */
  | 'gone';

export interface RepositoryReport {
  name: string;
  path: string;
  status: RepositoryStatus;
  message: string | null;
  code: string | null;
  vm: { id: string; name: string; uuid: string; present: boolean; created: boolean } | null;
  /** Restore points in the repository. */
  found: number;
  /** Index rows already there (kept as they are). */
  kept: number;
  /** Added to the index (or, with dryRun, would be). */
  added: number;
  /** Index rows whose archives are all gone. */
  missing: number;
  /** Of those, deleted (pruneMissing). */
  pruned: number;
  /** Index rows whose epoch is there with other archives than they record. */
  incomplete: number;
  /** Epochs added (or that would be), missing, incomplete; epochs found for an unmatched repository. */
  epochs: { added: number[]; missing: number[]; incomplete: number[]; found: number[] };
  /** Restore points whose backroll.json could not be used for their disks. */
  notes: string[];
}

export interface StorageReport {
  id: string;
  name: string;
  path: string;
  error: string | null;
  repositories: RepositoryReport[];
  counts: { repositories: number; restorePoints: number; kept: number; added: number; missing: number; pruned: number; incomplete: number; unmatched: number; refused: number; failed: number };
}

export interface ReindexReport {
  dryRun: boolean;
  pruneMissing: boolean;
  storages: StorageReport[];
  totals: StorageReport['counts'];
}

export interface ReindexDeps {
  db: Db;
  borg: Pick<Borg, 'list'>;
  reader: Pick<BorgReader, 'readFile'>;
  store: Pick<RepositoryStore, 'access' | 'readOwner' | 'isRepository'>;
  restorePoints: Pick<RestorePointRepository, 'insertIfAbsent' | 'deleteByIds'>;
  locks: Pick<VmLocks, 'withVmLock'>;
  clock: Clock;
}

interface StorageRow {
  id: string;
  name: string;
  path: string;
}
interface VmRow {
  id: string;
  name: string;
  uuid: string;
  present: boolean;
  hostId: string;
}

const LOCK_OWNER = 'reindex';
const MANIFEST = 'backroll.json';

const emptyCounts = (): StorageReport['counts'] => ({ repositories: 0, restorePoints: 0, kept: 0, added: 0, missing: 0, pruned: 0, incomplete: 0, unmatched: 0, refused: 0, failed: 0 });

export class ReindexService {
  constructor(private readonly deps: ReindexDeps) {}

  /** The options' mistakes, before any work: REINDEX.REPOSITORY_NAME_INVALID, STORAGE.NOT_FOUND, HOST.NOT_FOUND. */
  async check(o: Pick<ReindexOptions, 'storage' | 'repository' | 'attachToHost'>): Promise<{ storages: StorageRow[]; host: { id: string; name: string } | null }> {
    if (o.repository !== undefined) {
      const problem = repositoryNameProblem(o.repository);
      if (problem) throw invalid('REINDEX.REPOSITORY_NAME_INVALID', `${problem}: give the name of a repository directory directly under a storage (a VM name)`, { repository: o.repository });
    }
    const storages = await this.storages(o.storage);
    const host = o.attachToHost === undefined ? null : await this.host(o.attachToHost);
    return { storages, host };
  }

  async run(o: ReindexOptions = {}): Promise<ReindexReport> {
    const dryRun = o.dryRun ?? false;
    const pruneMissing = o.pruneMissing ?? false;
    const { storages, host } = await this.check(o);
    const work: Array<{ storage: StorageRow; names: string[] | null; error: string | null }> = [];
    for (const s of storages) {
      const listed = await this.directories(s, o.repository);
      work.push({ storage: s, ...listed });
    }
    const total = work.reduce((n, w) => n + (w.names?.length ?? 0), 0);
    let done = 0;
    const report: ReindexReport = { dryRun, pruneMissing, storages: [], totals: emptyCounts() };
    for (const w of work) {
      const sr: StorageReport = { id: w.storage.id, name: w.storage.name, path: w.storage.path, error: w.error, repositories: [], counts: emptyCounts() };
      report.storages.push(sr);
      if (w.names === null) {
        await o.log?.('warn', `storage ${w.storage.name} (${w.storage.path}): ${w.error}`);
        continue;
      }
      for (const name of w.names) {
        o.signal?.throwIfAborted();
        const rr = await this.repository(w.storage, name, { dryRun, pruneMissing, host, signal: o.signal });
        sr.repositories.push(rr);
        await o.log?.(rr.status === 'indexed' ? 'info' : 'warn', describe(w.storage, rr, dryRun));
        done++;
        o.onProgress?.({ done, total, storage: w.storage.name, repository: name });
      }
      // Index rows of repositories that are no longer on the storage.
      if (o.repository === undefined) {
        const gone = await this.goneRepositories(w.storage, new Set(w.names.map((n) => path.join(w.storage.path, n))), w.names.length === 0, { dryRun, pruneMissing });
        for (const g of gone) {
          sr.repositories.push(g);
          await o.log?.('warn', describe(w.storage, g, dryRun));
        }
      }
      sr.counts = countsOf(sr.repositories);
    }
    for (const sr of report.storages) for (const [k, v] of Object.entries(sr.counts)) report.totals[k as keyof StorageReport['counts']] += v;
    return report;
  }

  private async storages(which?: string): Promise<StorageRow[]> {
    const rows = await this.deps.db.selectFrom('storages').select(['id', 'name', 'path']).orderBy('name').execute();
    if (which === undefined) return rows;
    const found = rows.filter((r) => r.id === which || r.name === which);
    if (found.length === 0) throw notFound('STORAGE.NOT_FOUND', `no storage with the id or name ${JSON.stringify(which)} (GET /api/v2/storages lists them)`, { storage: which });
    return found;
  }

  private async host(which: string): Promise<{ id: string; name: string }> {
    const rows = await this.deps.db.selectFrom('hosts').select(['id', 'name']).where((eb) => eb.or([eb('id', '=', which), eb('name', '=', which)])).execute();
    if (rows.length === 0) throw notFound('HOST.NOT_FOUND', `no host with the id or name ${JSON.stringify(which)} to record VMs missing from the inventory on`, { host: which });
    return rows[0]!;
  }

  /** The storage's candidate directories (sorted), or why the storage cannot be read. */
  private async directories(s: StorageRow, only?: string): Promise<{ names: string[] | null; error: string | null }> {
    try {
      const st = await fs.stat(s.path);
      if (!st.isDirectory()) return { names: null, error: 'not a directory' };
    } catch (err) {
      return { names: null, error: `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is it mounted?` };
    }
    if (only !== undefined) return { names: [only], error: null };
    let entries;
    try {
      entries = await fs.readdir(s.path, { withFileTypes: true });
    } catch (err) {
      return { names: null, error: `cannot be listed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    }
    // Symbolic links are listed (and refused with a reason); files and reserved directories are not repositories.
    const names = entries.filter((e) => (e.isDirectory() || e.isSymbolicLink()) && !NOT_REPOSITORIES.has(e.name)).map((e) => e.name);
    return { names: names.sort(), error: null };
  }

  private async repository(s: StorageRow, name: string, o: { dryRun: boolean; pruneMissing: boolean; host: { id: string; name: string } | null; signal?: AbortSignal }): Promise<RepositoryReport> {
    const repo = path.join(s.path, name);
    const rr: RepositoryReport = {
      name,
      path: repo,
      status: 'indexed',
      message: null,
      code: null,
      vm: null,
      found: 0,
      kept: 0,
      added: 0,
      missing: 0,
      pruned: 0,
      incomplete: 0,
      epochs: { added: [], missing: [], incomplete: [], found: [] },
      notes: [],
    };
    const refuse = (message: string, status: RepositoryStatus = 'refused') => Object.assign(rr, { status, message });
    const problem = repositoryNameProblem(name);
    if (problem) return refuse(problem);
    // Never through a symbolic link, never out of the storage.
    let st;
    try {
      st = await fs.lstat(repo);
    } catch (err) {
      return refuse(`${repo} does not exist (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, 'not-a-repository');
    }
    if (st.isSymbolicLink()) return refuse(`${repo} is a symbolic link: a repository must be a directory of the storage itself (move the repository there instead of linking it)`);
    if (!st.isDirectory()) return refuse(`${repo} is not a directory`, 'not-a-repository');
    try {
      const real = await fs.realpath(repo);
      if (real !== path.join(await fs.realpath(s.path), name)) return refuse(`${repo} resolves to ${real}, outside the storage ${s.path}`);
      if (!(await this.deps.store.isRepository(repo))) return refuse(`${repo} holds no borg repository`, 'not-a-repository');
      const owner = await this.deps.store.readOwner(repo).catch(() => null);
      const ownerUuid = owner && isUuid(owner.vmUuid) ? owner.vmUuid.toLowerCase() : null;
      const access = await this.deps.store.access(repo, null);
      if (!access) return refuse(`${repo} holds no borg repository`, 'not-a-repository');
      const groups = await this.groups(access, o.signal);
      rr.found = groups.length;
      rr.epochs.found = groups.map((g) => g.epoch);
      // A uuid read from the repository only selects among the inventory's VMs.
      let uuid = ownerUuid;
      if (!uuid) {
        const newest = groups.find((g) => g.hasConfig);
        if (newest) uuid = readManifest((await this.manifest(access, newest, o.signal)) ?? '', newest).vmUuid;
      }
      const match = await this.match(uuid, name);
      if (match.kind === 'ambiguous') {
        return refuse(`${match.vms.length} VMs of the inventory are named ${JSON.stringify(name)} (${match.vms.map((v) => v.id).join(', ')}) and the repository names no uuid: rename one (each VM name has its own repository)`, 'ambiguous');
      }
      let vm = match.kind === 'vm' ? match.vm : null;
      let created = false;
      if (!vm) {
        if (!o.host) {
          rr.status = 'unmatched';
          rr.message = `no VM of the inventory ${uuid ? `has the uuid ${uuid}` : `is named ${JSON.stringify(name)}`}: its ${groups.length} restore point(s) are not indexed; run the inventory refresh if the VM exists, else reindex with --attach-to-host HOST to list them under an absent VM`;
          return rr;
        }
        vm = { id: randomUUID(), name, uuid: uuid ?? placeholderUuid(s.id, name), present: false, hostId: o.host.id };
        created = true;
        if (!o.dryRun) await this.createAbsentVm(vm);
      }
      rr.vm = { id: vm.id, name: vm.name, uuid: vm.uuid, present: vm.present, created };
      const apply = async () => {
        // Listed again under the lock: what a backup finished meanwhile is in its own row.
        const now = o.dryRun || created ? groups : await this.groups(access, o.signal);
        rr.found = now.length;
        rr.epochs.found = now.map((g) => g.epoch);
        const rows = await this.rowsOf(repo);
        const plan = planRepository(now, rows);
        rr.kept = plan.kept.length;
        rr.missing = plan.missing.length;
        rr.incomplete = plan.incomplete.length;
        rr.epochs.missing = plan.missing.map((r) => r.epoch);
        rr.epochs.incomplete = plan.incomplete.map((r) => r.epoch);
        for (const r of plan.incomplete) rr.notes.push(`epoch ${r.epoch}: ${r.absent.length > 0 ? `archives ${r.absent.join(', ')} are gone` : ''}${r.absent.length > 0 && r.extra.length > 0 ? '; ' : ''}${r.extra.length > 0 ? `archives ${r.extra.join(', ')} are not recorded` : ''} (kept as indexed; a restore of it is refused)`);
        for (const g of plan.add) {
          o.signal?.throwIfAborted();
          const disks = await this.disksOf(access, g, vm.uuid, rr.notes, o.signal);
          if (!o.dryRun) {
            const inserted = await this.deps.restorePoints.insertIfAbsent(foundRestorePoint(g, { id: randomUUID(), vmId: vm.id, storageId: s.id, repository: repo }, disks));
            if (!inserted) continue;
          }
          rr.added++;
          rr.epochs.added.push(g.epoch);
        }
        if (o.pruneMissing && plan.missing.length > 0) {
          if (!o.dryRun) await this.deps.restorePoints.deleteByIds(plan.missing.map((r) => r.id));
          rr.pruned = plan.missing.length;
        }
      };
      if (o.dryRun || created) await apply();
      else await this.deps.locks.withVmLock(vm.id, LOCK_OWNER, apply, { purpose: 'reindex' });
      return rr;
    } catch (err) {
      if (o.signal?.aborted) throw err;
      const e = err as AppError;
      rr.code = e instanceof AppError ? e.code : null;
      rr.status = rr.code === 'VM.LOCKED' ? 'busy' : 'failed';
      rr.message = rr.code === 'BACKUP.BAD_UUID' ? `${repo} is encrypted and records no VM uuid, so its passphrase cannot be found` : e.message;
      return rr;
    }
  }

  private async groups(access: RepoAccess, signal?: AbortSignal): Promise<ArchiveGroup[]> {
    return groupByEpoch((await this.deps.borg.list(access, { signal })).map((a) => a.name));
  }

  private async manifest(access: RepoAccess, g: ArchiveGroup, signal?: AbortSignal): Promise<string | null> {
    const config = g.archives.find((a) => a.startsWith('config_'));
    if (!config) return null;
    try {
      return (await this.deps.reader.readFile(access, config, MANIFEST, signal)).toString('utf8');
    } catch (err) {
      if (signal?.aborted) throw err;
      return null;
    }
  }

  /** Disks from the config archive's backroll.json when it agrees with the archives; [] otherwise (restores then read the archives). */
  private async disksOf(access: RepoAccess, g: ArchiveGroup, vmUuid: string, notes: string[], signal?: AbortSignal): Promise<RestorePointDisk[]> {
    if (!g.hasConfig) return [];
    const raw = await this.manifest(access, g, signal);
    if (raw === null) {
      notes.push(`epoch ${g.epoch}: its config archive has no readable ${MANIFEST}; disks are read from the archives at restore`);
      return [];
    }
    const m = readManifest(raw, g);
    if (m.vmUuid && m.vmUuid !== vmUuid.toLowerCase()) {
      notes.push(`epoch ${g.epoch}: ${MANIFEST} names VM ${m.vmUuid}, the repository is VM ${vmUuid}'s; its disks are not taken from it`);
      return [];
    }
    if (m.problem) notes.push(`epoch ${g.epoch}: ${m.problem}; disks are read from the archives at restore`);
    return m.disks;
  }

  private async match(uuid: string | null, name: string): Promise<{ kind: 'vm'; vm: VmRow } | { kind: 'none' } | { kind: 'ambiguous'; vms: VmRow[] }> {
    const q = this.deps.db.selectFrom('virtual_machines').select(['id', 'name', 'uuid', 'present', 'host_id', 'last_seen_at']);
    const rows = uuid ? await q.where(sql<string>`lower(uuid)`, '=', uuid).execute() : await q.where('name', '=', name).execute();
    const vms = rows
      .map((r) => ({ id: r.id, name: r.name, uuid: r.uuid, present: Number(r.present) === 1, hostId: r.host_id, seen: r.last_seen_at }))
      .sort((a, b) => Number(b.present) - Number(a.present) || b.seen.localeCompare(a.seen));
    if (vms.length === 0) return { kind: 'none' };
    const present = vms.filter((v) => v.present);
    // By uuid the newest row is the VM (it moved hosts); by name, two present VMs are two VMs.
    if (!uuid && (present.length > 1 || (present.length === 0 && vms.length > 1))) return { kind: 'ambiguous', vms };
    const v = vms[0]!;
    return { kind: 'vm', vm: { id: v.id, name: v.name, uuid: v.uuid, present: v.present, hostId: v.hostId } };
  }

  private async createAbsentVm(vm: VmRow): Promise<void> {
    const now = this.deps.clock.now().toISOString();
    await this.deps.db
      .insertInto('virtual_machines')
      .values({ id: vm.id, host_id: vm.hostId, uuid: vm.uuid, name: vm.name, state: 'unknown', vcpus: 0, memory_bytes: 0, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 0, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
  }

  private async rowsOf(repo: string): Promise<IndexedPoint[]> {
    const rows = await this.deps.db.selectFrom('restore_points').select(['id', 'vm_id', 'epoch', 'archives']).where('repository', '=', repo).execute();
    return rows.map((r) => ({ id: r.id, vmId: r.vm_id, epoch: Number(r.epoch), archives: parseJson<string[]>(r.archives, []) }));
  }

  /**
   * Index rows of this storage whose repository directory is gone. An empty storage with rows
   * looks unmounted: its rows are reported, never pruned.
   */
  private async goneRepositories(s: StorageRow, seen: Set<string>, storageEmpty: boolean, o: { dryRun: boolean; pruneMissing: boolean }): Promise<RepositoryReport[]> {
    const rows = await this.deps.db.selectFrom('restore_points').select(['id', 'vm_id', 'epoch', 'archives', 'repository']).where('storage_id', '=', s.id).execute();
    const byRepo = new Map<string, typeof rows>();
    for (const r of rows) if (!seen.has(r.repository)) byRepo.set(r.repository, [...(byRepo.get(r.repository) ?? []), r]);
    const out: RepositoryReport[] = [];
    for (const [repo, rs] of [...byRepo.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const prune = o.pruneMissing && !storageEmpty;
      if (prune && !o.dryRun) await this.deps.restorePoints.deleteByIds(rs.map((r) => r.id));
      out.push({
        name: path.basename(repo),
        path: repo,
        status: 'gone',
        message: storageEmpty
          ? `the storage holds no repository at all: if it is not mounted, mount it and run again (its index rows are never pruned while it is empty)`
          : `the repository directory is gone: its ${rs.length} restore point(s) cannot be restored${prune ? '' : ' (delete them from the index with --prune-missing)'}`,
        code: null,
        vm: null,
        found: 0,
        kept: 0,
        added: 0,
        missing: rs.length,
        pruned: prune ? rs.length : 0,
        incomplete: 0,
        epochs: { added: [], missing: rs.map((r) => Number(r.epoch)).sort((a, b) => b - a), incomplete: [], found: [] },
        notes: [],
      });
    }
    return out;
  }
}

function countsOf(rs: RepositoryReport[]): StorageReport['counts'] {
  const c = emptyCounts();
  for (const r of rs) {
    if (r.status !== 'gone') c.repositories++;
    c.restorePoints += r.found;
    c.kept += r.kept;
    c.added += r.added;
    c.missing += r.missing;
    c.pruned += r.pruned;
    c.incomplete += r.incomplete;
    if (r.status === 'unmatched' || r.status === 'ambiguous') c.unmatched++;
    if (r.status === 'refused') c.refused++;
    if (r.status === 'failed' || r.status === 'busy') c.failed++;
  }
  return c;
}

/** One line per repository, for the task log and the CLI. */
export function describe(s: { name: string }, r: RepositoryReport, dryRun: boolean): string {
  const would = dryRun ? 'would add' : 'added';
  const head = `${s.name}/${r.name}: ${r.status}`;
  if (r.status === 'indexed') {
    const vm = r.vm ? ` → VM ${r.vm.name} (${r.vm.uuid}${r.vm.present ? '' : ', absent'}${r.vm.created ? (dryRun ? ', would be recorded' : ', recorded now') : ''})` : '';
    const extra = [r.missing > 0 ? `${r.missing} missing${r.pruned > 0 ? (dryRun ? ', would prune' : ', pruned') : ''} (${r.epochs.missing.join(', ')})` : '', r.incomplete > 0 ? `${r.incomplete} incomplete (${r.epochs.incomplete.join(', ')})` : '']
      .filter(Boolean)
      .join('; ');
    return `${head}${vm}: ${r.found} restore point(s), ${r.kept} kept, ${r.added} ${would}${r.added > 0 ? ` (${r.epochs.added.join(', ')})` : ''}${extra ? `; ${extra}` : ''}`;
  }
  if (r.status === 'gone') return `${head}: ${r.missing} indexed restore point(s) (${r.epochs.missing.join(', ')}); ${r.message}`;
  if (r.status === 'unmatched') return `${head}: ${r.message} (epochs ${r.epochs.found.join(', ') || 'none'})`;
  return `${head}: ${r.code ? `${r.code}: ` : ''}${r.message}`;
}
