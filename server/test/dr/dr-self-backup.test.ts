/**
 * The daily self-backup into every storage, through a real server: status, a run now,
 * rotation, the file imports with the passphrase, a link planted at `.backroll` is
 * never followed, and with no passphrase file the feature says it is off and why.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDrFile } from '../../src/dr/dr.service.js';
import { startTestServer, type TestServer } from '../support/server.js';

const PASS = 'self-backup passphrase 1';
const dirs: string[] = [];
const tmp = (p: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('self-backup of Backroll into its storages', () => {
  let t: TestServer;
  let good: string;
  let linked: string;
  let elsewhere: string;

  beforeAll(async () => {
    const passFile = path.join(tmp('backroll-sb-pass-'), 'pass');
    fs.writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
    t = await startTestServer('sqlite', { BACKROLL_DR_PASSPHRASE_FILE: passFile, BACKROLL_DR_SELF_BACKUP_KEEP: '2' });
    good = tmp('backroll-sb-good-');
    linked = tmp('backroll-sb-linked-');
    elsewhere = tmp('backroll-sb-elsewhere-');
    for (const [name, p] of [['sb-good', good], ['sb-linked', linked]]) {
      expect((await t.api('POST', '/api/v2/storages', { body: { name, path: p } })).status).toBe(201);
    }
    // Someone with access to the storage planted a link where the self-backups go.
    fs.symlinkSync(elsewhere, path.join(linked, '.backroll'));
  });
  afterAll(async () => t?.close());

  it('reports each storage with no file yet', async () => {
    const res = await t.api('GET', '/api/v2/system/dr-self-backup', { token: t.viewerToken });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ enabled: true, reason: null, intervalHours: 24, keep: 2 });
    expect(res.body.storages.map((s: { storageName: string; last: unknown; count: number }) => [s.storageName, s.last, s.count]).sort()).toEqual([
      ['sb-good', null, 0],
      ['sb-linked', null, 0],
    ]);
  });

  it('writes into every storage now, keeps the newest 2, never through a planted link', async () => {
    expect((await t.api('POST', '/api/v2/system/dr-self-backup', { token: t.viewerToken })).status).toBe(403);
    for (let i = 0; i < 3; i++) {
      const res = await t.api('POST', '/api/v2/system/dr-self-backup');
      expect(res.status, res.text).toBe(200);
      await new Promise((r) => setTimeout(r, 5));
    }
    const files = fs.readdirSync(path.join(good, '.backroll')).sort();
    expect(files).toHaveLength(2);
    for (const f of files) {
      expect(f).toMatch(/^backroll-dr-\d{8}T\d{6}\.\d{3}Z\.bdr$/);
      expect(fs.statSync(path.join(good, '.backroll', f)).mode & 0o777).toBe(0o600);
    }
    expect(fs.readdirSync(elsewhere)).toEqual([]);

    const status = (await t.api('GET', '/api/v2/system/dr-self-backup')).body;
    const byName = Object.fromEntries(status.storages.map((s: { storageName: string }) => [s.storageName, s]));
    expect(byName['sb-good']).toMatchObject({ count: 2, error: null, last: { file: path.join(good, '.backroll', files[1]!) } });
    expect(Date.now() - Date.parse(byName['sb-good'].last.createdAt)).toBeLessThan(120_000);
    expect(byName['sb-linked']).toMatchObject({ count: 0, last: null });
    expect(byName['sb-linked'].error).toContain('is not a directory');

    // The file is a complete DR export: it opens with the passphrase and holds both storages.
    const payload = await readDrFile(fs.readFileSync(path.join(good, '.backroll', files[1]!)), PASS);
    expect(payload.tables.storages.map((s) => s.name).sort()).toEqual(['sb-good', 'sb-linked']);
    expect(Object.keys(payload.files)).toContain('secret.key');
  });

  it('is off, and says why, without a passphrase file', async () => {
    const off = await startTestServer('sqlite');
    try {
      const status = (await off.api('GET', '/api/v2/system/dr-self-backup')).body;
      expect(status).toMatchObject({ enabled: false, reason: 'BACKROLL_DR_PASSPHRASE_FILE is not set' });
      const run = await off.api('POST', '/api/v2/system/dr-self-backup');
      expect(run.status).toBe(409);
      expect(run.body.code).toBe('DR.SELF_BACKUP_OFF');
    } finally {
      await off.close();
    }
  });
});
