import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** Tests that run the real `backroll` binary need dist/ built from the current sources. */
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [path.join(root, '..', 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
