/**
 * Reads the regular files of a small tar stream (`borg export-tar` of a config archive) — pure.
 * The bytes come from a repository: every header is checked (magic, checksum, octal fields,
 * bounds), names never leave this function as paths to open, and the whole stream is capped by
 * the caller. Understands ustar, GNU long names (`L`) and pax `path` records (`x`); other entry
 * types (directories, links, devices) are skipped.
 */
export interface TarFile {
  path: string;
  data: Buffer;
}

export class TarFormatError extends Error {}

const BLOCK = 512;

function field(h: Buffer, off: number, len: number): string {
  const raw = h.subarray(off, off + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

function octal(h: Buffer, off: number, len: number, what: string): number {
  // GNU base-256 (high bit set) is for sizes ≥ 8 GiB: far beyond a config archive.
  if (h[off]! & 0x80) throw new TarFormatError(`tar ${what} in base-256: too large`);
  const s = field(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`tar ${what} is not octal: ${JSON.stringify(s.slice(0, 20))}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = octal(h, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

function paxPath(data: Buffer): string | null {
  let pos = 0;
  let found: string | null = null;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) throw new TarFormatError('bad pax record');
    const len = Number(data.subarray(pos, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= sp - pos || pos + len > data.length) throw new TarFormatError('bad pax record length');
    const rec = data.subarray(sp + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0 && rec.slice(0, eq) === 'path') found = rec.slice(eq + 1);
    pos += len;
  }
  return found;
}

export function readTar(buf: Buffer): TarFile[] {
  const out: TarFile[] = [];
  let pos = 0;
  let longName: string | null = null;
  while (pos + BLOCK <= buf.length) {
    const h = buf.subarray(pos, pos + BLOCK);
    if (h.every((b) => b === 0)) return out; // end of archive
    const magic = field(h, 257, 6);
    if (magic !== 'ustar' && magic !== 'ustar ') throw new TarFormatError(`not a tar header at byte ${pos}`);
    if (!checksumOk(h)) throw new TarFormatError(`bad tar header checksum at byte ${pos}`);
    const size = octal(h, 124, 12, 'size');
    const type = String.fromCharCode(h[156]!);
    const start = pos + BLOCK;
    const end = start + size;
    if (end > buf.length) throw new TarFormatError(`tar entry at byte ${pos} runs past the end of the stream`);
    const data = buf.subarray(start, end);
    pos = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = field(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (type === 'g') continue;
    const prefix = magic === 'ustar' ? field(h, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    longName = null;
    if (type === '0' || type === '\0') out.push({ path: name, data: Buffer.from(data) });
  }
  throw new TarFormatError('the tar stream ends without its end-of-archive blocks');
}
