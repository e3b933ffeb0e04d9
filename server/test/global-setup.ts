import { spawnSync } from 'node:child_process';
import path from 'node:path';

/**
 * Tests that run the real `backroll` binary need dist/ built from the current sources.
 * tsc emits even when a file has a type error; type errors are reported by the
 * separate typecheck step of `npm run test:all`, not here.
 */
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const tsc = path.join(root, '..', 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (res.status !== 0 && res.status !== 2) throw new Error(`building dist/ failed:\n${res.stdout}${res.stderr}`);
}
