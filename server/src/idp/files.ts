import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * File helpers for the identity provider's state in the data dir. Every file is
 * 0600 in a 0700 directory; writes are atomic (temp file + rename) so a crash or a
 * concurrent reader (the server while the CLI writes) never sees half a file.
 */

export const IDP_DIR = 'idp';
export const ADMIN_PASSWORD_FILE = 'admin-password.txt';

export interface IdpPaths {
  dir: string;
  accounts: string;
  clients: string;
  jwks: string;
  cookieKeys: string;
  adminPassword: string;
}

export function idpPaths(dataDir: string): IdpPaths {
  const dir = path.join(dataDir, IDP_DIR);
  return {
    dir,
    accounts: path.join(dir, 'accounts.json'),
    clients: path.join(dir, 'clients.json'),
    jwks: path.join(dir, 'jwks.json'),
    cookieKeys: path.join(dir, 'cookie-keys.json'),
    adminPassword: path.join(dataDir, ADMIN_PASSWORD_FILE),
  };
}

/** Creates `<dataDir>/idp` (0700), tightening it when it is readable by others. */
export function ensureIdpDir(dataDir: string): IdpPaths {
  const paths = idpPaths(dataDir);
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(paths.dir);
  if (!st.isDirectory()) throw new Error(`${paths.dir} is not a directory`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(paths.dir, 0o700);
  return paths;
}

/** Reads a JSON file; undefined when absent. Tightens a file others can read to 0600. */
export function readJson(file: string): unknown {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  tightenMode(file);
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new Error(`${file} is not valid JSON; restore it from a backup or remove it`, { cause: err });
  }
}

function tightenMode(file: string): void {
  try {
    const st = fs.statSync(file);
    if ((st.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  } catch {
    // best effort: a file we cannot chmod is still readable by us
  }
}

function tempName(file: string): string {
  return `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

function writeTemp(file: string, content: string): string {
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return tmp;
}

/** Replaces `file` atomically with `content`, mode 0600. */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = writeTemp(file, content);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `file` with `content` (0600) only when it does not exist yet, atomically
 * and completely (hard link of a finished temp file). Returns false when another
 * process won the race; the caller then reads the existing file.
 */
export function createFileExclusive(file: string, content: string): boolean {
  const tmp = writeTemp(file, content);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * Runs `fn` holding `<file>.lock` (exclusive create), so read-modify-write of a
 * store by the CLI and the server do not lose each other's changes. A lock older
 * than 30 s is considered left over by a crashed process and taken over.
 */
export function withFileLock<T>(file: string, fn: () => T): T {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      fs.closeSync(fs.openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 30_000) {
          fs.rmSync(lock, { force: true });
          continue;
        }
      } catch {
        continue; // released between our attempts
      }
      if (Date.now() > deadline) throw new Error(`${lock} is held by another process; retry, or remove it if no backroll process is running`);
      sleepSync(25);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}
