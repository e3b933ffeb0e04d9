import { MysqlAdapter, sql, type Kysely } from 'kysely';

/**
 * Incremental backups (docs/incremental.md): each restore point records how its disks were
 * read (`read_mode` full | incremental; null for restore points made before) with the
 * bytes to read and read, the reason of a full read, and the libvirt checkpoint created
 * with it (name + full XML, to redefine it when libvirt lost it), and the epoch of the full
 * read its chain of incrementals started from (the periodic full counts from there). Policies get the period
 * of a forced full read (days; default 30; 0: every backup reads everything) and a switch
 * for changed-block tracking (1 default; 0: running VMs are read by snapshot + borg create). Portable like 0001: one column per ALTER.
 */
const RP: Array<[string, 'text' | 'bigint']> = [
  ['read_mode', 'text'],
  ['bytes_to_read', 'bigint'],
  ['bytes_read', 'bigint'],
  ['full_reason', 'text'],
  ['checkpoint_name', 'text'],
  ['checkpoint_xml', 'text'],
  ['chain_full_epoch', 'bigint'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  // The checkpoint XML holds the whole domain XML: MariaDB's TEXT stops at 64 KiB.
  const mysql = db.getExecutor().adapter instanceof MysqlAdapter;
  for (const [name, type] of RP) {
    if (name === 'checkpoint_xml' && mysql) await db.schema.alterTable('restore_points').addColumn(name, sql`mediumtext`).execute();
    else await db.schema.alterTable('restore_points').addColumn(name, type).execute();
  }
  await db.schema.alterTable('policies').addColumn('full_every_days', 'integer', (c) => c.notNull().defaultTo(30)).execute();
  await db.schema.alterTable('policies').addColumn('changed_block_tracking', 'integer', (c) => c.notNull().defaultTo(1)).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('policies').dropColumn('changed_block_tracking').execute();
  await db.schema.alterTable('policies').dropColumn('full_every_days').execute();
  for (const [name] of [...RP].reverse()) await db.schema.alterTable('restore_points').dropColumn(name).execute();
}
