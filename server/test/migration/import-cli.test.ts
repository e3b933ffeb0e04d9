/**
 * `backroll import backroll` end to end: a BackROLL database written from BackROLL's models
 * (MariaDB and SQLite), the real binary (dist/), a dry run that writes nothing, --apply, the
 * resources read back through the API of a Backroll server on the same database and data
 * dir, and a second run that finds everything already present.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { DatabaseDialect } from '../../src/config/config.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { startTestServer } from '../support/server.js';
import { createBackrollDatabase, SECRETS, type FixtureDialect } from './backroll-fixture.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
};

const backroll = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [BIN, 'import', 'backroll', ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 60_000 });

function expectNoSecret(text: string) {
  for (const s of Object.values(SECRETS)) expect(text).not.toContain(s);
  expect(text).not.toContain('sEcReTsLaCkToKeN42');
}

/** Backroll's tables with rows, read directly (the dry run must leave it as it was). */
async function targetRowCount(db: TestDatabase): Promise<number> {
  if (db.dialect === 'sqlite') {
    if (!fs.existsSync(db.config.url)) return 0;
    const s = new SqliteDatabase(db.config.url, { readonly: true });
    try {
      const tables = (s.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>).map((t) => t.name);
      return tables.length;
    } finally {
      s.close();
    }
  }
  const c = await mysql.createConnection({ uri: db.config.url });
  try {
    const [rows] = await c.query('show tables');
    return (rows as unknown[]).length;
  } finally {
    await c.end();
  }
}

const SCENARIOS: Array<[FixtureDialect, DatabaseDialect]> = [
  ['mysql', 'sqlite'],
  ['sqlite', 'mysql'],
];

