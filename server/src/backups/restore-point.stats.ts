/**
 * The sizes of one whole restore point (all its archives): from the index when the
 * backup engine recorded them, else from `borg info` of each archive (restore points
 * found in the repository by a reconcile, e.g. written by BackROLL, have no sizes).
 */
import type { Borg } from '../adapters/borg/borg.js';
import { AppError } from '../errors.js';
import { parseArchiveName } from './naming.js';
import type { RepositoryStore } from './repository-store.js';
import type { RestorePointRecord } from './restore-point.repository.js';

export interface RestorePointStats {
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
  nfiles: number;
}

/** Files of the config archive the engine writes: domain.xml and backroll.json. */
const CONFIG_FILES = 2;

export async function restorePointStats(mod: { borg: Pick<Borg, 'archiveInfo'>; store: Pick<RepositoryStore, 'access'> }, vmUuid: string, rp: RestorePointRecord): Promise<RestorePointStats> {
  const hasConfig = rp.archives.some((a) => parseArchiveName(a).kind === 'config');
  if (rp.originalSize !== null && rp.compressedSize !== null && rp.deduplicatedSize !== null && rp.disks.length > 0) {
    // One disk image per disk archive.
    return { originalSize: rp.originalSize, compressedSize: rp.compressedSize, deduplicatedSize: rp.deduplicatedSize, nfiles: rp.disks.length + (hasConfig ? CONFIG_FILES : 0) };
  }
  const access = await mod.store.access(rp.repository, vmUuid);
  if (!access) throw new AppError('not_found', 'BORG.REPOSITORY_NOT_FOUND', `the repository ${rp.repository} of restore point ${rp.id} is gone (storage unmounted?)`, { repository: rp.repository });
  const total: RestorePointStats = { originalSize: 0, compressedSize: 0, deduplicatedSize: 0, nfiles: 0 };
  for (const archive of rp.archives) {
    const s = await mod.borg.archiveInfo(access, archive);
    total.originalSize += s.originalSize;
    total.compressedSize += s.compressedSize;
    total.deduplicatedSize += s.deduplicatedSize;
    total.nfiles += s.nfiles;
  }
  return total;
}
