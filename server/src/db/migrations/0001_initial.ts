import { type Kysely, sql } from 'kysely';

/**
 * First schema. Column types are chosen to mean the same on SQLite, PostgreSQL
 * and MySQL/MariaDB: varchar for anything indexed (MySQL cannot index TEXT
 * without a prefix length), text for free-form JSON, bigint for byte counts.
 */
const id = 'varchar(36)';
const ts = 'varchar(32)';
const name = 'varchar(255)';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('storages')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('path', 'varchar(1024)', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('hooks')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('url_sealed', 'text', (c) => c.notNull())
    .addColumn('secret_sealed', 'text')
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('policies')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('schedule', 'varchar(255)', (c) => c.notNull())
    .addColumn('timezone', 'varchar(64)', (c) => c.notNull())
    .addColumn('retention_daily', 'integer', (c) => c.notNull())
    .addColumn('retention_weekly', 'integer', (c) => c.notNull())
    .addColumn('retention_monthly', 'integer', (c) => c.notNull())
    .addColumn('retention_yearly', 'integer', (c) => c.notNull())
    .addColumn('storage_id', id, (c) => c.notNull().references('storages.id'))
    .addColumn('hook_id', id, (c) => c.references('hooks.id'))
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('quiesce', 'varchar(16)', (c) => c.notNull())
    .addColumn('compression', 'varchar(32)', (c) => c.notNull())
    .addColumn('encryption', 'varchar(16)', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('connectors')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('kind', 'varchar(32)', (c) => c.notNull())
    .addColumn('endpoint_url', 'varchar(1024)', (c) => c.notNull())
    .addColumn('api_key_sealed', 'text', (c) => c.notNull())
    .addColumn('secret_key_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('pools')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('policy_id', id, (c) => c.notNull().references('policies.id'))
    .addColumn('connector_id', id, (c) => c.references('connectors.id'))
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('hosts')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('name', name, (c) => c.notNull().unique())
    .addColumn('address', name, (c) => c.notNull())
    .addColumn('ssh_port', 'integer', (c) => c.notNull())
    .addColumn('username', name, (c) => c.notNull())
    .addColumn('pool_id', id, (c) => c.notNull().references('pools.id'))
    .addColumn('tags', 'text', (c) => c.notNull())
    .addColumn('libvirt_uri', 'varchar(512)', (c) => c.notNull())
    .addColumn('host_key', 'text')
    .addColumn('host_key_fingerprint', 'varchar(128)')
    .addColumn('connection_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('connection_error_code', 'varchar(64)')
    .addColumn('connection_message', 'text')
    .addColumn('last_seen_at', ts)
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('virtual_machines')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('host_id', id, (c) => c.notNull().references('hosts.id'))
    .addColumn('uuid', id, (c) => c.notNull())
    .addColumn('name', name, (c) => c.notNull())
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
    .addColumn('disks', 'text', (c) => c.notNull())
    .addColumn('cloudstack_managed', 'integer', (c) => c.notNull())
    .addColumn('system_vm', 'integer', (c) => c.notNull())
    .addColumn('present', 'integer', (c) => c.notNull())
    .addColumn('last_seen_at', ts, (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addUniqueConstraint('virtual_machines_host_uuid', ['host_id', 'uuid'])
    .execute();
  await db.schema.createIndex('virtual_machines_name').on('virtual_machines').column('name').execute();

  await db.schema
    .createTable('tasks')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('kind', 'varchar(64)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('target_type', 'varchar(32)')
    .addColumn('target_id', id)
    .addColumn('parent_id', id, (c) => c.references('tasks.id'))
    .addColumn('progress_percent', 'double precision')
    .addColumn('bytes_done', 'bigint')
    .addColumn('bytes_total', 'bigint')
    .addColumn('rate_bytes_per_second', 'double precision')
    .addColumn('started_by', name)
    .addColumn('result', 'text')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('error_message', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('started_at', ts)
    .addColumn('finished_at', ts)
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('tasks_state').on('tasks').columns(['state', 'created_at']).execute();
  await db.schema.createIndex('tasks_target').on('tasks').columns(['target_type', 'target_id']).execute();

  await db.schema
    .createTable('task_logs')
    .addColumn('task_id', id, (c) => c.notNull().references('tasks.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('at', ts, (c) => c.notNull())
    .addColumn('level', 'varchar(8)', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('task_logs_pk', ['task_id', 'seq'])
    .execute();

  await db.schema
    .createTable('restore_points')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('vm_id', id, (c) => c.notNull().references('virtual_machines.id'))
    .addColumn('storage_id', id, (c) => c.notNull().references('storages.id'))
    .addColumn('repository', 'varchar(1024)', (c) => c.notNull())
    .addColumn('epoch', 'bigint', (c) => c.notNull())
    .addColumn('archives', 'text', (c) => c.notNull())
    .addColumn('original_size', 'bigint')
    .addColumn('compressed_size', 'bigint')
    .addColumn('deduplicated_size', 'bigint')
    .addColumn('duration_ms', 'bigint')
    .addColumn('task_id', id)
    .addColumn('created_at', ts, (c) => c.notNull())
    .addUniqueConstraint('restore_points_vm_epoch', ['vm_id', 'epoch'])
    .execute();
  void sql;
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'restore_points',
    'task_logs',
    'tasks',
    'virtual_machines',
    'hosts',
    'pools',
    'connectors',
    'policies',
    'hooks',
    'storages',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
