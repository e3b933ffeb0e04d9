import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const AUTHORIZE = path.resolve(import.meta.dirname, '../../../scripts/lab/authorize-key.sh');

/** Appends the lines to every lab host user's authorized_keys with the lab's own script. */
export function authorize(lines: string[]): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-pub-'));
  try {
    fs.writeFileSync(path.join(dir, 'keys.pub'), lines.join('\n') + '\n');
    const r = spawnSync('bash', [AUTHORIZE, path.join(dir, 'keys.pub')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`authorize-key.sh failed: ${r.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Takes test keys out again, so authorized_keys does not grow with every run. */
export function unauthorize(homes: string[], lines: string[]): void {
  for (const home of homes) {
    const ak = path.join(home, '.ssh', 'authorized_keys');
    if (!fs.existsSync(ak)) continue;
    const kept = fs.readFileSync(ak, 'utf8').split('\n').filter((l) => !lines.includes(l));
    fs.writeFileSync(ak, kept.join('\n')); // same inode: owner and mode stay
  }
}
