/**
 * Migration 0007 on every database: existing tasks stay, the new indexes exist, and the two
 * new tables take rows with byte counts above 2^32 (bigint) — then `down` removes them all.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import { afterEach, expect, it } from 'vitest';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../../test/support/databases.js';
import { describeWhenAvailable } from '../../../test/support/unavailable.js';
import type { DatabaseDialect } from '../../config/config.js';
import { openDatabase, type Db } from '../database.js';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_jobs.js';
import * as m0003 from './0003_backups.js';
import * as m0004 from './0004_restore_point_identity.js';
import * as m0006 from './0006_connector_tls.js';
import * as m0007 from './0007_console.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));
const BEFORE: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_jobs': m0002,
  '0003_backups': m0003,
  '0004_restore_point_identity': m0004,
  '0006_connector_tls': m0006,
};

async function schemaOf(db: Db, dialect: DatabaseDialect): Promise<string | undefined> {
  return dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s : undefined;
}

async function indexNames(db: Db, dialect: DatabaseDialect): Promise<string[]> {
  if (dialect === 'sqlite') return (await sql<{ name: string }>`select name from sqlite_master where type = 'index'`.execute(db)).rows.map((r) => r.name);
  if (dialect === 'postgres') return (await sql<{ name: string }>`select indexname as name from pg_indexes where schemaname = current_schema()`.execute(db)).rows.map((r) => r.name);
  return (await sql<{ name: string }>`select index_name as name from information_schema.statistics where table_schema = database()`.execute(db)).rows.map((r) => r.name);
}

const NEW_INDEXES = ['tasks_kind', 'tasks_started_by', 'tasks_target_kind', 'tasks_created_kind', 'tasks_updated', 'hosts_updated', 'virtual_machines_updated', 'restore_points_storage', 'restore_points_vm_sizes', 'storage_usage_samples_storage', 'hook_deliveries_hook'];

for (const dialect of DIALECTS) {
  describeWhenAvailable(`migration 0007 (console indexes, usage samples, hook deliveries) on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase | undefined;
    let db: Db | undefined;
    afterEach(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('adds the indexes and tables, keeps tasks, and goes back down', async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      const migrationTableSchema = await schemaOf(db, dialect);
      const before = new Migrator({ db, provider: { getMigrations: async () => BEFORE }, migrationTableSchema });
      const first = await before.migrateToLatest();
      if (first.error) throw first.error;
      const taskId = randomUUID();
      const t = '2026-01-01T00:00:00.000Z';
      await sql`insert into tasks (id, kind, state, started_by, attempts, created_at, updated_at) values (${taskId}, ${'vm.backup'}, ${'succeeded'}, ${'user:admin'}, ${1}, ${t}, ${t})`.execute(db);

      // Up to 0007 only (later migrations have their own tests; migrating down below must start from 0007).
      const upTo0007 = new Migrator({ db, provider: { getMigrations: async () => ({ ...BEFORE, '0007_console': m0007 }) }, migrationTableSchema });
      const up = await upTo0007.migrateToLatest();
      if (up.error) throw up.error;
      expect(up.results?.map((r) => r.migrationName)).toEqual(['0007_console']);
      expect(await indexNames(db, dialect)).toEqual(expect.arrayContaining(NEW_INDEXES));
      const task = await db.selectFrom('tasks').select(['kind', 'started_by']).where('kind', '=', 'vm.backup').where('started_by', '=', 'user:admin').executeTakeFirstOrThrow();
      expect(task).toEqual({ kind: 'vm.backup', started_by: 'user:admin' });

      const big = 5 * 2 ** 40; // 5 TiB: above 32 bits
      await db
        .insertInto('storage_usage_samples')
        .values({ id: randomUUID(), storage_id: randomUUID(), at: t, capacity_bytes: big, used_bytes: big - 1, free_bytes: 1, backup_bytes: big - 2, original_bytes: big * 3 })
        .execute();
      const sample = await db.selectFrom('storage_usage_samples').selectAll().executeTakeFirstOrThrow();
      expect([Number(sample.capacity_bytes), Number(sample.used_bytes), Number(sample.original_bytes)]).toEqual([big, big - 1, big * 3]);
      await db
        .insertInto('hook_deliveries')
        .values({ id: randomUUID(), hook_id: randomUUID(), event: 'task.failed', test: 0, task_id: taskId, delivered: 0, status: 502, error: 'x'.repeat(1000), attempts: 3, duration_ms: 12, at: t })
        .execute();
      const delivery = await db.selectFrom('hook_deliveries').select(['status', 'error', 'test']).executeTakeFirstOrThrow();
      expect([Number(delivery.status), delivery.error?.length, Number(delivery.test)]).toEqual([502, 1000, 0]);

      const down = new Migrator({ db, provider: { getMigrations: async () => ({ ...BEFORE, '0007_console': m0007 }) }, migrationTableSchema });
      const result = await down.migrateDown();
      if (result.error) throw result.error;
      const left = await indexNames(db, dialect);
      for (const name of NEW_INDEXES.filter((n) => dialect !== 'mysql' || !n.startsWith('restore_points_'))) expect(left).not.toContain(name);
      expect(await db.selectFrom('tasks').select('id').execute()).toEqual([{ id: taskId }]);
    });
  });
}
