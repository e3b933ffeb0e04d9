import { MysqlAdapter, type Kysely } from 'kysely';

/**
 * The operator's console: indexes for its lists and aggregates (tasks by kind, by who started
 * them, a VM's latest backups, changes since a moment for the event stream), storage usage
 * samples (recorded periodically) and the delivery history of notification hooks.
 * Portable like 0001: varchar for indexed columns, bigint for byte counts, 0/1 booleans.
 */
const id = 'varchar(36)';
const ts = 'varchar(32)';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('tasks_kind').on('tasks').columns(['kind', 'created_at']).execute();
  await db.schema.createIndex('tasks_started_by').on('tasks').columns(['started_by', 'created_at']).execute();
  // Covering for a VM's latest backups (their state read from the index, not the table).
  await db.schema.createIndex('tasks_target_kind').on('tasks').columns(['target_id', 'kind', 'created_at', 'state']).execute();
  // Covering for the dashboard's kind × state matrix of the last days.
  await db.schema.createIndex('tasks_created_kind').on('tasks').columns(['created_at', 'kind', 'state']).execute();
  await db.schema.createIndex('tasks_updated').on('tasks').column('updated_at').execute();
  await db.schema.createIndex('hosts_updated').on('hosts').column('updated_at').execute();
  await db.schema.createIndex('virtual_machines_updated').on('virtual_machines').column('updated_at').execute();
  await db.schema.createIndex('restore_points_storage').on('restore_points').columns(['storage_id', 'vm_id']).execute();

  await db.schema
    .createTable('storage_usage_samples')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('storage_id', id, (c) => c.notNull())
    .addColumn('at', ts, (c) => c.notNull())
    .addColumn('capacity_bytes', 'bigint')
    .addColumn('used_bytes', 'bigint')
    .addColumn('free_bytes', 'bigint')
    .addColumn('backup_bytes', 'bigint', (c) => c.notNull())
    .addColumn('original_bytes', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('storage_usage_samples_storage').on('storage_usage_samples').columns(['storage_id', 'at']).execute();

  await db.schema
    .createTable('hook_deliveries')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('hook_id', id, (c) => c.notNull())
    .addColumn('event', 'varchar(64)', (c) => c.notNull())
    .addColumn('test', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('task_id', id)
    .addColumn('delivered', 'integer', (c) => c.notNull())
    .addColumn('status', 'integer')
    .addColumn('error', 'varchar(1000)')
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('hook_deliveries_hook').on('hook_deliveries').columns(['hook_id', 'at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('hook_deliveries').execute();
  await db.schema.dropTable('storage_usage_samples').execute();
  const mysql = db.getExecutor().adapter instanceof MysqlAdapter;
  // MySQL names the table of an index, the others do not; there the restore_points index may
  // have become the one its storage_id foreign key uses, and it stays.
  if (!mysql) await db.schema.dropIndex('restore_points_storage').execute();
  for (const [name, table] of [
    ['virtual_machines_updated', 'virtual_machines'],
    ['hosts_updated', 'hosts'],
    ['tasks_updated', 'tasks'],
    ['tasks_created_kind', 'tasks'],
    ['tasks_target_kind', 'tasks'],
    ['tasks_started_by', 'tasks'],
    ['tasks_kind', 'tasks'],
  ] as const) {
    await (mysql ? db.schema.dropIndex(name).on(table) : db.schema.dropIndex(name)).execute();
  }
}
