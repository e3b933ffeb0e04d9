import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** Runs the incremental lab child (killed with -9 by incremental.lab.test.ts). */
const here = path.dirname(fileURLToPath(import.meta.url));
export default defineConfig({
  test: {
    root: here,
    include: ['incremental-child.child.ts'],
    testTimeout: 300_000,
    pool: 'forks',
  },
});
