import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.{spec,test}.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Database suites share the machine's PostgreSQL/MariaDB: files isolate by schema, not by process.
    fileParallelism: true,
    pool: 'forks',
  },
});
