/**
 * Migration 0004 on every database (SQLite, PostgreSQL, MariaDB): existing restore points
 * survive the upgrade; repeated (vm, repository, epoch) rows are reduced to one (Backroll's
 * own, else the oldest); afterwards the database refuses a repeat but accepts the same
 * epoch of a VM in another repository.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import { afterEach, expect, it } from 'vitest';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../../test/support/databases.js';
import { describeWhenAvailable } from '../../../test/support/unavailable.js';
import { isUniqueViolation } from '../errors.js';
import { migrateToLatest, openDatabase, type Db } from '../database.js';
import type { DatabaseDialect } from '../../config/config.js';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_jobs.js';
import * as m0003 from './0003_backups.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));
const BEFORE: Record<string, Migration> = { '0001_initial': m0001, '0002_jobs': m0002, '0003_backups': m0003 };

async function migrateTo0003(db: Db, dialect: DatabaseDialect): Promise<void> {
  const schema = dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s : undefined;
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => BEFORE }, migrationTableSchema: schema }).migrateToLatest();
  if (error) throw error;
}

/** A database whose 0001 constraint went missing (restored from a dump without constraints): repeats can exist. */
async function dropOldConstraint(db: Db, dialect: DatabaseDialect): Promise<void> {
  if (dialect === 'postgres') await sql`alter table restore_points drop constraint restore_points_vm_epoch`.execute(db);
  else if (dialect === 'mysql') {
    await sql`create index rp_vm on restore_points (vm_id)`.execute(db);
    await sql`alter table restore_points drop index restore_points_vm_epoch`.execute(db);
  } else {
    const ddl = (await sql<{ sql: string }>`select sql from sqlite_master where name = 'restore_points'`.execute(db)).rows[0]!.sql;
    await sql.raw(ddl.replace('CREATE TABLE "restore_points"', 'CREATE TABLE "rp_copy"').replace(/, constraint "restore_points_vm_epoch" unique \("vm_id", "epoch"\)/, '')).execute(db);
    await sql`drop table restore_points`.execute(db);
    await sql`alter table rp_copy rename to restore_points`.execute(db);
  }
}

async function seed(db: Db): Promise<{ vm: string; storage: string }> {
  const t = '2026-01-01T00:00:00.000Z';
  const storage = randomUUID();
  const policy = randomUUID();
  const pool = randomUUID();
  const host = randomUUID();
  const vm = randomUUID();
  await db.insertInto('storages').values({ id: storage, name: 's', path: '/srv', created_at: t, updated_at: t }).execute();
  await db
    .insertInto('policies')
    .values({ id: policy, name: 'p', description: '', schedule: '0 3 * * *', timezone: 'UTC', retention_daily: 7, retention_weekly: 0, retention_monthly: 0, retention_yearly: 0, storage_id: storage, hook_id: null, enabled: 1, quiesce: 'preferred', compression: 'lz4', encryption: 'none', created_at: t, updated_at: t })
    .execute();
  await db.insertInto('pools').values({ id: pool, name: 'pool', policy_id: policy, connector_id: null, created_at: t, updated_at: t }).execute();
  await sql`insert into hosts (id, name, address, ssh_port, username, pool_id, tags, libvirt_uri, connection_state, created_at, updated_at)
    values (${host}, ${'h'}, ${'192.0.2.1'}, ${22}, ${'root'}, ${pool}, ${'[]'}, ${'qemu:///system'}, ${'unknown'}, ${t}, ${t})`.execute(db);
  await db
    .insertInto('virtual_machines')
    .values({ id: vm, host_id: host, uuid: randomUUID(), name: 'vm', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: t, created_at: t, updated_at: t })
    .execute();
  return { vm, storage };
}

function row(vm: string, storage: string, repository: string, epoch: number, source: string, createdAt: string, id = randomUUID()) {
  return { id, vm_id: vm, storage_id: storage, repository, epoch, archives: `["a_${epoch}"]`, created_at: createdAt, source, started_by: null, disks: '[]', task_id: null, original_size: null, compressed_size: null, deduplicated_size: null, duration_ms: null };
}

