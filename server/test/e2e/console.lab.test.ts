/**
 * The web console end to end in a real browser (Debian's chromium through playwright-core)
 * against a real Backroll (built web/dist served at `/`, the bundled OpenID provider, SQLite)
 * on the KVM lab: sign in on the provider's login page, set up storage → policy → pool →
 * host (authorise Backroll's key, connect, see the pinned fingerprint), see the lab VMs,
 * back one up watching progress and log, cancel a backup, a viewer sees no write action,
 * a changed host key shows the banner; no console errors anywhere. Writes the screenshots
 * of every screen (light and dark, 1280×800; dashboard and task at 390 wide) to docs/screenshots/.
 *
 * Runs serially with the other lab tests: `flock /tmp/backroll-lab.lock npx vitest run --project lab test/e2e`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lab, labHost, labSkipReason } from '../../src/adapters/ssh/test-lab.js';
import { hashPassword, readAccounts } from '../../src/idp/accounts.js';
import { idpPaths, writeFileAtomic } from '../../src/idp/files.js';
import { authorize, unauthorize } from '../support/lab-keys.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { browserSkipReason, ensureWebBuilt, launchBrowser, screenshot, settle, WEB_DIST, type E2eBrowser } from './browser.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;
const reason = labSkipReason || browserSkipReason() || (borgMissing ? ' (SKIPPED: borg is not installed)' : '');
const THEMES = ['light', 'dark'] as const;
const FINISHED = /^(succeeded|failed|canceled|interrupted|partial)$/;
const RESTORED = `vm-stopped-e2e-${process.pid}`;

describe.skipIf(!!reason)(`web console end to end in chromium on the KVM lab${reason}`, () => {
  const l = lab!;
  const h1 = labHost(l, 'kvmhost1');
  let t: TestServer;
  let dataDir: string;
  let storageDir: string;
  let b: E2eBrowser;
  let ctx: BrowserContext;
  let page: Page;
  let adminPassword: string;
  let keyLines: string[] = [];
  const viewerPassword = 'viewer-e2e-password-1';
  const ids: { host?: string; policy?: string; vm?: string; backupTask?: string } = {};

  /** Signs in on the bundled provider's login page; the console lands on `landing`. */
  async function signIn(p: Page, username: string, password: string): Promise<void> {
    await p.goto(`${t.url}/`);
    await p.waitForURL(/\/oidc\//);
    await p.locator('#username').fill(username);
    await p.locator('#password').fill(password);
    await p.locator('button.primary[type=submit]').click();
    await p.waitForURL((u) => u.origin === t.url && u.pathname === '/', { timeout: 20_000 });
    await p.locator('[data-test=nav-dashboard]').waitFor();
  }

  async function chooseOption(p: Page, selectTest: string, label: string): Promise<void> {
    await p.locator(`[data-test=${selectTest}]`).click();
    await p.locator('.n-base-select-option', { hasText: label }).first().click();
  }

  async function taskState(p: Page): Promise<string> {
    const tag = p.locator('.head-row [data-test^=state-]').first();
    return ((await tag.getAttribute('data-test')) ?? '').replace(/^state-/, '');
  }

  async function waitTaskApi(id: string, timeoutMs = 240_000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const r = await t.api('GET', `/api/v2/tasks/${id}`);
      if (FINISHED.test(r.body.state)) return r.body;
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error(`task ${id} did not end`);
  }

  /** Takes the restored VM off the lab host again: domain and its disk files. */
  function removeRestored(): void {
    const virsh = (...args: string[]) => spawnSync('runuser', ['-u', h1.user, '--', 'virsh', '-c', h1.libvirtUri, ...args], { encoding: 'utf8' });
    if (virsh('domstate', '--domain', RESTORED).status !== 0) return;
    const disks = virsh('domblklist', '--details', '--domain', RESTORED)
      .stdout.split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[0] === 'file' && f[1] === 'disk' && f[3]?.startsWith('/'))
      .map((f) => f[3]!);
    virsh('destroy', '--domain', RESTORED);
    virsh('undefine', '--domain', RESTORED);
    for (const d of disks) fs.rmSync(d, { force: true });
  }

  beforeAll(async () => {
    ensureWebBuilt();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-e2e-data-'));
    storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-e2e-storage-'));
    t = await startTestServer('sqlite', { BACKROLL_WEB_DIR: WEB_DIST }, { dataDir });
    adminPassword = fs.readFileSync(idpPaths(dataDir).adminPassword, 'utf8').trim();
    // A viewer account in the bundled provider's account store (what an operator adds for read-only users).
    const accounts = readAccounts(dataDir);
    const now = new Date().toISOString();
    accounts.push({ username: 'viewer', role: 'viewer', passwordHash: hashPassword(viewerPassword), createdAt: now, updatedAt: now });
    writeFileAtomic(idpPaths(dataDir).accounts, JSON.stringify({ version: 1, accounts }, null, 2));
    b = await launchBrowser();
    ctx = await b.context();
    page = await ctx.newPage();
  }, 180_000);

  afterAll(async () => {
    // Nothing left on the lab: the backup task ended (or is canceled), Backroll's key goes again.
    removeRestored();
    if (keyLines.length) unauthorize([h1.home, labHost(l, 'kvmhost2').home], keyLines);
    await b?.close();
    await t?.close();
    for (const d of [dataDir, storageDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('signs in through the bundled provider and shows the getting-started checklist', async () => {
    await signIn(page, 'admin', adminPassword);
    const checklist = page.locator('[data-test=getting-started]');
    await checklist.waitFor();
    for (const step of ['storage', 'policy', 'pool', 'host']) {
      await expect.poll(() => page.locator(`[data-test=step-${step}]`).getAttribute('data-done')).toBe('false');
    }
    expect(b.errors).toEqual([]);
  });

  it('the top bar names the signed-in user, not the web client', async () => {
    await expect.poll(() => page.locator('[data-test=user-menu]').getAttribute('aria-label')).toBe('Signed in as admin');
  });

  it('creates a storage, a policy and a pool through their forms', async () => {
    await page.locator('[data-test=step-storage-link]').click();
    await page.waitForURL(/\/storages/);
    // The checklist's link opens the form itself (/storages?new=1).
    const form = page.locator('[data-test=storage-form]');
    await form.waitFor({ timeout: 5_000 }).catch(async () => page.locator('[data-test=storage-add]').click());
    await page.locator('[data-test=storage-name]').fill('lab-backups');
    await page.locator('[data-test=storage-path]').fill(storageDir);
    await page.locator('[data-test=storage-save]').click();
    await page.locator('[data-test=storage-row][data-name=lab-backups]').waitFor();
    await expect.poll(() => page.locator('[data-test=storage-row][data-name=lab-backups] [data-test=storage-path-cell]').textContent()).toBe(storageDir);

    await page.goto(`${t.url}/policies/new`);
    await page.locator('[data-test=policy-name]').fill('nightly');
    await chooseOption(page, 'policy-storage', 'lab-backups');
    await page.locator('[data-test=policy-keep-daily]').fill('3');
    await page.locator('[data-test=policy-save]').click();
    await page.waitForURL((u) => u.pathname === '/policies');
    await page.locator('[data-test=policy-row]', { hasText: 'nightly' }).waitFor();
    const pol = await t.api('GET', '/api/v2/policies');
    const nightly = pol.body.items.find((p: { name: string }) => p.name === 'nightly');
    expect(nightly).toMatchObject({ retention: { daily: 3 }, storageId: expect.any(String) });
    ids.policy = nightly.id;

    await page.goto(`${t.url}/pools`);
    await page.locator('[data-test=pool-add]').click();
    await page.locator('[data-test=pool-name]').fill('lab');
    await chooseOption(page, 'pool-policy', 'nightly');
    await page.locator('[data-test=pool-save]').click();
    await page.locator('[data-test=pool-row]', { hasText: 'lab' }).waitFor();
    expect(b.errors).toEqual([]);
  });

  it('adds the lab host: authorise with the shown command, connect, see the pinned fingerprint', async () => {
    await page.goto(`${t.url}/hosts`);
    await page.locator('[data-test=host-add]').click();
    await page.locator('[data-test=host-address]').fill(l.sshHost);
    await page.locator('[data-test=host-username]').fill(h1.user);
    await page.locator('[data-test=host-port]').fill(String(l.sshPort));
    await page.locator('[data-test=host-name]').fill(h1.name);
    await chooseOption(page, 'host-pool', 'lab');
    await page.getByText('Advanced: libvirt URI, tags').click();
    await page.locator('[data-test=host-libvirt]').fill(h1.libvirtUri);
    await page.locator('[data-test=host-wizard-next]').click();

    // The command shown is the one that authorises Backroll's own key(s).
    const command = page.locator('[data-test=install-command]');
    await command.waitFor();
    const keys = await t.api('GET', '/api/v2/ssh/public-keys');
    expect(keys.status, keys.text).toBe(200);
    keyLines = keys.body.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine);
    expect(keyLines.length).toBeGreaterThan(0);
    const shown = (await command.textContent()) ?? '';
    for (const line of keyLines) expect(shown).toContain(line.split(' ')[1]);
    // What the operator does on the host: the lab's own script appends the key lines.
    authorize(keyLines);

    await page.locator('[data-test=host-connect]').click();
    const fp = page.locator('[data-test=host-pinned-fingerprint]');
    await fp.waitFor({ timeout: 30_000 });
    const fingerprint = spawnSync('ssh-keygen', ['-lf', l.hostKeyPath], { encoding: 'utf8' }).stdout.split(' ')[1];
    expect(fingerprint).toMatch(/^SHA256:/);
    expect((await fp.textContent())?.trim()).toBe(fingerprint);
    await screenshot(page, 'host-wizard-connected-light');
    await page.locator('[data-test=host-wizard-done]').click();
    const row = page.locator(`[data-test=host-row][data-name=${h1.name}]`);
    await expect.poll(async () => (await row.locator('[data-test=host-fingerprint]').textContent())?.trim()).toBe(fingerprint);
    const hosts = await t.api('GET', '/api/v2/hosts');
    ids.host = hosts.body.items.find((x: { name: string }) => x.name === h1.name).id;
    expect(b.errors).toEqual([]);
  }, 120_000);

  it('lists the lab VMs (names shown literally, even a hostile one)', async () => {
    await page.goto(`${t.url}/virtual-machines`);
    await settle(page);
    if ((await page.locator('[data-test=vm-link]').count()) === 0) {
      await page.locator('[data-test=refresh-inventory]').click();
      await page.getByText('Inventory refreshed').waitFor({ timeout: 60_000 });
      await page.reload();
    }
    const names = h1.vms.map((v) => v.name);
    for (const name of names) {
      await page.locator('[data-test=vm-link]').getByText(name, { exact: true }).waitFor({ timeout: 60_000 });
    }
    expect(fs.existsSync(path.join(h1.home, l.canaryFile ?? 'PWNED'))).toBe(false);
    expect(b.errors).toEqual([]);
  }, 120_000);

  it('backs up vm-stopped from the VM table and the task page shows progress and the live log moving', async () => {
    await page.goto(`${t.url}/virtual-machines?search=vm-stopped`);
    const row = page.locator('[data-test=vms-table] tbody tr', { has: page.locator('[data-test=vm-link]', { hasText: /^vm-stopped$/ }) });
    await row.waitFor();
    await row.locator('.n-checkbox').click();
    await page.locator('[data-test=bulk-backup]').click();
    await page.locator('[data-test=toast-task-link]').first().click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    ids.backupTask = page.url().split('/').pop()!;

    // Sample the page while the backup runs: percent and log must change before it ends.
    const percents = new Set<string>();
    const logCounts = new Set<number>();
    const end = Date.now() + 240_000;
    let state = '';
    while (Date.now() < end) {
      state = await taskState(page);
      percents.add(((await page.locator('[data-test=progress-percent]').first().textContent().catch(() => '')) ?? '').trim());
      logCounts.add(await page.locator('[data-test=log-line]').count());
      if (FINISHED.test(state)) break;
      await page.waitForTimeout(150);
    }
    expect(state).toBe('succeeded');
    expect([...percents].filter((p) => p !== '').length, `percent values seen: ${[...percents].join(', ')}`).toBeGreaterThan(1);
    expect(logCounts.size, `log line counts seen: ${[...logCounts].join(', ')}`).toBeGreaterThan(1);
    expect(Math.max(...logCounts)).toBeGreaterThan(0);
    const task = await t.api('GET', `/api/v2/tasks/${ids.backupTask}`);
    expect(task.body).toMatchObject({ kind: 'vm.backup', state: 'succeeded' });
    ids.vm = task.body.target.id;
    expect(b.errors).toEqual([]);
  }, 300_000);

  it('the backup records the signed-in user as who started it, not the web client', async () => {
    const task = await t.api('GET', `/api/v2/tasks/${ids.backupTask}`);
    expect(task.body.startedBy).toBe('user:admin');
  });

  it('restores vm-stopped as a new VM through the wizard (the new VM is removed afterwards)', async () => {
    await page.goto(`${t.url}/virtual-machines/${ids.vm}`);
    await page.locator('.n-tabs-tab', { hasText: 'Restore points' }).click();
    await page.locator('[data-test=rp-restore]').first().click();
    const wizard = page.locator('[data-test=restore-wizard]');
    await wizard.waitFor();
    await wizard.locator('[data-test=mode-new-vm]').click();
    for (const theme of THEMES) {
      await page.emulateMedia({ colorScheme: theme });
      await screenshot(page, `restore-wizard-${theme}`);
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await wizard.locator('[data-test=restore-next]').click(); // disks
    await wizard.locator('[data-test=restore-next]').click(); // target
    await wizard.locator('[data-test=restore-new-name]').fill(RESTORED);
    await wizard.locator('[data-test=restore-next]').click(); // review with the pre-flight checks
    await wizard.locator('[data-test=restore-checks]').waitFor({ timeout: 30_000 });
    const submit = wizard.locator('[data-test=restore-submit]');
    await expect.poll(() => submit.isEnabled(), { timeout: 30_000 }).toBe(true);
    await submit.click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    const id = page.url().split('/').pop()!;
    await expect.poll(() => taskState(page), { timeout: 240_000, interval: 500 }).toMatch(FINISHED);
    const task = await waitTaskApi(id);
    expect(task, JSON.stringify(task.error)).toMatchObject({ kind: 'vm.restore', state: 'succeeded' });
    const info = spawnSync('runuser', ['-u', h1.user, '--', 'virsh', '-c', h1.libvirtUri, 'domstate', '--domain', RESTORED], { encoding: 'utf8' });
    expect(info.status, info.stderr).toBe(0);
    removeRestored();
    expect(b.errors).toEqual([]);
  }, 300_000);

  it('cancels a running backup from its task page', async () => {
    await page.goto(`${t.url}/virtual-machines?search=vm-twodisks`);
    const row = page.locator('[data-test=vms-table] tbody tr', { has: page.locator('[data-test=vm-link]', { hasText: /^vm-twodisks$/ }) });
    await row.waitFor();
    await row.locator('.n-checkbox').click();
    await page.locator('[data-test=bulk-backup]').click();
    await page.locator('[data-test=toast-task-link]').first().click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    const id = page.url().split('/').pop()!;
    await page.locator('[data-test=task-cancel]').click();
    await expect.poll(() => taskState(page), { timeout: 240_000, interval: 500 }).toBe('canceled');
    const task = await waitTaskApi(id);
    expect(task.state).toBe('canceled');
    // Nothing lost: the VM runs on its own disks again (no overlay left behind).
    const dom = spawnSync('runuser', ['-u', h1.user, '--', 'virsh', '-c', h1.libvirtUri, 'domblklist', 'vm-twodisks'], { encoding: 'utf8' });
    expect(dom.stdout).toContain('vm-twodisks-vda.qcow2');
    expect(dom.stdout).toContain('vm-twodisks-vdb.qcow2');
    expect(b.errors).toEqual([]);
  }, 300_000);

  it('a changed host key shows the red banner with both fingerprints, and re-trusting reconnects', async () => {
    const good = (await t.api('GET', `/api/v2/hosts/${ids.host}`)).body.hostKeyFingerprint as string;
    // The host presents another key than the pinned one: pin a different (valid) fingerprint.
    const other = spawnSync('ssh-keygen', ['-lf', `${l.clientKeyPath}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1]!;
    expect(other).not.toBe(good);
    await t.server.db.updateTable('hosts').set({ host_key_fingerprint: other }).where('id', '=', ids.host!).execute();
    await page.goto(`${t.url}/hosts`);
    b.allow.push(`409 POST ${t.url}/api/v2/hosts/`);
    try {
      await page.locator(`[data-test=host-connect-${h1.name}]`).click();
      const banner = page.locator('[data-test=host-key-changed-banner]');
      await banner.waitFor({ timeout: 30_000 });
      await expect.poll(async () => (await banner.locator('[data-test=pinned-fingerprint]').textContent())?.trim()).toBe(other);
      await expect.poll(async () => (await banner.locator('[data-test=presented-fingerprint]').textContent())?.trim()).toBe(good);
      for (const theme of THEMES) {
        await page.emulateMedia({ colorScheme: theme });
        await screenshot(page, `host-key-changed-${theme}`);
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await banner.locator('[data-test=retrust-host-key]').click();
      const dialog = page.locator('[data-test=retrust-dialog]');
      await expect.poll(async () => (await dialog.locator('[data-test=retrust-dialog-fingerprint]').textContent())?.trim()).toBe(good);
      await dialog.locator('[data-test=retrust-confirm-checkbox]').click();
      await dialog.locator('[data-test=retrust-confirm]').click();
      await banner.waitFor({ state: 'detached', timeout: 30_000 });
    } finally {
      b.allow.pop();
    }
    const host = await t.api('GET', `/api/v2/hosts/${ids.host}`);
    expect(host.body).toMatchObject({ hostKeyFingerprint: good, connection: { state: 'connected' } });
    expect(b.errors).toEqual([]);
  }, 120_000);

  it('a viewer signs in and sees every write action disabled', async () => {
    const vctx = await b.context();
    try {
      const vp = await vctx.newPage();
      await signIn(vp, 'viewer', viewerPassword);
      const writes: Array<[string, string]> = [
        ['/storages', 'storage-add'],
        ['/policies', 'policy-add'],
        ['/pools', 'pool-add'],
        ['/hosts', 'host-add'],
        ['/virtual-machines', 'bulk-backup'],
        ['/virtual-machines', 'refresh-inventory'],
      ];
      for (const [url, test] of writes) {
        await vp.goto(`${t.url}${url}`);
        const button = vp.locator(`[data-test=${test}]`);
        await button.waitFor();
        expect(await button.isDisabled(), `${test} on ${url}`).toBe(true);
        expect(await vp.locator('[data-test=admin-only-disabled]', { has: button }).count(), `${test} wrapped as admin-only`).toBe(1);
      }
      // Row actions too: no enabled edit/delete/connect for a viewer.
      await vp.goto(`${t.url}/hosts`);
      await vp.locator(`[data-test=host-row][data-name=${h1.name}]`).waitFor();
      expect(await vp.locator(`[data-test=host-delete-${h1.name}]`).isDisabled()).toBe(true);
      await vp.goto(`${t.url}/pools`);
      await vp.locator('[data-test=pool-row]').first().waitFor();
      expect(await vp.locator('[data-test=pool-delete-lab]').isDisabled()).toBe(true);
      expect(await vp.locator('[data-test=pool-run-lab]').isDisabled()).toBe(true);
      await vp.goto(`${t.url}/storages`);
      await vp.locator('[data-test=storage-row]').first().waitFor();
      expect(await vp.locator('[data-test=storage-delete-lab-backups]').isDisabled()).toBe(true);
    } finally {
      await vctx.close();
    }
    expect(b.errors).toEqual([]);
  }, 120_000);

  it('screenshots every screen in light and dark (and the dashboard and a task at 390 px)', async () => {
    const screens: Array<[string, string]> = [
      ['dashboard', '/'],
      ['vms', '/virtual-machines'],
      ['vm-detail', `/virtual-machines/${ids.vm}`],
      ['tasks', '/tasks'],
      ['task-detail', `/tasks/${ids.backupTask}`],
      ['policies', '/policies'],
      ['policy-editor', `/policies/${ids.policy}`],
      ['pools', '/pools'],
      ['hosts', '/hosts'],
      ['storages', '/storages'],
      ['hooks', '/hooks'],
      ['connectors', '/connectors'],
      ['settings', '/settings'],
    ];
    for (const theme of THEMES) {
      await page.emulateMedia({ colorScheme: theme });
      for (const [name, url] of screens) {
        await page.goto(`${t.url}${url}`);
        await page.locator('[data-test=nav-dashboard]').waitFor();
        await screenshot(page, `${name}-${theme}`);
      }
    }
    // The sign-in screens: the console's own (after signing out) and the provider's login page.
    const sctx = await b.context();
    try {
      const sp = await sctx.newPage();
      for (const theme of THEMES) {
        await sp.emulateMedia({ colorScheme: theme });
        await sp.goto(`${t.url}/signin`);
        await sp.locator('[data-test=signin]').waitFor();
        await screenshot(sp, `signin-${theme}`);
      }
      await sp.emulateMedia({ colorScheme: 'light' });
      await sp.locator('[data-test=signin]').click();
      await sp.locator('#username').waitFor();
      await screenshot(sp, 'signin-provider-light');
    } finally {
      await sctx.close();
    }
    // Phone width: the dashboard and a task are readable at 390 px.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflows: string[] = [];
    for (const theme of THEMES) {
      await page.emulateMedia({ colorScheme: theme });
      for (const [name, url] of [['dashboard', '/'], ['task-detail', `/tasks/${ids.backupTask}`]] as const) {
        await page.goto(`${t.url}${url}`);
        await screenshot(page, `${name}-${theme}-390`);
        const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
        if (overflow > 0) overflows.push(`${name} (${theme}) scrolls sideways by ${overflow}px`);
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(overflows, 'readable at 390 px without sideways scrolling').toEqual([]);
    expect(b.errors).toEqual([]);
  }, 240_000);
});
