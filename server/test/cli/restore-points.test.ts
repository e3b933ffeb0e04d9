/**
 * `backroll vm restore-points <vm>`: the REAL binary (bin/backroll.js, built by the global
 * setup) against a real server on SQLite, whose index holds an incremental, a full and an
 * old restore point (issue 11): the READ column says how each one was read.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestorePointRepository, type RestorePointRecord } from '../../src/backups/restore-point.repository.js';
import { startTestServer, type TestServer } from '../support/server.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

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

describe('backroll vm restore-points', () => {
  let t: TestServer;
  const vmId = randomUUID();
  const vmName = 'vm-cli-read';
  let storageDir = '';

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-cli-rp-'));
    const storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'cli', path: storageDir } })).body.id as string;
    const policy = await t.api('POST', '/api/v2/policies', { body: { name: 'cli', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId } });
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'cli', policyId: policy.body.id } });
    expect(pool.status, pool.text).toBe(201);
    const db = t.server.db;
    const now = new Date().toISOString();
    const hostId = randomUUID();
    await db
      .insertInto('hosts')
      .values({ id: hostId, name: 'cli-host', address: '127.0.0.1', ssh_port: 22, username: 'root', pool_id: pool.body.id, tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'connected', connection_error_code: null, connection_message: null, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    await db
      .insertInto('virtual_machines')
      .values({ id: vmId, host_id: hostId, uuid: randomUUID(), name: vmName, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    const rps = new RestorePointRepository(db);
    const disk = { target: 'vda', path: '/vms/vda.qcow2', format: 'qcow2', archive: 'vda', virtualSize: GiB, backingChain: [], originalSize: null, compressedSize: null, deduplicatedSize: null };
    const rp = (epoch: number, extra: Partial<RestorePointRecord>): RestorePointRecord => ({
      id: randomUUID(),
      vmId,
      storageId,
      repository: path.join(storageDir, vmName),
      epoch,
      archives: [`vda_disk_${epoch}`],
      disks: [{ ...disk, archive: `vda_disk_${epoch}` }],
      originalSize: GiB,
      compressedSize: null,
      deduplicatedSize: 3 * MiB,
      durationMs: 1000,
      taskId: null,
      startedBy: null,
      source: 'backroll',
      createdAt: new Date(epoch * 1000).toISOString(),
      ...extra,
    });
    await rps.insert(rp(1_700_000_300, { readMode: 'incremental', bytesToRead: 12 * MiB, bytesRead: 12 * MiB, fullReason: null, checkpointName: 'backroll-1700000300', checkpointXml: '<domaincheckpoint/>', chainFullEpoch: 1_700_000_200 }));
    await rps.insert(rp(1_700_000_200, { readMode: 'full', bytesToRead: GiB, bytesRead: 700 * MiB, fullReason: 'no earlier restore point with a checkpoint', checkpointName: 'backroll-1700000200', checkpointXml: '<domaincheckpoint/>', chainFullEpoch: 1_700_000_200 }));
    await rps.insert(rp(1_700_000_100, { source: 'borg' }));
  });
  afterAll(async () => {
    await t?.close();
    if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
  });

  it('prints a READ column: incremental / full with the reason / — for an old restore point', async () => {
    const r = await cli(['vm', 'restore-points', vmName], { BACKROLL_URL: t.url, BACKROLL_TOKEN: t.viewerToken });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+EPOCH\s+CREATED\s+SIZE\s+DEDUPLICATED\s+READ$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(1))).toEqual([
      ['1700000300', '2023-11-14T22:18:20.000Z', '1.0 GiB', '3.0 MiB', 'incremental: 12.0 MiB of 1.0 GiB read'],
      ['1700000200', '2023-11-14T22:16:40.000Z', '1.0 GiB', '3.0 MiB', 'full: 700.0 MiB of 1.0 GiB read (no earlier restore point with a checkpoint)'],
      ['1700000100', '2023-11-14T22:15:00.000Z', '1.0 GiB', '3.0 MiB', '—'],
    ]);
  });
});
