/** `backroll key export <vm>` through the real binary (dist/ is built by the test global setup). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/database.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-key-'));
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, BACKROLL_DATA_DIR: dataDir }, encoding: 'utf8', timeout: 30_000 });

describe('backroll key export', () => {
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('prints the passphrase of a VM repository on stdout, with a warning on stderr', async () => {
    expect(run(['migrate']).status).toBe(0);
    const db = openDatabase({ dialect: 'sqlite', url: path.join(dataDir, 'backroll.db') });
    const now = new Date().toISOString();
    const uuid = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    try {
      await db.insertInto('storages').values({ id: 's1', name: 's', path: '/backup', created_at: now, updated_at: now }).execute();
      await db.insertInto('policies').values({ id: 'p1', name: 'p', description: '', schedule: '0 3 * * *', timezone: 'UTC', retention_daily: 1, retention_weekly: 0, retention_monthly: 0, retention_yearly: 0, storage_id: 's1', hook_id: null, enabled: 1, quiesce: 'off', compression: 'lz4', encryption: 'repokey', created_at: now, updated_at: now }).execute();
      await db.insertInto('pools').values({ id: 'pl', name: 'pl', policy_id: 'p1', connector_id: null, created_at: now, updated_at: now }).execute();
      await db.insertInto('hosts').values({ id: 'h1', name: 'h', address: 'x', ssh_port: 22, username: 'root', pool_id: 'pl', tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'unknown', connection_error_code: null, connection_message: null, last_seen_at: null, created_at: now, updated_at: now }).execute();
      for (const [id, name, u] of [['v1', 'web-1', uuid], ['v2', 'plain', '4f2504e0-4f89-41d3-9a0c-0305e82c3302']] as const) {
        await db.insertInto('virtual_machines').values({ id, host_id: 'h1', uuid: u, name, state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now }).execute();
      }
    } finally {
      await db.destroy();
    }
    fs.mkdirSync(path.join(dataDir, 'borg-passphrases'), { mode: 0o700 });
    fs.writeFileSync(path.join(dataDir, 'borg-passphrases', uuid), 'correct-horse-battery\n', { mode: 0o600 });

    const ok = run(['key', 'export', 'web-1']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('correct-horse-battery\n');
    expect(ok.stderr).toMatch(/WARNING: .*store it somewhere safe/is);
    expect(run(['key', 'export', uuid]).stdout).toBe('correct-horse-battery\n');

    const none = run(['key', 'export', 'plain']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no repository passphrase/);
    expect(run(['key', 'export', 'nope']).stderr).toMatch(/no virtual machine/);
  });
});