describe('backroll import backroll', () => {
  it.each(SCENARIOS)('from BackROLL on %s into Backroll on %s: dry run, apply, API, re-run', async (sourceDialect, targetDialect) => {
    const storageDir = tmp('backroll-import-storage-');
    const dataDir = path.join(tmp('backroll-import-data-'), 'data');
    const fx = await createBackrollDatabase(sourceDialect, storageDir);
    cleanup.push(() => fx.drop());
    const target = await createTestDatabase(targetDialect);
    cleanup.push(() => target.drop());
    const env = {
      BACKROLL_DATA_DIR: dataDir,
      BACKROLL_DATABASE_URL: targetDialect === 'sqlite' ? `sqlite:${target.config.url}` : target.config.url,
      BACKROLL_LOG_LEVEL: 'silent',
    };
    const sourceBefore = await fx.snapshot();

    // Dry run: the report lists everything; nothing is written anywhere.
    const dry = backroll(['--database-url', fx.url, '--json'], env);
    expect(dry.stderr).toBe('');
    expect(dry.status).toBe(0);
    expectNoSecret(dry.stdout);
    const plan = JSON.parse(dry.stdout);
    expect(plan.mode).toBe('dry-run');
    expect(plan.mapped.map((m: { kind: string; name: string; status: string }) => `${m.kind}:${m.name}:${m.status}`)).toEqual([
      'storage:nfs-backup:would-create',
      'hook:slack-ops:would-create',
      'connector:cloudstack-zone1:would-create',
      'policy:nightly:would-create',
      'policy:friday-13th:would-create',
      'pool:rack-a:would-create',
      'pool:rack-b:would-create',
      'host:kvm1:would-create',
      'host:kvm2:would-create',
    ]);
    expect(plan.notMapped.map((n: { kind: string; name: string; field?: string }) => `${n.kind}:${n.name}:${n.field ?? ''}`)).toEqual([
      'policy:friday-13th:schedule',
      'host:kvm2:tags',
      'user:1 account(s):',
    ]);
    expect(plan.notMapped[0].reason).toContain('cannot be expressed exactly');
    expect(plan.operatorActions.map((a: { id: string }) => a.id)).toEqual(['authorize-ssh-key', 'connect-hosts', 'enable-policies', 'review-schedules', 'test-connectors', 'reindex']);
    expect(plan.operatorActions[0].targets).toEqual(['root@192.0.2.10 (host "kvm1", port 22)', 'root@kvm2.example.test (host "kvm2", port 22)']);
    expect(fs.existsSync(dataDir)).toBe(false);
    expect(await targetRowCount(target)).toBe(0);

    // The same as text, for a person.
    const text = backroll(['--database-url', fx.url], env);
    expect(text.status).toBe(0);
    expectNoSecret(text.stdout);
    expect(text.stdout).toContain('Dry run: nothing was written.');
    expect(text.stdout).toContain('policy "friday-13th": would create');
    expect(text.stdout).toContain("Authorise Backroll's SSH public keys on every imported host");

    // Apply.
    const applied = backroll(['--database-url', fx.url, '--apply', '--json'], env);
    expect(applied.stderr).toBe('');
    expect(applied.status).toBe(0);
    expectNoSecret(applied.stdout);
    const done = JSON.parse(applied.stdout);
    expect(done.mode).toBe('apply');
    expect(done.summary).toMatchObject({ created: 9, exists: 0, failed: 0, blocked: 0 });
    const hostIds = done.mapped.filter((m: { kind: string }) => m.kind === 'host').map((m: { name: string; id: string }) => `${m.name}: POST /api/v2/hosts/${m.id}/connect`);
    expect(done.operatorActions.find((a: { id: string }) => a.id === 'connect-hosts').targets).toEqual(hostIds);
    expect(await fx.snapshot()).toBe(sourceBefore);

    // A Backroll server on the same database and data dir sees everything.
    const srv = await startTestServer(targetDialect, {}, { database: target, dataDir });
    cleanup.push(() => srv.close());
    const list = async (p: string) => {
      const res = await srv.api('GET', `/api/v2/${p}`);
      expect(res.status).toBe(200);
      expectNoSecret(res.text);
      return res.body.items;
    };
    const [storages, hooks, connectors, policies, pools, hosts] = await Promise.all(['storages', 'hooks', 'connectors', 'policies', 'pools', 'hosts'].map(list));
    expect(storages).toEqual([expect.objectContaining({ name: 'nfs-backup', path: storageDir })]);
    expect(hooks).toEqual([expect.objectContaining({ name: 'slack-ops', kind: 'slack', urlHint: 'https://hooks.slack.com/…', events: ['backup.succeeded', 'backup.failed', 'restore.succeeded', 'restore.failed'] })]);
    expect(connectors).toEqual([expect.objectContaining({ name: 'cloudstack-zone1', endpointUrl: 'https://cloud.example.test/client/api', apiKeySet: true, secretKeySet: true, verifyTls: true })]);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const byName = (items: Array<{ name: string }>): Record<string, any> => Object.fromEntries(items.map((i) => [i.name, i]));
    const pol = byName(policies);
    expect(pol.nightly).toMatchObject({
      schedule: '30 1 * * *',
      timezone: 'Europe/Paris',
      retention: { daily: 7, weekly: 4, monthly: 6, yearly: 1 },
      storageId: storages[0].id,
      hookId: hooks[0].id,
      enabled: false,
      quiesce: 'required',
      encryption: 'none',
      description: 'every night',
    });
    expect(pol['friday-13th']).toMatchObject({ schedule: '0 3 13 * *', retention: { daily: 0, weekly: 0, monthly: 3, yearly: 0 }, hookId: null, enabled: false });
    const pl = byName(pools);
    expect(pl['rack-a']).toMatchObject({ policyId: pol.nightly.id, connectorId: connectors[0].id });
    expect(pl['rack-b']).toMatchObject({ policyId: pol['friday-13th'].id, connectorId: null });
    const hs = byName(hosts);
    expect(hs.kvm1).toMatchObject({ address: '192.0.2.10', sshPort: 22, username: 'root', poolId: pl['rack-a'].id, tags: ['production'], libvirtUri: 'qemu:///system' });
    expect(hs.kvm2).toMatchObject({ address: 'kvm2.example.test', username: 'root', poolId: pl['rack-b'].id, tags: ['lab', 'rack:b'] });
    // Secrets moved sealed with the server's key: it opens them, the database holds no clear text.
    expect(await srv.server.services.connectors.credentials(connectors[0].id)).toMatchObject({ apiKey: SECRETS.apiKey, secretKey: SECRETS.secretKey });
    expect((await srv.server.services.hooks.target(hooks[0].id)).url).toBe(SECRETS.slackUrl);
    const sealed = await srv.server.db.selectFrom('hooks').select('url_sealed').executeTakeFirstOrThrow();
    expect(sealed.url_sealed).not.toContain('hooks.slack.com');

    // Again, with the server running: everything is already there, nothing changes.
    const again = backroll(['--database-url', fx.url, '--apply', '--json'], env);
    expect(again.status).toBe(0);
    const rerun = JSON.parse(again.stdout);
    expect(rerun.summary).toMatchObject({ created: 0, exists: 9, failed: 0 });
    expect(rerun.mapped.every((m: { status: string; id: string }) => m.status === 'exists' && m.id)).toBe(true);
    expect((await list('policies')).length).toBe(2);
    expect((await list('hosts')).length).toBe(2);
    expect(await fx.snapshot()).toBe(sourceBefore);

    // Another data dir could not open the secrets the server holds: refused before writing.
    const wrongDir = backroll(['--database-url', fx.url, '--apply'], { ...env, BACKROLL_DATA_DIR: path.join(tmp('backroll-import-other-'), 'data') });
    expect(wrongDir.status).toBe(1);
    expect(wrongDir.stderr).toContain('IMPORT.DATA_DIR_MISMATCH');
    expect(wrongDir.stdout).toBe('');

    // Now that the server made its SSH keys, the report carries the exact command the API gives.
    const keys = await srv.api('GET', '/api/v2/ssh/public-keys');
    const withKeys = JSON.parse(backroll(['--database-url', fx.url, '--json'], env).stdout);
    expect(withKeys.operatorActions[0].command).toBe(keys.body.installCommand);
    // Eight runs of the real binary and a server start: well over the default on a loaded machine.
  }, 180_000);

  it('says what is wrong with the database URL or the source, and exits non-zero', () => {
    const env = { BACKROLL_DATA_DIR: path.join(tmp('backroll-import-bad-'), 'data') };
    const none = backroll([], env);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('IMPORT.SOURCE_URL_MISSING');
    const pg = backroll(['--database-url', 'postgres://u:pw@h/db'], env);
    expect(pg.status).toBe(2);
    expect(pg.stderr).toContain('unsupported database URL');
    expect(pg.stderr).not.toContain(':pw@');
    const missing = backroll(['--database-url', `sqlite:${env.BACKROLL_DATA_DIR}/nope.sqlite`], env);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('IMPORT.SOURCE_UNREACHABLE');
  }, 60_000);
});
