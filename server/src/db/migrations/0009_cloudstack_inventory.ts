import type { Kysely } from 'kysely';

/**
 * CloudStack in the inventory: what the pool's connector says about a VM (instance id,
 * display name, account, domain, project, CloudStack's state, whether libvirt no longer
 * has the domain because CloudStack stopped it), as JSON text; null for VMs CloudStack does
 * not know. Portable like 0001: one nullable text column.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('virtual_machines').addColumn('cloudstack', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('virtual_machines').dropColumn('cloudstack').execute();
}
