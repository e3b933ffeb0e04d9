import type { Kysely } from 'kysely';

/**
 * The job system: what a task needs to be run, leased, limited, retried and
 * scheduled. Portable like 0001: one column per ALTER (SQLite adds one at a time),
 * varchar for indexed columns, ISO-8601 strings for instants.
 */
const id = 'varchar(36)';
const ts = 'varchar(32)';

const TASK_COLUMNS: Array<[string, string]> = [
  ['payload', 'text'],
  ['progress_step', 'varchar(255)'],
  ['retry_of', id],
  ['resource_host_id', id],
  ['resource_storage_id', id],
  ['cancel_requested_at', ts],
  ['lease_owner', 'varchar(128)'],
  ['lease_expires_at', ts],
  ['schedule_run_id', id],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const [name, type] of TASK_COLUMNS) {
    await db.schema.alterTable('tasks').addColumn(name, type as 'text').execute();
  }
  // A parent whose handler is done but whose children still run: no lease, no slot.
  await db.schema
    .alterTable('tasks')
    .addColumn('awaiting_children', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('tasks_parent').on('tasks').columns(['parent_id', 'created_at']).execute();
  await db.schema.createIndex('tasks_created').on('tasks').column('created_at').execute();
  await db.schema.createIndex('tasks_lease').on('tasks').columns(['state', 'lease_expires_at']).execute();
  await db.schema.createIndex('tasks_schedule_run').on('tasks').column('schedule_run_id').execute();

  // Concurrency slots: one row per taken slot of a scope ("global", "host:<id>",
  // "storage:<id>"); the primary key makes taking a slot atomic on every dialect.
  await db.schema
    .createTable('task_slots')
    .addColumn('scope', 'varchar(160)', (c) => c.notNull())
    .addColumn('slot', 'integer', (c) => c.notNull())
    .addColumn('task_id', id, (c) => c.notNull())
    .addColumn('expires_at', ts, (c) => c.notNull())
    .addPrimaryKeyConstraint('task_slots_pk', ['scope', 'slot'])
    .execute();
  await db.schema.createIndex('task_slots_task').on('task_slots').column('task_id').execute();

  // One row per schedule occurrence of a policy: the unique key makes firing
  // exactly-once whatever delivers the occurrence (timer, BullMQ, a retry).
  await db.schema
    .createTable('schedule_runs')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('policy_id', id, (c) => c.notNull())
    .addColumn('scheduled_for', ts, (c) => c.notNull())
    .addColumn('recorded_at', ts, (c) => c.notNull())
    .addColumn('outcome', 'varchar(16)', (c) => c.notNull())
    .addColumn('pool_count', 'integer', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addUniqueConstraint('schedule_runs_occurrence', ['policy_id', 'scheduled_for'])
    .execute();

  // Embedded scheduler: the next due occurrence of each enabled policy, so a run
  // due while the process was down is found (and recorded as missed) at start.
  await db.schema
    .createTable('schedule_cursors')
    .addColumn('policy_id', id, (c) => c.primaryKey())
    .addColumn('schedule', 'varchar(255)', (c) => c.notNull())
    .addColumn('timezone', 'varchar(64)', (c) => c.notNull())
    .addColumn('next_run_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('schedule_cursors').ifExists().execute();
  await db.schema.dropTable('schedule_runs').ifExists().execute();
  await db.schema.dropTable('task_slots').ifExists().execute();
  for (const index of ['tasks_parent', 'tasks_created', 'tasks_lease', 'tasks_schedule_run']) {
    await db.schema.dropIndex(index).on('tasks').ifExists().execute();
  }
  for (const name of ['awaiting_children', ...TASK_COLUMNS.map(([n]) => n).reverse()]) {
    await db.schema.alterTable('tasks').dropColumn(name).execute();
  }
}
