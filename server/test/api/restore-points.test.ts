/**
 * The restore point index on every database (SQLite, PostgreSQL, MariaDB), through a real
 * server and its API: listing newest first with byte counts beyond 32 bits, one restore point,
 * and the reconcile against a real borg repository (added from borg, archives updated, rows
 * whose archives are gone removed), under the VM lock.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RestorePointRepository, type RestorePointRecord } from '../../src/backups/restore-point.repository.js';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { describeUnavailable, describeWhenAvailable } from '../support/unavailable.js';

const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;
const reasons: Record<string, string | null> = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));
const TiB = 1024 ** 4;

/** borg as a person would run it, with its own base dir (cache, security) under the test's directory. */
function borg(baseDir: string, args: string[], cwd?: string): void {
  const r = spawnSync('borg', args, { cwd, encoding: 'utf8', env: { ...process.env, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_BASE_DIR: baseDir, LANG: 'C.UTF-8' } });
  if (r.status !== 0) throw new Error(`borg ${args[0]}: ${r.stderr}`);
}

if (!HAVE_BORG) describeUnavailable('restore point index', 'borg is not installed (apt-get install borgbackup)');
else
  for (const dialect of DIALECTS) {
    describeWhenAvailable(`restore point index on ${dialect}`, reasons[dialect] ?? null, () => {
      let t: TestServer;
      let root: string;
      let vmId: string;
      let storageId: string;
      let repo: string;
      let rps: RestorePointRepository;
      const vmName = `vm-rp ${dialect}`;
      const base: Omit<RestorePointRecord, 'id' | 'epoch' | 'archives' | 'createdAt'> = {
        vmId: '',
        storageId: '',
        repository: '',
        disks: [],
        originalSize: null,
        compressedSize: null,
        deduplicatedSize: null,
        durationMs: null,
        taskId: null,
        startedBy: null,
        source: 'backroll',
      };
      const row = (epoch: number, archives: string[], extra: Partial<RestorePointRecord> = {}): RestorePointRecord => ({
        ...base,
        vmId,
        storageId,
        repository: repo,
        id: randomUUID(),
        epoch,
        archives,
        createdAt: new Date(epoch * 1000).toISOString(),
        ...extra,
      });

      beforeAll(async () => {
        t = await startTestServer(dialect);
        root = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-rp-'));
        const storage = path.join(root, 'storage');
        fs.mkdirSync(storage);
        storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'rp', path: storage } })).body.id;
        const policy = await t.api('POST', '/api/v2/policies', { body: { name: 'rp', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId } });
        expect(policy.status, policy.text).toBe(201);
        const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'rp', policyId: policy.body.id } });
        expect(pool.status, pool.text).toBe(201);
        const now = new Date().toISOString();
        const hostId = randomUUID();
        const db = t.server.db;
        await db
          .insertInto('hosts')
          .values({ id: hostId, name: 'rp-host', address: '127.0.0.1', ssh_port: 22, username: 'root', pool_id: pool.body.id, tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'connected', connection_error_code: null, connection_message: null, last_seen_at: now, created_at: now, updated_at: now })
          .execute();
        vmId = randomUUID();
        await db
          .insertInto('virtual_machines')
          .values({ id: vmId, host_id: hostId, uuid: randomUUID(), name: vmName, state: 'running', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
          .execute();
        repo = path.join(storage, vmName);
        rps = new RestorePointRepository(db);
      });
      afterAll(async () => {
        await t?.close();
        if (root) fs.rmSync(root, { recursive: true, force: true });
      });

      it('lists restore points newest first, with sizes beyond 32 bits, disks and source as stored; one by id; 404 for another', async () => {
        const big = row(1_700_000_100, ['config_1700000100', 'vda_disk_1700000100'], {
          originalSize: 5 * TiB + 7,
          compressedSize: 3 * TiB + 1,
          deduplicatedSize: 2 ** 33 + 3,
          durationMs: 123_456,
          startedBy: 'client:abc',
          disks: [{ target: 'vda', path: '/vms/disk.qcow2', format: 'qcow2', archive: 'vda_disk_1700000100', virtualSize: 2 * TiB, backingChain: [], originalSize: 5 * TiB + 7, compressedSize: null, deduplicatedSize: null }],
        });
        await rps.insert(row(1_700_000_000, ['config_1700000000', 'vda_disk_1700000000']));
        await rps.insert(big);
        await rps.insert(row(1_600_000_000, ['vda_disk_1600000000'], { source: 'borg' }));
        const list = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
        expect(list.status, list.text).toBe(200);
        expect(list.body.items.map((r: RestorePointRecord) => r.epoch)).toEqual([1_700_000_100, 1_700_000_000, 1_600_000_000]);
        expect(list.body.items[0]).toMatchObject({
          id: big.id,
          originalSize: 5 * TiB + 7,
          compressedSize: 3 * TiB + 1,
          deduplicatedSize: 2 ** 33 + 3,
          durationMs: 123_456,
          startedBy: 'client:abc',
          source: 'backroll',
          archives: big.archives,
          disks: big.disks,
        });
        expect(list.body.items[2].source).toBe('borg');
        const one = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points/${big.id}`);
        expect(one.status).toBe(200);
        expect(one.body).toEqual(list.body.items[0]);
        const missing = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points/${randomUUID()}`);
        expect(missing.status).toBe(404);
        expect(missing.body.code).toBe('RESTORE_POINT.NOT_FOUND');
        expect(await rps.maxEpoch(vmId)).toBe(1_700_000_100);
        await rps.deleteByIds((await rps.listByVm(vmId)).map((r) => r.id));
        expect((await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`)).body.items).toEqual([]);
      });

      it('shows how each restore point was read (incremental, full with its reason, or unknown), never the checkpoint; documented in OpenAPI', async () => {
        const GiB = 1024 ** 3;
        const disk = (target: string, virtualSize: number | null) => ({ target, path: `/vms/${target}.qcow2`, format: 'qcow2', archive: `${target}_disk_1700000500`, virtualSize, backingChain: [], originalSize: null, compressedSize: null, deduplicatedSize: null });
        const xml = "<domaincheckpoint><name>backroll-1700000500</name><domain type='kvm'><name>secret-domain-xml</name></domain></domaincheckpoint>";
        const incremental = row(1_700_000_500, ['vda_disk_1700000500', 'vdb_disk_1700000500'], {
          disks: [disk('vda', 1 * GiB), disk('vdb', 4 * TiB)],
          readMode: 'incremental',
          bytesToRead: 12 * 2 ** 20,
          bytesRead: 12 * 2 ** 20 + 5,
          fullReason: null,
          checkpointName: 'backroll-1700000500',
          checkpointXml: xml,
          chainFullEpoch: 1_700_000_400,
        });
        const full = row(1_700_000_400, ['vda_disk_1700000400'], {
          disks: [disk('vda', GiB), disk('vdb', null)],
          readMode: 'full',
          bytesToRead: GiB,
          bytesRead: GiB - 1,
          fullReason: 'no earlier restore point with a checkpoint',
          checkpointName: 'backroll-1700000400',
          checkpointXml: xml,
          chainFullEpoch: 1_700_000_400,
        });
        const old = row(1_700_000_300, ['vda_disk_1700000300'], { disks: [disk('vda', GiB)] });
        for (const r of [incremental, full, old]) await rps.insert(r);

        const list = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
        expect(list.status, list.text).toBe(200);
        expect(list.body.items.map((r: { read: unknown }) => r.read)).toEqual([
          { mode: 'incremental', bytesToRead: 12 * 2 ** 20, bytesRead: 12 * 2 ** 20 + 5, fullReason: null, diskSize: GiB + 4 * TiB },
          { mode: 'full', bytesToRead: GiB, bytesRead: GiB - 1, fullReason: 'no earlier restore point with a checkpoint', diskSize: null },
          { mode: null, bytesToRead: null, bytesRead: null, fullReason: null, diskSize: GiB },
        ]);
        const one = await t.api('GET', `/api/v2/virtual-machines/${vmId}/restore-points/${incremental.id}`);
        expect(one.status, one.text).toBe(200);
        expect(one.body).toEqual(list.body.items[0]);
        for (const text of [list.text, one.text]) {
          expect(text).not.toContain('secret-domain-xml');
          expect(text).not.toContain('backroll-1700000500');
          expect(text).not.toMatch(/checkpoint(Name|Xml)|chainFullEpoch|readMode/);
        }
        // The checkpoint is still in the index (the next backup's base), only not shown.
        expect((await rps.find(vmId, incremental.id))?.checkpointXml).toBe(xml);

        if (dialect === 'sqlite') {
          const doc = (await t.api('GET', '/api/openapi.json', { token: null })).body;
          const schema = doc.components.schemas.RestorePoint;
          expect(schema.required).toContain('read');
          expect(Object.keys(schema.properties.read.properties).sort()).toEqual(['bytesRead', 'bytesToRead', 'diskSize', 'fullReason', 'mode']);
          expect(Object.keys(schema.properties)).not.toEqual(expect.arrayContaining(['checkpointXml']));
        }
        await rps.deleteByIds([incremental.id, full.id, old.id]);
      });

      it('reconciles the index with borg list: adds what borg has, updates archives, removes what is gone; a second run changes nothing', async () => {
        const src = path.join(root, 'src');
        fs.mkdirSync(src, { recursive: true });
        fs.writeFileSync(path.join(src, 'disk.qcow2'), 'not really a disk');
        const base = path.join(root, 'borg-base');
        borg(base, ['init', '--encryption=none', repo]);
        // Epoch 100: indexed with only its disk archive (config missing from the row); 200: only in borg; 300: only in the index.
        for (const name of ['vda_disk_1700000100', 'config_1700000100', 'vda_disk_1700000200']) borg(base, ['create', `${repo}::${name}`, 'disk.qcow2'], src);
        const kept = row(1_700_000_100, ['vda_disk_1700000100']);
        const gone = row(1_700_000_300, ['vda_disk_1700000300']);
        await rps.insert(kept);
        await rps.insert(gone);

        const res = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`);
        expect(res.status, res.text).toBe(200);
        expect(res.body).toMatchObject({ added: 1, removed: 1, updated: 1 });
        expect(res.body.items.map((r: RestorePointRecord) => [r.epoch, r.source, [...r.archives].sort()])).toEqual([
          [1_700_000_200, 'borg', ['vda_disk_1700000200']],
          [1_700_000_100, 'backroll', ['config_1700000100', 'vda_disk_1700000100']],
        ]);
        expect(res.body.items[1].id).toBe(kept.id);
        expect(res.body.items[0].createdAt).toBe(new Date(1_700_000_200 * 1000).toISOString());
        expect(res.body.items[0].read).toEqual({ mode: null, bytesToRead: null, bytesRead: null, fullReason: null, diskSize: null });

        const again = await t.api('POST', `/api/v2/virtual-machines/${vmId}/restore-points/reconcile`);
        expect(again.body).toMatchObject({ added: 0, removed: 0, updated: 0 });
        expect(again.body.items).toEqual(res.body.items);
        // The VM lock was taken and released.
        expect(await t.server.db.selectFrom('vm_locks').selectAll().where('vm_id', '=', vmId).execute()).toEqual([]);
      });
    });
  }
