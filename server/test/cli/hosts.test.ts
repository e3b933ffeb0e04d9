/**
 * `backroll host list` and `backroll host set <host> --disk-access <auto|mount|ssh>`: the REAL
 * binary (bin/backroll.js, built by the global setup) against a real server on SQLite.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');

/** Asynchronously: the server answers from this very process. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), LANG: 'C.UTF-8', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The rows of a `table()` output, split on the column gaps. */
const rows = (stdout: string) => stdout.trimEnd().split('\n').map((l) => l.split(/\s{2,}/));

describe('backroll host', () => {
  let t: TestServer;
  let storageDir = '';
  const ids: Record<string, string> = {};
  let admin: Record<string, string> = {};

  beforeAll(async () => {
    // no periodic inventory: nothing connects to the (unreachable) hosts behind the test's back
    t = await startTestServer('sqlite', { BACKROLL_INVENTORY_INTERVAL_SECONDS: '0' });
    admin = { BACKROLL_URL: t.url, BACKROLL_TOKEN: t.adminToken };
    storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-cli-host-'));
    const storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'cli', path: storageDir } })).body.id as string;
    const policy = await t.api('POST', '/api/v2/policies', { body: { name: 'cli', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId } });
    const poolIds: Record<string, string> = {};
    for (const name of ['prod', 'lab']) {
      const pool = await t.api('POST', '/api/v2/pools', { body: { name, policyId: policy.body.id } });
      expect(pool.status, pool.text).toBe(201);
      poolIds[name] = pool.body.id;
    }
    const hosts = [
      { name: 'kvm1', address: '192.0.2.10', username: 'backroll', poolId: poolIds.prod },
      { name: 'kvm2', address: '192.0.2.20', sshPort: 2222, poolId: poolIds.lab, diskAccess: 'ssh' },
      // two hosts behind one address (different ports): the address alone is ambiguous
      { name: 'nat-a', address: '192.0.2.30', sshPort: 2201, poolId: poolIds.lab, diskAccess: 'mount' },
      { name: 'nat-b', address: '192.0.2.30', sshPort: 2202, poolId: poolIds.lab },
    ];
    for (const h of hosts) {
      const r = await t.api('POST', '/api/v2/hosts', { body: h });
      expect(r.status, r.text).toBe(201);
      ids[h.name] = r.body.id;
    }
    await t.server.db.updateTable('hosts').set({ connection_state: 'failed', connection_error_code: 'HOST.KEY_CHANGED' }).where('id', '=', ids['kvm2']!).execute();
  });
  afterAll(async () => {
    await t?.close();
    if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
  });

  const diskAccessOf = async (name: string) => (await t.api('GET', `/api/v2/hosts/${ids[name]}`)).body.diskAccess as string;

  it('host list: name, address, pool, connection state and disk access of every host (a viewer may list)', async () => {
    const r = await cli(['host', 'list'], { BACKROLL_URL: t.url, BACKROLL_TOKEN: t.viewerToken });
    expect(r.code, r.stderr).toBe(0);
    const [header, ...body] = rows(r.stdout);
    expect(header).toEqual(['ID', 'NAME', 'ADDRESS', 'POOL', 'STATE', 'DISK ACCESS']);
    expect(body).toEqual([
      [ids.kvm1, 'kvm1', 'backroll@192.0.2.10', 'prod', 'unknown', 'auto'],
      [ids.kvm2, 'kvm2', 'root@192.0.2.20:2222', 'lab', 'failed (HOST.KEY_CHANGED)', 'ssh'],
      [ids['nat-a'], 'nat-a', 'root@192.0.2.30:2201', 'lab', 'unknown', 'mount'],
      [ids['nat-b'], 'nat-b', 'root@192.0.2.30:2202', 'lab', 'unknown', 'auto'],
    ]);

    const prod = await cli(['host', 'list', '--pool', 'prod'], admin);
    expect(prod.code, prod.stderr).toBe(0);
    expect(rows(prod.stdout).slice(1).map((c) => c[1])).toEqual(['kvm1']);
    const none = await cli(['host', 'list', '--pool', 'nope'], admin);
    expect(none.code).toBe(5);
    expect(none.stderr).toContain('no pool "nope"');
  });

  it('host set <name> --disk-access ssh, then back by id: the server stores it and host list shows it', async () => {
    const r = await cli(['host', 'set', 'kvm1', '--disk-access', 'ssh'], admin);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('host kvm1: disk access auto -> ssh');
    expect(await diskAccessOf('kvm1')).toBe('ssh');
    const listed = rows((await cli(['host', 'list'], admin)).stdout).find((c) => c[1] === 'kvm1');
    expect(listed?.[5]).toBe('ssh');

    const byId = await cli(['host', 'set', ids.kvm1!, '--disk-access', 'mount'], admin);
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout.trim()).toBe('host kvm1: disk access ssh -> mount');
    expect(await diskAccessOf('kvm1')).toBe('mount');
    // the other settings are left alone
    const h = (await t.api('GET', `/api/v2/hosts/${ids.kvm1}`)).body;
    expect([h.name, h.address, h.sshPort, h.username]).toEqual(['kvm1', '192.0.2.10', 22, 'backroll']);
  });

  it('an address names its host when only one host has it; two hosts behind it are ambiguous', async () => {
    const one = await cli(['host', 'set', '192.0.2.20', '--disk-access', 'auto'], admin);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.trim()).toBe('host kvm2: disk access ssh -> auto');
    expect(await diskAccessOf('kvm2')).toBe('auto');

    const two = await cli(['host', 'set', '192.0.2.30', '--disk-access', 'ssh'], admin);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('several hosts have the address "192.0.2.30"');
    expect(two.stderr).toContain(ids['nat-a']);
    expect(two.stderr).toContain(ids['nat-b']);
    expect(await diskAccessOf('nat-a')).toBe('mount');
    expect(await diskAccessOf('nat-b')).toBe('auto');
  });

  it('an unknown host is not found (exit 5)', async () => {
    const r = await cli(['host', 'set', 'kvm9', '--disk-access', 'ssh'], admin);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('no host named "kvm9"');
    const missingId = await cli(['host', 'set', '00000000-0000-4000-8000-000000000000', '--disk-access', 'ssh'], admin);
    expect(missingId.code).toBe(5);
  });

  it('a bad or missing --disk-access is a usage error (exit 2) before any request', async () => {
    // nothing listens on port 1: a request would end in "cannot reach Backroll" (exit 6)
    const offline = { BACKROLL_URL: 'http://127.0.0.1:1', BACKROLL_TOKEN: 'unused' };
    const bad = await cli(['host', 'set', 'kvm1', '--disk-access', 'nfs'], offline);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('backroll: --disk-access must be one of auto, mount, ssh (got "nfs")');
    const upper = await cli(['host', 'set', 'kvm1', '--disk-access', 'SSH'], offline);
    expect(upper.code).toBe(2);
    const missing = await cli(['host', 'set', 'kvm1'], offline);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('backroll: nothing to change: give --disk-access <auto|mount|ssh>');
    // the same offline settings do reach the network once the value is valid
    expect((await cli(['host', 'set', 'kvm1', '--disk-access', 'ssh'], offline)).code).toBe(6);
  });

  it('a viewer may not change a host (exit 4) and nothing changes', async () => {
    const before = await diskAccessOf('nat-b');
    const r = await cli(['host', 'set', 'nat-b', '--disk-access', 'ssh'], { BACKROLL_URL: t.url, BACKROLL_TOKEN: t.viewerToken });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^backroll: \S+: /);
    expect(await diskAccessOf('nat-b')).toBe(before);
  });
});
