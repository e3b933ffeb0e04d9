import { defineConfig } from 'vitest/config';

/**
 * Two projects: everything else runs files in parallel (each file has its own
 * databases and data dir); lab tests (`*.lab.test.ts`) share one KVM lab, so
 * they run one file at a time.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['src/**/*.{spec,test}.ts', 'test/**/*.test.ts'],
          exclude: ['**/*.lab.test.ts', '**/node_modules/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'lab',
          include: ['src/**/*.lab.test.ts', 'test/**/*.lab.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
        },
      },
    ],
  },
});
