/**
 * A disk's backing chain as the backup reads it on the worker (same paths as on the host).
 *
 * The chain is walked one image at a time (`qemu-img info` without `--backing-chain`, which
 * would open every backing name itself before we could look at it), always with `-f`:
 * - the top image with the format libvirt declares (`raw` when it declares none): a raw
 *   disk's first bytes are the guest's, and a probed "qcow2 header" there could name any
 *   file of the worker (`<data dir>/secret.key`) or a network export as its backing file;
 * - each backing image with the format recorded in the image above it, or the one libvirt
 *   reports; never probed (no format known: refused).
 * A backing name must be a plain absolute path (no `json:`, `nbd:`, `http:`… protocol) and,
 * where libvirt reports the disk's chain (running domains), be exactly the image libvirt has
 * there. Nothing is opened before its name passed these checks.
 */
import type { BackingImage } from '../adapters/libvirt/domain-xml.js';
import type { ProcessRunner } from '../adapters/process/process-runner.js';
import { localRunner } from '../adapters/qemu-img/check.js';
import { QemuImg, type CommandRunner } from '../adapters/qemu-img/qemu-img.js';
import { AppError } from '../errors.js';
import { isOverlayPath } from './naming.js';

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize: number | null;
  backingFilename: string | null;
}

export interface DeclaredDisk {
  /** libvirt's driver type for the disk; null → raw (libvirt's default). */
  format?: string | null;
  /** The chain libvirt reports below the top image (domain XML `backingStore`), nearest first. */
  libvirtChain?: readonly BackingImage[];
}

/** Chains deeper than this are refused (libvirt's own limit is far lower in practice). */
const MAX_DEPTH = 16;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Why a backing name is not a plain absolute file path; null when it is one (pure). */
export function unsafeBackingName(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (/[\x00-\x1f\x7f]/.test(name)) return 'it contains control characters';
  if (!name.startsWith('/')) return SCHEME.test(name) ? `it names a protocol (${name.slice(0, name.indexOf(':') + 1)}), not a file` : 'it is not an absolute path';
  if (name.split('/').some((p) => p === '..' || p === '.')) return 'it contains "." or ".." components';
  return null;
}

function refuse(code: string, disk: string, message: string, details: Record<string, unknown>): never {
  throw new AppError('conflict', code, `disk ${disk}: ${message}; Backroll does not back up this disk. Check the image on the host (qemu-img info -f <format> ${disk})`, { path: disk, ...details });
}

/**
 * The disk image and its backing images, top first. `declared` is what libvirt says about the
 * disk; without a format, Backroll's own snapshot overlays (`*.backroll-<epoch>.qcow2`, always
 * qcow2) are read as qcow2 and anything else as raw.
 */
export async function imageChain(runner: ProcessRunner, file: string, declared: DeclaredDisk = {}, onHost?: CommandRunner): Promise<ImageInfo[]> {
  // onHost: qemu-img on the hypervisor host over SSH (the worker reads over SSH, no mount).
  const qemuImg = new QemuImg(onHost ?? localRunner(runner), { timeoutMs: 60_000 });
  const libvirtChain = declared.libvirtChain ?? [];
  const out: ImageInfo[] = [];
  let current = file;
  let format = declared.format ?? (isOverlayPath(file) ? 'qcow2' : 'raw');
  for (let depth = 0; ; depth++) {
    let info;
    try {
      // -U: the image may be in use by a running VM (read-only look at the header, no lock).
      [info] = await qemuImg.info(current, { format, backingChain: false });
    } catch (err) {
      const e = err as AppError;
      if (depth === 0) throw new AppError('unavailable', 'VM.DISK_NOT_ACCESSIBLE', `qemu-img cannot read ${file} ${onHost ? 'on the host' : 'on this worker'}: ${e.message}`, { path: file, cause: e.code ?? null });
      throw new AppError('unavailable', 'VM.DISK_NOT_ACCESSIBLE', `qemu-img cannot read the backing file ${current} of ${file} ${onHost ? 'on the host' : 'on this worker'}: ${e.message}`, { path: file, backingFile: current, cause: e.code ?? null });
    }
    const img = info!;
    out.push({ filename: current, format: img.format, virtualSize: img.virtualSizeBytes, actualSize: img.actualSizeBytes, backingFilename: img.backingFilename });
    if (img.backingFilename === null) break;
    if (depth + 1 >= MAX_DEPTH) refuse('BACKUP.BACKING_CHAIN_INVALID', file, `its backing chain is deeper than ${MAX_DEPTH} images`, {});
    const backing = img.backingFilename;
    const why = unsafeBackingName(backing);
    if (why !== null) refuse('BACKUP.BACKING_CHAIN_INVALID', file, `the image ${current} names ${JSON.stringify(backing.slice(0, 200))} as its backing file, which is refused: ${why}`, { image: current, backingFile: backing.slice(0, 1000) });
    const reported = libvirtChain[depth];
    if (libvirtChain.length > 0) {
      // libvirt states where this disk's chain really is: anything else is not the host's disk.
      if (!reported || reported.path !== backing) {
        refuse('BACKUP.BACKING_CHAIN_MISMATCH', file, `the image ${current} names ${JSON.stringify(backing)} as its backing file, but libvirt reports ${reported ? JSON.stringify(reported.path ?? reported.type) : 'no further backing image'} there`, {
          image: current,
          backingFile: backing,
          libvirtBacking: reported?.path ?? null,
        });
      }
    }
    const next = img.backingFormat ?? reported?.format ?? null;
    if (next === null) {
      refuse('BACKUP.BACKING_FORMAT_UNKNOWN', file, `the image ${current} does not record the format of its backing file ${backing}, and guessing it would trust the file's content; record it with qemu-img rebase -u -F <format> -b ${backing} ${current}`, {
        image: current,
        backingFile: backing,
      });
    }
    current = backing;
    format = next;
  }
  return out;
}
