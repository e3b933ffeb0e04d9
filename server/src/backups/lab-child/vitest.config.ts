import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** Runs the lab child (a backup in its own process, killed with -9 by backup.kill.lab.test.ts). */
const here = path.dirname(fileURLToPath(import.meta.url));
export default defineConfig({
  test: {
    root: here,
    include: ['backup-child.child.ts'],
    testTimeout: 300_000,
    pool: 'forks',
  },
});
