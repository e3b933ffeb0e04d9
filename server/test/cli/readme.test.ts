import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config/config.js';

describe('README', () => {
  const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../../README.md'), 'utf8');

  it('documents every configuration variable Backroll reads', () => {
    const missing = Object.keys(CONFIG_VARIABLES).filter((v) => !readme.includes(`\`${v}\``));
    expect(missing).toEqual([]);
  });

  it('names the two quick-start commands that exist in package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../../package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(readme).toContain('npm run quickstart');
    expect(readme).toContain('sudo npm run test:all');
    expect(pkg.scripts.quickstart).toBeDefined();
    expect(pkg.scripts['test:all']).toBeDefined();
  });
});
