/**
 * What a restore point holds, read from its borg repository: one archive per disk (exactly one
 * file, stored at its absolute path without the leading `/`) and, for Backroll's own backups, a
 * `config_<epoch>` archive with `domain.xml` and `backroll.json`. BackROLL repositories have no
 * config archive: the archives are grouped by their epoch suffix alone.
 */
import path from 'node:path';
import type { RepoAccess } from '../adapters/borg/borg.js';
import type { BorgReader } from '../adapters/borg/extract.js';
import { parseDomainXml } from '../adapters/libvirt/domain-xml.js';
import { archivesOfEpoch, type BackupManifest } from './restore.model.js';
import { RestoreErrorCode, restoreError } from './restore.errors.js';
import type { RestorePointRow } from './restore.repository.js';

export interface SourceDisk {
  target: string;
  archive: string;
  /** The item path inside the archive (no leading `/`). */
  itemPath: string;
  /** The disk's absolute path at backup time. */
  path: string;
  /** File size in the archive (bytes needed on disk at most). */
  size: number;
  /** Image format from backroll.json or the domain XML; null when the restore point does not say (BackROLL). */
  format: string | null;
  /** The backing files the restore point recorded for this disk (nearest first); null when it recorded none (BackROLL). */
  backingChain: string[] | null;
}

export interface RestoreSource {
  repository: string;
  epoch: number;
  disks: SourceDisk[];
  configArchive: string | null;
  domainXml: string | null;
  manifest: BackupManifest | null;
  /** For the next borg calls of this restore (holds the passphrase: never logged). */
  access: RepoAccess;
}

export async function loadSource(borg: BorgReader, access: RepoAccess, rp: RestorePointRow, signal?: AbortSignal, opts: { config?: boolean } = {}): Promise<RestoreSource> {
  const names = (await borg.listArchives(access, signal)).map((a) => a.name);
  const { config, disks } = archivesOfEpoch(names, rp.epoch);
  if (disks.length === 0) {
    throw restoreError(RestoreErrorCode.ARCHIVE_INVALID, `repository ${rp.repository} has no disk archive of epoch ${rp.epoch}`, { repository: rp.repository, epoch: rp.epoch });
  }
  checkArchives(rp, [...disks.map((d) => d.name), ...(config ? [config] : [])]);
  const recorded = rp.disks ?? [];
  const out: SourceDisk[] = [];
  for (const d of disks) {
    const files = (await borg.listItems(access, d.name, signal)).filter((i) => i.type === '-');
    if (files.length !== 1) {
      throw restoreError(RestoreErrorCode.ARCHIVE_INVALID, `archive ${d.name} holds ${files.length} files, expected exactly one disk image`, { archive: d.name });
    }
    const f = files[0]!;
    const itemPath = `/${f.path.replace(/^\/+/, '')}`;
    const rec = recorded.find((r) => r.archive === d.name);
    if (recorded.length > 0 && (!rec || rec.target !== d.target || rec.path !== itemPath)) {
      throw mismatch(rp, `archive ${d.name} holds ${JSON.stringify(itemPath)}, but the restore point recorded ${rec ? `${JSON.stringify(rec.path)} for disk ${rec.target}` : 'no such disk archive'}`, { archive: d.name });
    }
    out.push({ target: d.target, archive: d.name, itemPath: f.path, path: rec?.path ?? itemPath, size: f.size, format: null, backingChain: rec ? (rec.backingChain ?? []) : null });
  }
  const dup = out.find((d, i) => out.findIndex((x) => x.target === d.target) !== i);
  if (dup) throw restoreError(RestoreErrorCode.ARCHIVE_INVALID, `epoch ${rp.epoch} has two archives for disk ${dup.target}`, { target: dup.target });
  if (recorded.length > 0 && recorded.length !== out.length) {
    const missing = recorded.filter((r) => !out.some((d) => d.archive === r.archive)).map((r) => r.target);
    throw mismatch(rp, `the restore point recorded ${recorded.length} disks, the repository holds ${out.length} (missing: ${missing.join(', ') || 'none'})`, { missing });
  }

  let domainXml: string | null = null;
  let manifest: BackupManifest | null = null;
  if (config && opts.config !== false) {
    // Its regular files in one borg process (export-tar), matched by base name as before.
    const files = await borg.readSmallFiles(access, config, { signal });
    const xmlFile = files.find((f) => path.basename(f.path) === 'domain.xml');
    const jsonFile = files.find((f) => path.basename(f.path) === 'backroll.json');
    if (xmlFile) domainXml = xmlFile.data.toString('utf8');
    if (jsonFile) {
      try {
        manifest = JSON.parse(jsonFile.data.toString('utf8')) as BackupManifest;
      } catch {
        manifest = null;
      }
    }
  }
  // backroll.json travels with the archives: a list of disks in it that differs from them means a partial restore point.
  const listed = manifest?.disks?.filter((d) => typeof d?.target === 'string');
  if (listed && listed.length > 0) {
    const a = listed.map((d) => d.target).sort().join(',');
    const b = out.map((d) => d.target).sort().join(',');
    if (a !== b) throw mismatch(rp, `backroll.json of ${config} lists disks ${a}, the repository holds archives of ${b}`, { manifest: a, archives: b });
  }
  for (const d of out) d.format = formatOf(d.target, manifest, domainXml);
  return { repository: rp.repository, epoch: rp.epoch, disks: out, configArchive: config, domainXml, manifest, access };
}

/** A disk's image format as the restore point recorded it (manifest first, then the domain XML). */
export function formatOf(target: string, manifest: BackupManifest | null, domainXml: string | null): string | null {
  const m = manifest?.disks?.find((d) => d.target === target)?.format;
  if (m) return m;
  if (domainXml === null) return null;
  try {
    return parseDomainXml(domainXml).disks.find((d) => d.target === target)?.format ?? null;
  } catch {
    return null;
  }
}

function mismatch(rp: RestorePointRow, why: string, details: Record<string, unknown>) {
  return restoreError(
    RestoreErrorCode.MANIFEST_MISMATCH,
    `restore point ${rp.id} (epoch ${rp.epoch}) in ${rp.repository} does not match what it recorded: ${why}. It is not restored; choose another restore point (the repository may have been changed outside Backroll)`,
    { restorePointId: rp.id, epoch: rp.epoch, ...details },
  );
}

/** The epoch's archives in the repository must be exactly those the restore point recorded (when it recorded them). */
function checkArchives(rp: RestorePointRow, present: string[]): void {
  const recorded = rp.archives ?? [];
  if (recorded.length === 0) return;
  const missing = recorded.filter((a) => !present.includes(a));
  const extra = present.filter((a) => !recorded.includes(a));
  if (missing.length > 0 || extra.length > 0) {
    throw mismatch(rp, `${missing.length > 0 ? `archives ${missing.join(', ')} are missing` : ''}${missing.length > 0 && extra.length > 0 ? '; ' : ''}${extra.length > 0 ? `archives ${extra.join(', ')} are not part of it` : ''}`, { missing, extra });
  }
}
