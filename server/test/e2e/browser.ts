/**
 * The e2e tests' browser: playwright-core driving Debian's /usr/bin/chromium (never a
 * downloaded browser), with every page's console errors and uncaught exceptions collected
 * so a test can fail on them, and a screenshot helper writing docs/screenshots/.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.BACKROLL_E2E_CHROMIUM ?? '/usr/bin/chromium';
export const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');
export const WEB_DIST = path.join(REPO_ROOT, 'web', 'dist');
export const SCREENSHOTS = path.join(REPO_ROOT, 'docs', 'screenshots');

/** Why the e2e tests cannot run here, or '' when they can. */
export function browserSkipReason(): string {
  if (!fs.existsSync(CHROMIUM)) return ` (SKIPPED: no chromium at ${CHROMIUM}; apt-get install chromium)`;
  return '';
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds the web console when web/dist is missing or older than web/src, so the run tests the current UI. */
export function ensureWebBuilt(): void {
  const index = path.join(WEB_DIST, 'index.html');
  const src = path.join(REPO_ROOT, 'web', 'src');
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= newestMtime(src)) return;
  const r = spawnSync('npm', ['run', 'build', '-w', 'web'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`npm run build -w web failed:\n${r.stdout}\n${r.stderr}`);
}

export interface E2eBrowser {
  browser: Browser;
  /** A fresh context (own cookies/storage) at 1280×800; its pages report console errors into `errors`. */
  context(opts?: { width?: number; height?: number }): Promise<BrowserContext>;
  /** Console errors and page errors seen so far, as `<page url>: <text>`. */
  errors: string[];
  /** Console messages that are expected right now (e.g. the 409 of a refused connect); matched by substring. */
  allow: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<E2eBrowser> {
  // launch() always starts chromium on a fresh temporary profile (user-data-dir) of its own.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without the background-networking flags chromium dials out and gets refused on a closed network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const errors: string[] = [];
  const allow: string[] = [];
  const watch = (page: Page) => {
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = msg.text();
      // Chromium's own line for a failed request names no URL: the response handler below records it.
      if (text.startsWith('Failed to load resource:')) return;
      if (allow.some((a) => text.includes(a))) return;
      errors.push(`${page.url()}: ${text}`);
    });
    page.on('response', (res) => {
      if (res.status() < 400) return;
      const line = `${res.status()} ${res.request().method()} ${res.url()}`;
      if (allow.some((a) => line.includes(a))) return;
      errors.push(`${page.url()}: failed request ${line}`);
    });
    page.on('pageerror', (err) => errors.push(`${page.url()}: uncaught ${err.name}: ${err.message}`));
  };
  return {
    browser,
    errors,
    allow,
    async context(opts = {}) {
      const ctx = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: opts.height ?? 800 } });
      ctx.on('page', watch);
      return ctx;
    },
    async close() {
      await browser.close();
    },
  };
}

/** Waits until the page shows no loading skeletons/spinners, then a moment for transitions. */
export async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('load');
  await page
    .locator('[data-test=list-loading], .n-skeleton, .n-base-loading')
    .first()
    .waitFor({ state: 'hidden', timeout: 15_000 })
    .catch(() => undefined);
  await page.waitForTimeout(400);
}

/** Writes docs/screenshots/<name>.png of the current page. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await settle(page);
  await page.screenshot({ path: file, fullPage: false, animations: 'disabled' });
  return file;
}
