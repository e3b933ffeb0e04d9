import type { Kysely } from 'kysely';

/**
 * When each borg repository was last compacted, and since when archives deleted from it wait
 * for a compaction (docs/incremental.md, "fixed cost"). A backup compacts only when archives
 * were deleted since the last compaction and that one is older than
 * BACKROLL_COMPACT_INTERVAL_HOURS; deleting a restore point by hand still compacts at once.
 * Keyed by the sha256 of the repository path (a path can be longer than an indexable varchar
 * in MariaDB). Instants are ISO-8601 strings, like 0003.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('repository_compactions')
    .addColumn('repository_key', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('compacted_at', 'varchar(32)')
    .addColumn('deleted_since', 'varchar(32)')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('repository_compactions').ifExists().execute();
}
