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
  /** A new directory, mode 0700 (fails if the path exists). */
  makePrivateDir(dir: string): Promise<void>;
  /** Removes a directory of ours and what is in it (a symlink at that path: only the link). */
  removeTree(dir: string): Promise<void>;
  /** Bytes of a regular file (symlinks not followed); null when it is missing or not a regular file. */
  sizeOf(file: string): Promise<number | null>;
  /** fsync of a file that was written by another process. */
  fsyncFile(file: string): Promise<void>;
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

const ZERO = Buffer.alloc(BLOCK);
/** Data is written in runs of up to this many bytes (one writev), holes are skipped. */
const RUN = 4 * 1024 * 1024;
const RUN_BUFFERS = 512;

/** A block of at most BLOCK bytes is all zeros (memcmp, not a byte loop). */
function isZero(buf: Buffer): boolean {
  return buf.equals(buf.length === BLOCK ? ZERO : ZERO.subarray(0, buf.length));
}

/** Writes `bufs` at `position`, all of them (writev may write less than asked). */
async function writeAll(fh: fs.FileHandle, bufs: Buffer[], position: number): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  const { bytesWritten } = await fh.writev(bufs, position);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(bufs).subarray(bytesWritten);
  let off = 0;
  while (off < rest.length) {
    const r = await fh.write(rest, off, rest.length - off, position + bytesWritten + off);
    if (r.bytesWritten <= 0) throw new Error(`short write at ${position + bytesWritten + off}`);
    off += r.bytesWritten;
  }
}

export const nodeRestoreFiles: RestoreFiles = {
  async writeSparse(source, file, onBytes) {
    const fh = await fs.open(file, 'wx', 0o600);
    // `position`: file offset of the next byte from `source`. Blocks of BLOCK bytes (at
    // BLOCK-aligned offsets) that are all zeros are skipped (holes); the others are gathered into
    // a run (references to the chunks, no copy) written with one writev per RUN bytes.
    let position = 0;
    let run: Buffer[] = [];
    let runStart = 0;
    let runBytes = 0;
    let carry: Buffer | null = null;
    // One write in flight while the next run is read: borg is not stalled by the disk.
    let writing: Promise<void> = Promise.resolve();
    const flushRun = async () => {
      if (runBytes === 0) return;
      await writing;
      writing = writeAll(fh, run, runStart);
      writing.catch(() => undefined);
      run = [];
      runBytes = 0;
    };
    const block = async (b: Buffer) => {
      if (isZero(b)) {
        await flushRun();
      } else {
        if (runBytes === 0) runStart = position;
        run.push(b);
        runBytes += b.length;
        if (runBytes >= RUN || run.length >= RUN_BUFFERS) await flushRun();
      }
      position += b.length;
    };
    try {
      for await (const c of source) {
        let chunk = c as Buffer;
        onBytes(chunk.length);
        if (carry) {
          const take = Math.min(BLOCK - carry.length, chunk.length);
          carry = Buffer.concat([carry, chunk.subarray(0, take)]);
          chunk = chunk.subarray(take);
          if (carry.length < BLOCK) continue;
          await block(carry);
          carry = null;
        }
        let off = 0;
        for (; off + BLOCK <= chunk.length; off += BLOCK) await block(chunk.subarray(off, off + BLOCK));
        if (off < chunk.length) carry = Buffer.from(chunk.subarray(off));
      }
      if (carry) await block(carry);
      await flushRun();
      await writing;
      // A trailing hole is only a hole if the file has its full length.
      await fh.truncate(position);
      await fh.sync();
    } finally {
      await writing.catch(() => undefined);
      await fh.close();
    }
    return position;
  },
  async makePrivateDir(dir) {
    await fs.mkdir(dir, { mode: 0o700 });
  },
  async removeTree(dir) {
    await fs.rm(dir, { recursive: true, force: true });
  },
  async sizeOf(file) {
    try {
      const st = await fs.lstat(file);
      return st.isFile() ? st.size : null;
    } catch {
      return null;
    }
  },
  async fsyncFile(file) {
    const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
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
