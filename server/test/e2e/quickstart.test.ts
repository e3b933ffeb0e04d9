/**
 * Issue 9's "done when": the quickstart's start command (scripts/quickstart.sh, after its
 * build) on a fresh data dir prints the console's URL and the admin password; signing in
 * with that password in a real browser (Debian's chromium) shows the getting-started checklist.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { browserSkipReason, ensureWebBuilt, launchBrowser, REPO_ROOT, type E2eBrowser } from './browser.js';

const reason = browserSkipReason().replace(/^ \(SKIPPED: (.*)\)$/, '$1') || null;

describeWhenAvailable('quickstart: console URL and first sign-in in chromium', reason, () => {
  let dataDir: string;
  let proc: ChildProcess | undefined;
  let b: E2eBrowser | undefined;
  let output = '';
  let port: number;

  beforeAll(async () => {
    // What quickstart.sh does before starting: build the server and the console.
    const r = spawnSync('npm', ['run', 'build', '-w', 'server'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`server build failed:\n${r.stdout}\n${r.stderr}`);
    ensureWebBuilt();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-quickstart-'));
    port = await freePort();
    // quickstart.sh's start command; only the data dir, a free port and loopback differ from its defaults.
    proc = spawn(process.execPath, [path.join(REPO_ROOT, 'server', 'bin', 'backroll.js'), 'start'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BACKROLL_DATA_DIR: dataDir, BACKROLL_HOST: '127.0.0.1', BACKROLL_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const end = Date.now() + 60_000;
    while (!/listening/.test(output)) {
      if (proc.exitCode !== null) throw new Error(`backroll start exited ${proc.exitCode}:\n${output}`);
      if (Date.now() > end) throw new Error(`backroll start did not come up:\n${output}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    b = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await b?.close();
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((res) => proc!.once('exit', res));
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the console URL (the root of the public URL) and the admin password', () => {
    const password = /password:\s+(\S+)/.exec(output)?.[1];
    expect(password, output).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(fs.readFileSync(path.join(dataDir, 'admin-password.txt'), 'utf8').trim()).toBe(password);
    // The console is served at the root of the public URL: some printed URL must be exactly that.
    // Only the banner written for people counts, not the JSON log lines (fastify's "Server listening at …").
    const banner = output.split('\n').filter((line) => !line.trimStart().startsWith('{')).join('\n');
    const urls = banner.match(/https?:\/\/[^\s)"]+/g) ?? [];
    const consoleUrl = urls.find((u) => new RegExp(`^http://(localhost|127\\.0\\.0\\.1):${port}/?$`).test(u));
    expect(consoleUrl, `no console URL among the printed ones:\n${banner}`).toBeDefined();
  });

  it('signing in at that URL with the printed password shows the getting-started checklist', async () => {
    const password = /password:\s+(\S+)/.exec(output)![1]!;
    const ctx = await b!.context();
    const page = await ctx.newPage();
    await page.goto(`http://localhost:${port}/`);
    await page.locator('#username').fill('admin');
    await page.locator('#password').fill(password);
    await page.locator('button.primary[type=submit]').click();
    const checklist = page.locator('[data-test=getting-started]');
    await checklist.waitFor({ timeout: 20_000 });
    for (const step of ['storage', 'policy', 'pool', 'host']) expect(await page.locator(`[data-test=step-${step}]`).getAttribute('data-done')).toBe('false');
    await ctx.close();
    expect(b!.errors).toEqual([]);
  }, 120_000);
});
