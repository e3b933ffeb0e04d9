/**
 * The worker-side file operations of restores, on the VM storage mounted at the same path as
 * on the hosts. Writes go to temporary files that are fsync'ed before they are renamed.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

const BLOCK = 64 * 1024;

export interface FileOwner {
  uid: number;
  gid: number;
  /** Permission bits (incl. setuid/sticky), no file type. */
  mode: number;
}

export type DirProblem = 'missing' | 'not_directory' | 'not_empty' | 'not_writable' | 'not_absolute';

export interface RestoreFiles {
  /**
   * Writes `source` into a new file (fails if it exists), leaving runs of zero blocks as holes
   * (disk images are mostly empty), fsync'ed. `onBytes` sees every chunk's length.
   */
  writeSparse(source: AsyncIterable<Buffer>, file: string, onBytes: (n: number) => void): Promise<number>;
  exists(file: string): Promise<boolean>;
  /** What is at a path (symlinks not followed). */
  kind(file: string): Promise<'file' | 'missing' | 'other'>;
  ownerOf(file: string): Promise<FileOwner | null>;
  setOwner(file: string, owner: FileOwner): Promise<void>;
  /** Hard link: the kept original shares the inode, so the path is never missing. */
  link(existing: string, newPath: string): Promise<void>;
  /** Atomic replace (same file system), then fsync of the directory. */
  rename(from: string, to: string): Promise<void>;
  remove(file: string): Promise<void>;
  freeBytes(dir: string): Promise<number | null>;
  /** Device id: directories on one file system share their free space. */
  deviceOf(dir: string): Promise<number | null>;
  sha256(file: string): Promise<string>;
  copy(from: string, to: string): Promise<void>;
  writeFile(file: string, data: string | Buffer): Promise<void>;
  readText(file: string): Promise<string | null>;
  checkEmptyWritableDir(dir: string): Promise<DirProblem | null>;
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

export const nodeRestoreFiles: RestoreFiles = {
  async writeSparse(source, file, onBytes) {
    const fh = await fs.open(file, 'wx', 0o600);
    let position = 0;
    let carry: Buffer = Buffer.alloc(0);
    const flush = async (buf: Buffer, final: boolean) => {
      let off = 0;
      while (off + BLOCK <= buf.length || (final && off < buf.length)) {
        const end = Math.min(off + BLOCK, buf.length);
        if (!isZero(buf, off, end)) await fh.write(buf, off, end - off, position);
        position += end - off;
        off = end;
      }
      return buf.subarray(off);
    };
    try {
      for await (const chunk of source) {
        onBytes(chunk.length);
        carry = carry.length ? Buffer.concat([carry, chunk]) : chunk;
        if (carry.length >= BLOCK) carry = Buffer.from(await flush(carry, false));
      }
      await flush(carry, true);
      // A trailing hole is only a hole if the file has its full length.
      await fh.truncate(position);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return position;
  },
  async exists(file) {
    try {
      await fs.lstat(file);
      return true;
    } catch {
      return false;
    }
  },
  async kind(file) {
    try {
      return (await fs.lstat(file)).isFile() ? 'file' : 'other';
    } catch {
      return 'missing';
    }
  },
  async ownerOf(file) {
    try {
      const st = await fs.stat(file);
      return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
    } catch {
      return null;
    }
  },
  async setOwner(file, owner) {
    await fs.chown(file, owner.uid, owner.gid);
    await fs.chmod(file, owner.mode);
  },
  async link(existing, newPath) {
    await fs.link(existing, newPath);
    await fsyncDir(path.dirname(newPath));
  },
  async rename(from, to) {
    await fs.rename(from, to);
    await fsyncDir(path.dirname(to));
  },
  async remove(file) {
    await fs.rm(file, { force: true });
  },
  async freeBytes(dir) {
    try {
      const s = await fs.statfs(dir);
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  },
  async deviceOf(dir) {
    try {
      return (await fs.stat(dir)).dev;
    } catch {
      return null;
    }
  },
  async sha256(file) {
    const h = createHash('sha256');
    for await (const c of createReadStream(file) as Readable) h.update(c as Buffer);
    return h.digest('hex');
  },
  async copy(from, to) {
    await fs.copyFile(from, to, constants.COPYFILE_EXCL);
    const fh = await fs.open(to, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  async writeFile(file, data) {
    await fs.writeFile(file, data, { flag: 'wx', mode: 0o600 });
  },
  async readText(file) {
    try {
      return await fs.readFile(file, 'utf8');
    } catch {
      return null;
    }
  },
  async checkEmptyWritableDir(dir) {
    if (!path.isAbsolute(dir)) return 'not_absolute';
    let st;
    try {
      st = await fs.stat(dir);
    } catch {
      return 'missing';
    }
    if (!st.isDirectory()) return 'not_directory';
    if ((await fs.readdir(dir)).length > 0) return 'not_empty';
    // access(W_OK) lies for root and on read-only or immutable directories: really create a file.
    const probe = path.join(dir, `.backroll-probe-${process.pid}-${Date.now()}`);
    try {
      await fs.writeFile(probe, '', { flag: 'wx', mode: 0o600 });
      await fs.unlink(probe);
    } catch {
      return 'not_writable';
    }
    return null;
  },
};
