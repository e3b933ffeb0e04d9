/** Pure parsing of `qemu-img info --output=json [--backing-chain]`. */
import { QemuImgErrorCode, qemuImgError } from './qemu-img-errors.js';

export interface ImageInfo {
  /** As qemu-img names it (the path given, or the backing file name as recorded). */
  filename: string;
  /** `qcow2`, `raw`, … */
  format: string;
  /** Size the guest sees. */
  virtualSizeBytes: number;
  /** Space used on the host's storage; null when qemu-img cannot tell (some network storage). */
  actualSizeBytes: number | null;
  /** The image's backing file, absolute when qemu-img could resolve it; null without one. */
  backingFilename: string | null;
  /** The backing file's format as recorded in this image; null when not recorded. */
  backingFormat: string | null;
  /** qcow2 was not closed cleanly (lazy refcounts); the image needs a check before trusting it. */
  dirty: boolean;
  encrypted: boolean;
}

type Json = Record<string, unknown>;

function bad(message: string): never {
  throw qemuImgError(QemuImgErrorCode.BAD_OUTPUT, `qemu-img info printed ${message}`);
}

function size(v: unknown, what: string, optional: boolean): number | null {
  if (v === undefined || v === null) return optional ? null : bad(`no ${what}`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`an invalid ${what} (${JSON.stringify(v)})`);
  return v;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

function image(j: unknown, i: number): ImageInfo {
  if (j === null || typeof j !== 'object' || Array.isArray(j)) bad(`a non-object at position ${i}`);
  const o = j as Json;
  const filename = str(o.filename) ?? bad(`no filename at position ${i}`);
  const format = str(o.format) ?? bad(`no format for ${JSON.stringify(filename)}`);
  return {
    filename,
    format,
    virtualSizeBytes: size(o['virtual-size'], 'virtual-size', false)!,
    actualSizeBytes: size(o['actual-size'], 'actual-size', true),
    backingFilename: str(o['full-backing-filename']) ?? str(o['backing-filename']),
    backingFormat: str(o['backing-filename-format']),
    dirty: o['dirty-flag'] === true,
    encrypted: o.encrypted === true,
  };
}

/**
 * The chain, top image first. `--backing-chain` prints an array; without it qemu-img
 * prints one object. Either is accepted.
 */
export function parseQemuImgInfo(stdout: string): ImageInfo[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    bad(`something that is not JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const list = Array.isArray(doc) ? doc : [doc];
  if (list.length === 0) bad('an empty chain');
  // Same depth guard as the domain XML parser: the output comes from a remote host.
  if (list.length > 256) bad(`a chain of ${list.length} images`);
  return list.map(image);
}
