import fs from 'node:fs';

/** Creates the data dir (0700) on first start; refuses one others can read. */
export function ensureDataDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (!st.isDirectory()) throw new Error(`BACKROLL_DATA_DIR ${dir} is not a directory`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}
