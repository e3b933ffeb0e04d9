import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export type DirectoryProbe =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'not_directory' | 'not_writable'; error?: string };

export interface Capacity {
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
}

/** File-system side effects used by services (storage checks, capacity). */
export interface FileSystem {
  probeWritableDirectory(dir: string): Promise<DirectoryProbe>;
  capacity(dir: string): Promise<Capacity | null>;
}

export const nodeFileSystem: FileSystem = {
  async probeWritableDirectory(dir) {
    let st;
    try {
      st = await fs.stat(dir);
    } catch (err) {
      return { ok: false, reason: 'missing', error: (err as NodeJS.ErrnoException).code };
    }
    if (!st.isDirectory()) return { ok: false, reason: 'not_directory' };
    // access(W_OK) lies for root and on read-only mounts: really create a file.
    const probe = path.join(dir, `.backroll-probe-${randomBytes(6).toString('hex')}`);
    try {
      await fs.writeFile(probe, '', { flag: 'wx', mode: 0o600 });
      await fs.unlink(probe);
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: 'not_writable', error: (err as NodeJS.ErrnoException).code };
    }
  },
  async capacity(dir) {
    try {
      const s = await fs.statfs(dir);
      const capacityBytes = s.blocks * s.bsize;
      return { capacityBytes, usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch {
      return null;
    }
  },
};
