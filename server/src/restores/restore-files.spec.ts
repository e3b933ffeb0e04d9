/**
 * nodeRestoreFiles.writeSparse on a real file system: the bytes written equal the stream's,
 * whatever the chunk sizes (chunks that straddle the 64 KiB blocks, tiny chunks, a short tail),
 * and 64 KiB blocks of zeros become holes.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeRestoreFiles } from './restore-files.js';

const K = 1024;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-write-sparse-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A deterministic image: data blocks, zero blocks, a zero run of 9 MiB, a data tail that is not block-aligned. */
function image(): Buffer {
  const parts: Buffer[] = [];
  let seed = 7;
  const data = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
    return b;
  };
  parts.push(data(64 * K), Buffer.alloc(64 * K), data(3 * 64 * K), Buffer.alloc(9 * 1024 * K), data(10), Buffer.alloc(64 * K - 10));
  // A block that is zero except its last byte: not a hole.
  const almost = Buffer.alloc(64 * K);
  almost[64 * K - 1] = 1;
  parts.push(almost, data(5 * 1024 * K), Buffer.alloc(128 * K), data(1234));
  return Buffer.concat(parts);
}

async function* chunks(buf: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, buf.length - off);
    // A fresh buffer per chunk, as a pipe gives them.
    yield Buffer.from(buf.subarray(off, off + n));
    off += n;
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('writeSparse', () => {
  const src = image();
  for (const [label, sizes] of [
    ['64 KiB chunks', [64 * K]],
    ['chunks straddling blocks', [1000, 70 * K, 3, 200 * K, 64 * K - 1]],
    ['one big chunk', [src.length]],
    ['small chunks', [4096, 512]],
  ] as const) {
    it(`${label}: same bytes, zero blocks as holes, fsync'ed file of the full length`, async () => {
      const file = path.join(dir, `${label.replace(/\W+/g, '-')}.img`);
      let seen = 0;
      const n = await nodeRestoreFiles.writeSparse(chunks(src, [...sizes]), file, (x) => (seen += x));
      expect(n).toBe(src.length);
      expect(seen).toBe(src.length);
      const out = fs.readFileSync(file);
      expect(out.length).toBe(src.length);
      expect(sha(out)).toBe(sha(src));
      // About 9.3 MiB of the 15.3 MiB are zero blocks: allocated well under the length.
      expect(fs.statSync(file).blocks * 512).toBeLessThan(src.length - 8 * 1024 * K);
    });
  }

  it('refuses to overwrite an existing file', async () => {
    const file = path.join(dir, 'exists.img');
    fs.writeFileSync(file, 'x');
    await expect(nodeRestoreFiles.writeSparse(chunks(src, [64 * K]), file, () => {})).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });
});
