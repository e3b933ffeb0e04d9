/**
 * Migration 0006 on every database: connectors made before it keep working and keep
 * verifying TLS (verify_tls 1, no CA); afterwards both columns take values.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import { afterEach, expect, it } from 'vitest';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../../test/support/databases.js';
import { describeWhenAvailable } from '../../../test/support/unavailable.js';
import type { DatabaseDialect } from '../../config/config.js';
import { migrateToLatest, openDatabase, type Db } from '../database.js';
import * as m0001 from './0001_initial.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

/** The schema of 0001 is all the connectors table had before 0006. */
async function migrateTo0001(db: Db, dialect: DatabaseDialect): Promise<void> {
  const schema = dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s : undefined;
  const before: Record<string, Migration> = { '0001_initial': m0001 };
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => before }, migrationTableSchema: schema }).migrateToLatest();
  if (error) throw error;
}

for (const dialect of DIALECTS) {
  describeWhenAvailable(`migration 0006 (connector TLS settings) on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase | undefined;
    let db: Db | undefined;
    afterEach(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('keeps existing connectors with verification on and no CA', async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateTo0001(db, dialect);
      const id = randomUUID();
      const t = '2026-01-01T00:00:00.000Z';
      await sql`insert into connectors (id, name, kind, endpoint_url, api_key_sealed, secret_key_sealed, created_at, updated_at)
        values (${id}, ${'acs'}, ${'cloudstack'}, ${'https://cloud.example/client/api'}, ${'v1:a'}, ${'v1:b'}, ${t}, ${t})`.execute(db);

      expect((await migrateToLatest(db, dialect)).applied).toContain('0006_connector_tls');
      const row = await db.selectFrom('connectors').select(['verify_tls', 'ca_certificate']).where('id', '=', id).executeTakeFirstOrThrow();
      expect(Number(row.verify_tls)).toBe(1);
      expect(row.ca_certificate).toBeNull();

      const pem = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(4000)}\n-----END CERTIFICATE-----\n`;
      await db.updateTable('connectors').set({ verify_tls: 0, ca_certificate: pem }).where('id', '=', id).execute();
      const after = await db.selectFrom('connectors').select(['verify_tls', 'ca_certificate']).where('id', '=', id).executeTakeFirstOrThrow();
      expect([Number(after.verify_tls), after.ca_certificate]).toEqual([0, pem]);
    });
  });
}
