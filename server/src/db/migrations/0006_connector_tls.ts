import type { Kysely } from 'kysely';

/**
 * CloudStack connectors: how the API endpoint's certificate is checked. Verification stays
 * on for existing connectors (default 1); `ca_certificate` holds extra trusted CAs (PEM).
 * Portable like 0001: one column per ALTER, booleans as 0/1 integers.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('connectors').addColumn('verify_tls', 'integer', (c) => c.notNull().defaultTo(1)).execute();
  await db.schema.alterTable('connectors').addColumn('ca_certificate', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('connectors').dropColumn('ca_certificate').execute();
  await db.schema.alterTable('connectors').dropColumn('verify_tls').execute();
}
