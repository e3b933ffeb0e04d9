import type { Kysely } from 'kysely';

/**
 * How the worker reads a host's VM disks for a backup (docs/incremental.md, "reading over
 * SSH"): 'auto' (the default; the mounted path when this worker can read every disk there,
 * else over the host's SSH connection), 'mount' (the VM storage must be mounted on the
 * worker at the host's path) or 'ssh' (always through the host: NBD over a forwarded unix
 * socket on the pinned SSH connection). Existing hosts become 'auto', which reads exactly as
 * before wherever the storage is mounted.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('hosts')
    .addColumn('disk_access', 'varchar(8)', (c) => c.notNull().defaultTo('auto'))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('disk_access').execute();
}
