/**
 * Migrations on PostgreSQL with several Backroll databases in one PostgreSQL database
 * (one schema each, as the tests and some operators run them): a schema migrates on its
 * own even when another schema already has Kysely's migration tables, whether the caller
 * names the dialect or not.
 */
import { afterAll, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from './database.js';
import { createTestDatabase, unavailableReason, type TestDatabase } from '../../test/support/databases.js';
import { describeWhenAvailable } from '../../test/support/unavailable.js';

const reason = await unavailableReason('postgres');
const made: TestDatabase[] = [];
afterAll(async () => {
  for (const d of made) await d.drop();
});

describeWhenAvailable('migrations in one PostgreSQL schema beside another', reason, () => {
  it('migrates a new schema while another schema already holds the migration tables', async () => {
    const first = await createTestDatabase('postgres');
    const second = await createTestDatabase('postgres');
    made.push(first, second);
    const a = openDatabase(first.config);
    const b = openDatabase(second.config);
    try {
      expect((await migrateToLatest(a, 'postgres')).applied).toContain('0001_initial');
      // No dialect given: it is read from the connection (this failed with
      // `relation "kysely_migration_lock" does not exist` when the other schema was seen).
      expect((await migrateToLatest(b)).applied).toContain('0001_initial');
      expect((await migrateToLatest(b)).applied).toEqual([]);
      await b.selectFrom('storages').selectAll().execute();
    } finally {
      await a.destroy();
      await b.destroy();
    }
  });
});
