import type { Kysely } from 'kysely';

/**
 * Backups: the cluster-wide VM lock (a lease row per VM, renewed by heartbeats) and
 * what a restore point records beyond 0001's columns. Portable like 0001/0002: one
 * column per ALTER, varchar for indexed columns, ISO-8601 strings for instants.
 */
const id = 'varchar(36)';
const ts = 'varchar(32)';

const RESTORE_POINT_COLUMNS: Array<[string, string]> = [
  // Who started the backup (task's started_by), the disks and the source of the row.
  ['started_by', 'varchar(255)'],
  ['disks', 'text'],
  ['source', 'varchar(16)'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('vm_locks')
    .addColumn('vm_id', id, (c) => c.primaryKey())
    .addColumn('token', id, (c) => c.notNull())
    .addColumn('owner', 'varchar(255)', (c) => c.notNull())
    .addColumn('purpose', 'varchar(64)', (c) => c.notNull())
    .addColumn('acquired_at', ts, (c) => c.notNull())
    .addColumn('expires_at', ts, (c) => c.notNull())
    .execute();
  for (const [name, type] of RESTORE_POINT_COLUMNS) {
    await db.schema.alterTable('restore_points').addColumn(name, type as 'text').execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const [name] of [...RESTORE_POINT_COLUMNS].reverse()) {
    await db.schema.alterTable('restore_points').dropColumn(name).execute();
  }
  await db.schema.dropTable('vm_locks').ifExists().execute();
}
