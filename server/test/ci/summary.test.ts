/**
 * Skips must count: a suite that cannot run is one skipped test with its reason, the
 * closing summary counts it, and in CI (CI=true) it fails the run. A nested vitest runs a
 * small fixture file and scripts/ci/summary.mjs reads its real JSON report.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SERVER = path.resolve(import.meta.dirname, '..', '..');
const ROOT = path.resolve(SERVER, '..');
const SUMMARY = path.join(ROOT, 'scripts', 'ci', 'summary.mjs');
const VITEST = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const HELPER = path.join(SERVER, 'test', 'support', 'unavailable.ts');

/** The environment of a fresh shell: no vitest worker variables, CI as given. */
function cleanEnv(ci: boolean): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'CI' && k !== 'NODE_ENV' && k !== 'TEST'));
  return ci ? { ...env, CI: 'true' } : env;
}

describe('skipped suites are counted and fail CI', () => {
  let dir: string;
  let report: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-skips-'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    fs.writeFileSync(path.join(dir, 'vitest.config.mjs'), "export default { test: { include: ['*.test.ts'], pool: 'forks' } };\n");
    fs.writeFileSync(
      path.join(dir, 'fixture.test.ts'),
      `import { describe, expect, it } from 'vitest';
import { describeUnavailable, describeWhenAvailable } from ${JSON.stringify(HELPER)};
describeUnavailable('job contract on postgres', 'postgres at 127.0.0.1:5432 is not reachable');
describeWhenAvailable('hooks on mysql', 'mysql at 127.0.0.1:3306 is not reachable', () => {
  it('must not run', () => { throw new Error('ran although unavailable'); });
});
describe.skip('an empty skipped suite', () => {});
describeWhenAvailable('available suite', null, () => {
  it('runs', () => expect(1 + 1).toBe(2));
});
`,
    );
    // A whole file that vanishes: its only suite is an empty skipped one.
    fs.writeFileSync(path.join(dir, 'empty.test.ts'), "import { describe } from 'vitest';\ndescribe.skip('queue dashboard on redis (skipped: down)', () => {});\n");
    report = path.join(dir, 'report.json');
    const r = spawnSync(process.execPath, [VITEST, 'run', '--root', dir, '--config', path.join(dir, 'vitest.config.mjs'), '--reporter=json', `--outputFile=${report}`], {
      cwd: dir,
      env: cleanEnv(false),
      encoding: 'utf8',
    });
    if (!fs.existsSync(report)) throw new Error(`nested vitest wrote no report (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }, 120_000);
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the report holds one skipped test per unavailable suite, with the reason in its name; the empty describe.skip registers none', () => {
    const json = JSON.parse(fs.readFileSync(report, 'utf8'));
    expect(json.numPassedTests).toBe(1);
    expect(json.numPendingTests).toBe(2);
    const names = json.testResults.flatMap((f: { assertionResults: Array<{ fullName: string; status: string }> }) => f.assertionResults.map((a) => [a.fullName, a.status]));
    expect(names).toEqual(
      expect.arrayContaining([
        ['job contract on postgres SKIPPED: postgres at 127.0.0.1:5432 is not reachable', expect.stringMatching(/^(pending|skipped)$/)],
        ['hooks on mysql SKIPPED: mysql at 127.0.0.1:3306 is not reachable', expect.stringMatching(/^(pending|skipped)$/)],
        ['available suite runs', 'passed'],
      ]),
    );
    expect(names.some(([n]: [string]) => n.startsWith('an empty skipped suite') || n.startsWith('queue dashboard'))).toBe(false);
    expect(names).toHaveLength(3);
  });

  it('summary.mjs counts the skips, and a file that registered no test as one, and passes outside CI', () => {
    const r = spawnSync(process.execPath, [SUMMARY, report], { env: cleanEnv(false), encoding: 'utf8' });
    expect(r.stdout).toContain('1 passed, 0 failed, 3 skipped');
    expect(r.stdout).toContain(`registered no test: ${path.join(dir, 'empty.test.ts')}`);
    expect(r.stdout).toContain('job contract on postgres');
    expect(r.status).toBe(0);
  });

  it('summary.mjs fails CI on the skips and names the missing component', () => {
    const r = spawnSync(process.execPath, [SUMMARY, report], { env: cleanEnv(true), encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('1 passed, 0 failed, 3 skipped');
    expect(r.stdout).toContain('postgres at 127.0.0.1:5432 is not reachable');
    expect(r.stdout).toContain('mysql at 127.0.0.1:3306 is not reachable');
    expect(r.stdout).toContain('CI runs with no test skipped');
  });
});
