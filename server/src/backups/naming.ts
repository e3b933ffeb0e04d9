/**
 * The storage layout, compatible with BackROLL (pure):
 *   <storage>/<vm name>                       one borg repository per VM
 *   <target>_<disk file stem>_<epoch>         one archive per disk per backup (the image at its absolute path)
 *   config_<epoch>                            domain.xml + backroll.json (Backroll only)
 *   <storage>/template/<file name>(.sha256)   backing files, stored once
 * All archives with the same epoch suffix form one restore point.
 */
import path from 'node:path';
import { invalid } from '../errors.js';

export const TEMPLATE_DIR = 'template';
export const CONFIG_PREFIX = 'config_';

/**
 * Archive name parts must not contain borg's separators nor glob characters (the
 * prune prefix is a glob): anything outside [A-Za-z0-9._-] becomes `_`. CloudStack
 * and usual file names are unchanged.
 */
export function safePart(s: string): string {
  const out = s.replace(/[^A-Za-z0-9._-]/g, '_');
  return out === '' ? '_' : out;
}

/** `i-2-34-VM.qcow2` → `i-2-34-VM`; a name without extension stays as is. */
export function diskStem(diskPath: string): string {
  const base = path.basename(diskPath);
  const ext = path.extname(base);
  return ext && ext !== base ? base.slice(0, -ext.length) : base;
}

export function diskArchivePrefix(target: string, diskPath: string): string {
  return `${safePart(target)}_${safePart(diskStem(diskPath))}_`;
}

export function diskArchiveName(target: string, diskPath: string, epoch: number): string {
  return `${diskArchivePrefix(target, diskPath)}${epoch}`;
}

export function configArchiveName(epoch: number): string {
  return `${CONFIG_PREFIX}${epoch}`;
}

export type ParsedArchive =
  | { kind: 'config'; name: string; epoch: number; prefix: string }
  | { kind: 'disk'; name: string; epoch: number; prefix: string; target: string; stem: string }
  | { kind: 'other'; name: string };

/** Reads an archive name back (BackROLL's and Backroll's); checkpoints and foreign names are `other`. */
export function parseArchiveName(name: string): ParsedArchive {
  const config = /^config_(\d{9,12})$/.exec(name);
  if (config) return { kind: 'config', name, epoch: Number(config[1]), prefix: CONFIG_PREFIX };
  const disk = /^([^_]+)_(.+)_(\d{9,12})$/.exec(name);
  if (disk) return { kind: 'disk', name, epoch: Number(disk[3]), prefix: `${disk[1]}_${disk[2]}_`, target: disk[1]!, stem: disk[2]! };
  return { kind: 'other', name };
}

export interface ArchiveGroup {
  epoch: number;
  archives: string[];
  hasConfig: boolean;
}

/** Restore points of a repository: its archives grouped by epoch, newest first. */
export function groupByEpoch(names: readonly string[]): ArchiveGroup[] {
  const groups = new Map<number, ArchiveGroup>();
  for (const n of names) {
    const p = parseArchiveName(n);
    if (p.kind === 'other') continue;
    const g = groups.get(p.epoch) ?? { epoch: p.epoch, archives: [], hasConfig: false };
    g.archives.push(n);
    if (p.kind === 'config') g.hasConfig = true;
    groups.set(p.epoch, g);
  }
  return [...groups.values()].map((g) => ({ ...g, archives: g.archives.sort() })).sort((a, b) => b.epoch - a.epoch);
}

/** The archive series (prune prefixes) present in a list of names. */
export function archivePrefixes(names: readonly string[]): string[] {
  const set = new Set<string>();
  for (const n of names) {
    const p = parseArchiveName(n);
    if (p.kind !== 'other') set.add(p.prefix);
  }
  return [...set].sort();
}

/** `<storage>/<vm name>`; the name is a single path component, never `template`, `.` or `..`. */
export function repositoryPath(storagePath: string, vmName: string): string {
  if (vmName === '' || vmName.includes('/') || vmName.includes('\0') || vmName === '.' || vmName === '..') {
    throw invalid('BACKUP.VM_NAME_UNSUPPORTED', `the VM name ${JSON.stringify(vmName)} cannot name a repository directory`, { name: vmName });
  }
  if (vmName === TEMPLATE_DIR) {
    throw invalid('BACKUP.VM_NAME_UNSUPPORTED', `a VM named "${TEMPLATE_DIR}" would share its repository directory with the backing-file store`, { name: vmName });
  }
  // borg splits `<repo>::<archive>` at the first `::`.
  if (vmName.includes('::')) {
    throw invalid('BACKUP.VM_NAME_UNSUPPORTED', `a VM name containing "::" cannot be a borg repository path`, { name: vmName });
  }
  return path.join(storagePath, vmName);
}

export function templatePath(storagePath: string, backingFile: string): string {
  return path.join(storagePath, TEMPLATE_DIR, path.basename(backingFile));
}

const OVERLAY = /\.backroll-(\d{9,12})\.qcow2$/;

/** `<dir>/<disk stem>.backroll-<epoch>.qcow2`, next to the disk. */
export function overlayPath(diskPath: string, epoch: number): string {
  return path.join(path.dirname(diskPath), `${diskStem(diskPath)}.backroll-${epoch}.qcow2`);
}

export function isOverlayPath(p: string): boolean {
  return OVERLAY.test(path.basename(p));
}

/** Stale overlays of a disk among the file names of its directory. */
export function overlaysOfDisk(diskPath: string, fileNames: readonly string[]): string[] {
  const prefix = `${diskStem(diskPath)}.backroll-`;
  return fileNames.filter((f) => f.startsWith(prefix) && OVERLAY.test(f)).map((f) => path.join(path.dirname(diskPath), f));
}