const refusesRepeat = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'the insert of a repeated (vm, repository, epoch) must fail').not.toBeNull();
  expect(isUniqueViolation(err), String(err)).toBe(true);
};

for (const dialect of DIALECTS) {
  describeWhenAvailable(`migration 0004 (restore point identity) on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase | undefined;
    let db: Db | undefined;
    afterEach(async () => {
      await db?.destroy();
      await tdb?.drop();
      db = undefined;
      tdb = undefined;
    });
    const open = async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateTo0003(db, dialect);
      return db;
    };

    it('keeps existing restore points; then refuses a repeat and allows the epoch in another repository', async () => {
      const d = await open();
      const { vm, storage } = await seed(d);
      await d.insertInto('restore_points').values([row(vm, storage, '/srv/a/vm', 100, 'backroll', '2026-01-01T00:00:01Z'), row(vm, storage, '/srv/a/vm', 200, 'borg', '2026-01-01T00:00:02Z')]).execute();
      // Before: 0001's (vm, epoch) forbids the same epoch in another repository.
      await refusesRepeat(d.insertInto('restore_points').values(row(vm, storage, '/srv/b/vm', 100, 'backroll', '2026-01-01T00:00:03Z')).execute());

      expect((await migrateToLatest(d, dialect)).applied).toContain('0004_restore_point_identity');
      const rows = await d.selectFrom('restore_points').select(['repository', 'epoch', 'source']).orderBy('epoch').execute();
      expect(rows.map((r) => [r.repository, Number(r.epoch), r.source])).toEqual([
        ['/srv/a/vm', 100, 'backroll'],
        ['/srv/a/vm', 200, 'borg'],
      ]);
      await refusesRepeat(d.insertInto('restore_points').values(row(vm, storage, '/srv/a/vm', 100, 'borg', '2026-01-01T00:00:04Z')).execute());
      await d.insertInto('restore_points').values(row(vm, storage, '/srv/b/vm', 100, 'backroll', '2026-01-01T00:00:05Z')).execute();
      expect(await d.selectFrom('restore_points').select('id').where('epoch', '=', 100).execute()).toHaveLength(2);
    });

    it('reduces repeated rows to one (Backroll-made first, else the oldest) before adding the constraint', async () => {
      const d = await open();
      const { vm, storage } = await seed(d);
      await dropOldConstraint(d, dialect);
      const keep = randomUUID();
      const oldestBorg = randomUUID();
      await d
        .insertInto('restore_points')
        .values([
          row(vm, storage, '/srv/a/vm', 100, 'borg', '2026-01-01T00:00:01Z'),
          row(vm, storage, '/srv/a/vm', 100, 'backroll', '2026-01-01T00:00:05Z', keep),
          row(vm, storage, '/srv/a/vm', 100, 'borg', '2026-01-01T00:00:02Z'),
          row(vm, storage, '/srv/a/vm', 300, 'borg', '2026-01-01T00:00:09Z'),
          row(vm, storage, '/srv/a/vm', 300, 'borg', '2026-01-01T00:00:08Z', oldestBorg),
          row(vm, storage, '/srv/b/vm', 100, 'borg', '2026-01-01T00:00:03Z'),
        ])
        .execute();
      await migrateToLatest(d, dialect);
      const rows = await d.selectFrom('restore_points').select(['id', 'repository', 'epoch']).orderBy('repository').orderBy('epoch').execute();
      expect(rows.map((r) => [r.repository, Number(r.epoch)])).toEqual([
        ['/srv/a/vm', 100],
        ['/srv/a/vm', 300],
        ['/srv/b/vm', 100],
      ]);
      expect(rows[0]!.id).toBe(keep);
      expect(rows[1]!.id).toBe(oldestBorg);
      await refusesRepeat(d.insertInto('restore_points').values(row(vm, storage, '/srv/b/vm', 100, 'backroll', '2026-01-01T00:00:04Z')).execute());
    });
  });
}
