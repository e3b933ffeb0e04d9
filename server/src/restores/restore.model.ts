/** Pure parts of restores: archive names, restore point contents, file names. */
import path from 'node:path';
import { parseArchiveName } from '../backups/naming.js';

export type RestoreMode = 'in-place' | 'new-vm' | 'directory';

export interface RestorePayload {
  vmId: string;
  restorePointId: string;
  mode: RestoreMode;
  newName?: string;
  hostId?: string;
  start?: boolean;
  directory?: string;
}

/** The archives of one restore point: those whose epoch suffix matches (backups/naming.ts names). */
export function archivesOfEpoch(names: readonly string[], epoch: number): { config: string | null; disks: Array<{ name: string; target: string }> } {
  let config: string | null = null;
  const disks: Array<{ name: string; target: string }> = [];
  for (const n of names) {
    const p = parseArchiveName(n);
    if (p.kind === 'other' || p.epoch !== epoch) continue;
    if (p.kind === 'config') config = n;
    else disks.push({ name: n, target: p.target });
  }
  disks.sort((a, b) => a.target.localeCompare(b.target));
  return { config, disks };
}

/** The metadata the backup engine stores next to the domain XML (`backroll.json`). */
export interface BackupManifest {
  vm?: { uuid?: string; name?: string; host?: string };
  uuid?: string;
  name?: string;
  disks?: Array<{ target: string; path: string; format?: string | null; backingChain?: unknown; virtualSize?: number | null }>;
  epoch?: number;
}

export const tmpPathOf = (diskPath: string, epoch: number) => `${diskPath}.backroll-restore-${epoch}.tmp`;
export const replacedPathOf = (diskPath: string, epoch: number) => `${diskPath}.backroll-replaced-${epoch}`;

/** A name usable in a file name: anything outside [A-Za-z0-9._-] becomes `_`, no leading dot. */
export function fileSafe(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return s.slice(0, 100) || 'vm';
}

/** Disk file of a VM restored as a copy: `<dir>/<new name>-<target><ext of the original>`. */
export function newDiskPath(originalPath: string, newName: string, target: string, directory?: string): string {
  const dir = directory ?? path.dirname(originalPath);
  const ext = path.extname(originalPath);
  return path.join(dir, `${fileSafe(newName)}-${fileSafe(target)}${/^\.[A-Za-z0-9]{1,8}$/.test(ext) ? ext : ''}`);
}

/** Files of a restore to a directory: the disk's own file name, prefixed by its target on a clash. */
export function directoryFileNames(disks: Array<{ target: string; path: string }>): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Set(['domain.xml', 'backroll.json']);
  for (const d of disks) {
    let n = fileSafe(path.basename(d.path));
    if (used.has(n)) n = `${fileSafe(d.target)}_${n}`;
    used.add(n);
    out.set(d.target, n);
  }
  return out;
}

/** `Content-Disposition` for a download: an ASCII fallback plus the exact name (RFC 6266/5987). */
export function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(fileName)}`;
}

/** Progress of the whole task from bytes extracted: extraction is 5–90 %, the rest are steps. */
export function percentOf(done: number, total: number): number {
  if (total <= 0) return 5;
  return Math.min(90, 5 + Math.floor((done / total) * 85));
}
