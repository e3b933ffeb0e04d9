/**
 * Disaster recovery of Backroll itself, end to end with real servers, real databases and
 * the real CLI: export through the API from an installation on SQLite, import with
 * `backroll dr import` into fresh installations on PostgreSQL and MariaDB (and SQLite),
 * then check that a server started there has the same resources and can still open the
 * secrets sealed by the first one. Wrong passphrase, modified file and an occupied
 * target write nothing.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseDialect } from '../../src/config/config.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { createTestDatabase, DIALECTS, type TestDatabase } from '../support/databases.js';
import { startTestServer, type TestServer } from '../support/server.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const PASS = 'a long enough DR passphrase';
const dirs: string[] = [];
const tmp = (p: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};

function dbUrl(db: TestDatabase): string {
  return db.dialect === 'sqlite' ? `sqlite:${db.config.url}` : db.config.url;
}

function cli(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, BACKROLL_LOG_LEVEL: 'silent', ...env }, encoding: 'utf8', timeout: 60_000 });
}

/** Every file under a dir with its content, to prove nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const abs = path.join(dir, rel);
    if (!fs.existsSync(abs)) return;
    if (fs.statSync(abs).isDirectory()) for (const n of fs.readdirSync(abs)) walk(path.join(rel, n));
    else out[rel] = fs.readFileSync(abs).toString('base64');
  };
  walk('');
  return out;
}

describe('disaster recovery: dr export / dr import', () => {
  let source: TestServer;
  let exported: Buffer;
  const connectorSecret = `cs-secret-${randomUUID()}`;
  const hookUrl = `https://hooks.example/${randomUUID()}`;
  const passphraseFile = path.join(tmp('backroll-dr-pass-'), 'pass');
  let ids: { storage: string; policy: string; pool: string; host: string; vm: string; rp: string };

  beforeAll(async () => {
    fs.writeFileSync(passphraseFile, `${PASS}\n`, { mode: 0o600 });
    source = await startTestServer('sqlite');
    const storagePath = tmp('backroll-dr-storage-');
    const post = async (p: string, body: unknown) => {
      const r = await source.api('POST', p, { body });
      expect(r.status, `${p}: ${r.text}`).toBe(201);
      return r.body.id as string;
    };
    const storage = await post('/api/v2/storages', { name: 'dr-storage', path: storagePath });
    const hook = await post('/api/v2/hooks', { name: 'dr-hook', kind: 'webhook', url: hookUrl, events: ['backup.failed'] });
    const policy = await post('/api/v2/policies', { name: 'dr-policy', schedule: '0 2 * * *', storageId: storage, hookId: hook, retention: { daily: 7, weekly: 4, monthly: 0, yearly: 0 } });
    const connector = await post('/api/v2/connectors', { name: 'dr-cs', endpointUrl: 'https://cloud.example/client/api', apiKey: 'cs-api-key-0123', secretKey: connectorSecret });
    const pool = await post('/api/v2/pools', { name: 'dr-pool', policyId: policy, connectorId: connector });
    const host = await post('/api/v2/hosts', { name: 'dr-host', address: '127.0.0.1', username: 'kvm', poolId: pool });
    // Inventory and the restore-point index come from hosts and repositories: rows as the engine writes them.
    const now = new Date().toISOString();
    const vm = randomUUID();
    const rp = randomUUID();
    await source.server.db
      .insertInto('virtual_machines')
      .values({ id: vm, host_id: host, uuid: randomUUID(), name: 'dr-vm', state: 'running', vcpus: 1, memory_bytes: 64 * 2 ** 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    await source.server.db
      .insertInto('restore_points')
      .values({ id: rp, vm_id: vm, storage_id: storage, repository: path.join(storagePath, 'dr-vm'), epoch: 1_764_000_000, archives: '["vda_disk_1764000000"]', original_size: 1234, compressed_size: 1000, deduplicated_size: 900, duration_ms: 4200, task_id: null, created_at: now, started_by: 'client:test', disks: '[]', source: 'backroll' })
      .execute();
    fs.mkdirSync(path.join(source.dataDir, 'borg-passphrases'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(source.dataDir, 'borg-passphrases', 'aaaa-bbbb'), 'repo-passphrase\n', { mode: 0o600 });
    ids = { storage, policy, pool, host, vm, rp };
  });

  afterAll(async () => {
    await source?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('exports through the API for admins only, with a passphrase of at least 12 characters', async () => {
    expect((await source.api('POST', '/api/v2/system/dr-export', { body: { passphrase: PASS }, token: source.viewerToken })).status).toBe(403);
    const weak = await source.api('POST', '/api/v2/system/dr-export', { body: { passphrase: 'short' } });
    expect(weak.status).toBe(400);
    expect(weak.headers.get('content-type')).toContain('application/problem+json');
    const res = await fetch(`${source.url}/api/v2/system/dr-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${source.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ passphrase: PASS }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="backroll-dr-.*\.bdr"$/);
    exported = Buffer.from(await res.arrayBuffer());
    expect(exported.subarray(0, 14).toString()).toBe('BACKROLL-DR 1\n');
    for (const secret of [connectorSecret, 'repo-passphrase', fs.readFileSync(path.join(source.dataDir, 'secret.key')).toString('base64')]) {
      expect(exported.includes(Buffer.from(secret))).toBe(false);
    }
  });

  it('exports with the CLI too, never overwriting a file', () => {
    const out = path.join(tmp('backroll-dr-out-'), 'export.bdr');
    const env = { BACKROLL_DATA_DIR: source.dataDir, BACKROLL_DATABASE_URL: dbUrl(source.db) };
    const missing = cli(['dr', 'export', '--out', out], env);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('DR.PASSPHRASE_MISSING');
    const ok = cli(['dr', 'export', '--out', out, '--passphrase-file', passphraseFile], env);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/1 storages, 1 hooks, 1 policies, 1 connectors, 1 pools, 1 hosts, 1 virtual_machines, 1 restore_points; \d+ key files/);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(cli(['dr', 'export', '--out', out, '--passphrase-file', passphraseFile], env).status).toBe(1);
  });

  const targets: DatabaseDialect[] = DIALECTS;
  it.each(targets)('imports into a fresh install on %s: same resources, secrets and keys still open', async (dialect) => {
    const db = await createTestDatabase(dialect);
    const dataDir = path.join(tmp('backroll-dr-target-'), 'data');
    const env = { BACKROLL_DATA_DIR: dataDir, BACKROLL_DATABASE_URL: dbUrl(db), BACKROLL_DR_PASSPHRASE: PASS };
    const file = path.join(tmp('backroll-dr-in-'), 'in.bdr');
    fs.writeFileSync(file, exported);
    try {
      // Wrong passphrase and a modified file: refused before the data dir or the database is touched.
      const wrong = cli(['dr', 'import', file], { ...env, BACKROLL_DR_PASSPHRASE: `${PASS}x` });
      expect(wrong.status).toBe(1);
      expect(wrong.stderr).toContain('DR.DECRYPT_FAILED');
      const tampered = Buffer.from(exported);
      tampered[tampered.length - 40] = tampered[tampered.length - 40]! ^ 0xff;
      fs.writeFileSync(`${file}.bad`, tampered);
      const bad = cli(['dr', 'import', `${file}.bad`], env);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('DR.DECRYPT_FAILED');
      expect(fs.existsSync(dataDir)).toBe(false);

      const ok = cli(['dr', 'import', file], env);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('1 restore_points');
      for (const rel of ['secret.key', 'borg-passphrases/aaaa-bbbb', 'idp/jwks.json', 'idp/clients.json']) {
        expect(fs.readFileSync(path.join(dataDir, rel)).equals(fs.readFileSync(path.join(source.dataDir, rel))), rel).toBe(true);
      }
      expect(fs.statSync(path.join(dataDir, 'secret.key')).mode & 0o077).toBe(0);

      // A second import into the now occupied installation: refused, nothing changed.
      const before = snapshot(dataDir);
      const again = cli(['dr', 'import', file], env);
      expect(again.status).toBe(1);
      expect(again.stderr).toContain('DR.TARGET_NOT_EMPTY');
      expect(snapshot(dataDir)).toEqual(before);

      const target = await startTestServer(dialect, {}, { database: db, dataDir });
      try {
        const get = async (p: string) => (await target.api('GET', p)).body;
        expect((await get(`/api/v2/storages/${ids.storage}`)).name).toBe('dr-storage');
        expect((await get(`/api/v2/policies/${ids.policy}`)).retention.daily).toBe(7);
        expect((await get(`/api/v2/pools/${ids.pool}`)).name).toBe('dr-pool');
        expect((await get(`/api/v2/hosts/${ids.host}`)).name).toBe('dr-host');
        const rps = await target.server.db.selectFrom('restore_points').selectAll().execute();
        expect(rps.map((r) => [r.id, r.vm_id, Number(r.epoch), Number(r.original_size)])).toEqual([[ids.rp, ids.vm, 1_764_000_000, 1234]]);
        // Secrets sealed by the first installation open with the imported secret.key.
        const sealed = await target.server.db.selectFrom('connectors').select(['secret_key_sealed']).executeTakeFirstOrThrow();
        expect(SecretBox.openInDir(dataDir).decrypt(sealed.secret_key_sealed)).toBe(connectorSecret);
        const hook = await target.server.db.selectFrom('hooks').select(['url_sealed']).executeTakeFirstOrThrow();
        expect(target.server.secretBox.decrypt(hook.url_sealed)).toBe(hookUrl);
      } finally {
        await target.close();
      }
    } finally {
      await db.drop().catch(() => undefined);
    }
  });
});
