/**
 * The reindex on SQLite, PostgreSQL and MariaDB with a real borg repository: the uuid match
 * (case-insensitive, from backroll.json), insertion, idempotence, an absent VM recorded on a
 * named host, and a VM whose lock is held (a backup running) reported busy and untouched.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupModule, type BackupModule } from '../../src/backups/index.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { createReindex } from '../../src/repair/index.js';
import type { ReindexService } from '../../src/repair/reindex.service.js';
import { createTestDatabase, DIALECTS, unavailableReason, type TestDatabase } from '../support/databases.js';
import { describeWhenAvailable } from '../support/unavailable.js';

const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;
const E1 = 1_764_000_000;

function borg(args: string[], env: Record<string, string>, cwd?: string): void {
  const r = spawnSync('borg', args, { env: { ...process.env, LANG: 'C.UTF-8', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', ...env }, cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`borg ${args.join(' ')}: ${r.stderr}`);
}

for (const dialect of DIALECTS) {
  const reason = !HAVE_BORG ? 'borg is not installed' : await unavailableReason(dialect);
  describeWhenAvailable(`reindex on ${dialect}`, reason, () => {
    let tdb: TestDatabase;
    let db: Db;
    let tmp: string;
    let mod: BackupModule;
    let reindex: ReindexService;
    let vmId: string;
    let hostId: string;
    const uuid = randomUUID();

    beforeAll(async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateToLatest(db, dialect);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), `backroll-reindex-${dialect}-`));
      const dataDir = path.join(tmp, 'data');
      const storage = path.join(tmp, 'storage');
      fs.mkdirSync(dataDir, { mode: 0o700 });
      fs.mkdirSync(storage);
      const now = new Date().toISOString();
      const storageId = randomUUID();
      const policyId = randomUUID();
      const poolId = randomUUID();
      hostId = randomUUID();
      vmId = randomUUID();
      await db.insertInto('storages').values({ id: storageId, name: 's', path: storage, created_at: now, updated_at: now }).execute();
      await db
        .insertInto('policies')
        .values({ id: policyId, name: 'p', description: '', schedule: '0 3 * * *', timezone: 'UTC', retention_daily: 7, retention_weekly: 0, retention_monthly: 0, retention_yearly: 0, storage_id: storageId, hook_id: null, enabled: 1, quiesce: 'preferred', compression: 'lz4', encryption: 'none', created_at: now, updated_at: now })
        .execute();
      await db.insertInto('pools').values({ id: poolId, name: 'p', policy_id: policyId, connector_id: null, created_at: now, updated_at: now }).execute();
      await db
        .insertInto('hosts')
        .values({ id: hostId, name: 'h', address: '127.0.0.1', ssh_port: 22, username: 'u', pool_id: poolId, tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'connected', connection_error_code: null, connection_message: null, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
      // The inventory has the uuid in capitals; the repository's backroll.json in lower case.
      await db
        .insertInto('virtual_machines')
        .values({ id: vmId, host_id: hostId, uuid: uuid.toUpperCase(), name: 'renamed-since', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
        .execute();
      const env = { BORG_BASE_DIR: path.join(dataDir, 'borg') };
      const disk = path.join(tmp, 'disk.qcow2');
      fs.writeFileSync(disk, 'image');
      for (const name of ['web', 'gone-vm']) {
        const repo = path.join(storage, name);
        borg(['init', '--encryption=none', repo], env);
        borg(['create', `${repo}::vda_disk_${E1}`, disk], env);
      }
      const cfg = path.join(tmp, 'cfg');
      fs.mkdirSync(cfg);
      fs.writeFileSync(path.join(cfg, 'backroll.json'), JSON.stringify({ epoch: E1, vm: { uuid, name: 'web' }, disks: [{ target: 'vda', path: disk, format: 'qcow2', archive: `vda_disk_${E1}` }] }));
      borg(['create', `${path.join(storage, 'web')}::config_${E1}`, 'backroll.json'], env, cfg);
      mod = createBackupModule({ db, dataDir });
      reindex = createReindex(db, mod);
    }, 120_000);

    afterAll(async () => {
      await db?.destroy();
      await tdb?.drop();
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('a VM whose lock is held is reported busy and left alone', async () => {
      let release!: () => void;
      const holding = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const backup = mod.locks.withVmLock(vmId, 'task:a-running-backup', async () => {
        locked();
        await holding;
      });
      await isLocked;
      try {
        const r = await reindex.run({ repository: 'web' });
        expect(r.storages[0]!.repositories[0]).toMatchObject({ status: 'busy', code: 'VM.LOCKED', added: 0 });
        expect(r.totals.failed).toBe(1);
        expect(await db.selectFrom('restore_points').selectAll().execute()).toEqual([]);
      } finally {
        release();
        await backup;
      }
    });

    it('matches by uuid, indexes once, records an absent VM on the named host once', async () => {
      const first = await reindex.run({ attachToHost: 'h' });
      const reps = Object.fromEntries(first.storages[0]!.repositories.map((r) => [r.name, r]));
      expect(reps.web).toMatchObject({ status: 'indexed', added: 1, vm: { id: vmId, created: false } });
      expect(reps['gone-vm']).toMatchObject({ status: 'indexed', added: 1, vm: { name: 'gone-vm', present: false, created: true } });
      const rows = await db.selectFrom('restore_points').selectAll().orderBy('repository').execute();
      expect(rows.map((r) => [path.basename(r.repository), Number(r.epoch), JSON.parse(r.disks ?? '[]').length])).toEqual([
        ['gone-vm', E1, 0],
        ['web', E1, 1],
      ]);
      const second = await reindex.run({ attachToHost: hostId });
      expect(second.totals).toMatchObject({ added: 0, kept: 2, failed: 0 });
      expect(await db.selectFrom('virtual_machines').select('id').execute()).toHaveLength(2);
      expect(await db.selectFrom('restore_points').selectAll().orderBy('repository').execute()).toEqual(rows);
    });
  });
}
