/**
 * Migration 0009 on every database: VMs inventoried before it keep their rows with no
 * CloudStack view (null); afterwards the column holds CloudStack's view as JSON text.
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
import * as m0002 from './0002_jobs.js';
import * as m0003 from './0003_backups.js';
import * as m0004 from './0004_restore_point_identity.js';
import * as m0006 from './0006_connector_tls.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

async function migrateBefore0009(db: Db, dialect: DatabaseDialect): Promise<void> {
  const schema = dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s : undefined;
  const before: Record<string, Migration> = { '0001_initial': m0001, '0002_jobs': m0002, '0003_backups': m0003, '0004_restore_point_identity': m0004, '0006_connector_tls': m0006 };
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => before }, migrationTableSchema: schema }).migrateToLatest();
  if (error) throw error;
}

for (const dialect of DIALECTS) {
  describeWhenAvailable(`migration 0009 (CloudStack view of inventoried VMs) on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase | undefined;
    let db: Db | undefined;
    afterEach(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('keeps existing VMs with no CloudStack view; afterwards stores and reads it back', async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateBefore0009(db, dialect);
      const t = '2026-01-01T00:00:00.000Z';
      const [storage, policy, pool, host, vm] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      await sql`insert into storages (id, name, path, created_at, updated_at) values (${storage}, ${'s'}, ${'/srv'}, ${t}, ${t})`.execute(db);
      await sql`insert into policies (id, name, description, schedule, timezone, retention_daily, retention_weekly, retention_monthly, retention_yearly, storage_id, hook_id, enabled, quiesce, compression, encryption, created_at, updated_at)
        values (${policy}, ${'p'}, ${''}, ${'0 3 * * *'}, ${'UTC'}, ${7}, ${0}, ${0}, ${0}, ${storage}, ${null}, ${1}, ${'preferred'}, ${'lz4'}, ${'none'}, ${t}, ${t})`.execute(db);
      await sql`insert into pools (id, name, policy_id, connector_id, created_at, updated_at) values (${pool}, ${'pool'}, ${policy}, ${null}, ${t}, ${t})`.execute(db);
      await sql`insert into hosts (id, name, address, ssh_port, username, pool_id, tags, libvirt_uri, connection_state, created_at, updated_at)
        values (${host}, ${'h'}, ${'192.0.2.1'}, ${22}, ${'root'}, ${pool}, ${'[]'}, ${'qemu:///system'}, ${'unknown'}, ${t}, ${t})`.execute(db);
      await sql`insert into virtual_machines (id, host_id, uuid, name, state, vcpus, memory_bytes, disks, cloudstack_managed, system_vm, present, last_seen_at, created_at, updated_at)
        values (${vm}, ${host}, ${randomUUID()}, ${'i-2-12-VM'}, ${'running'}, ${1}, ${1}, ${'[]'}, ${1}, ${0}, ${1}, ${t}, ${t}, ${t})`.execute(db);

      expect((await migrateToLatest(db, dialect)).applied).toContain('0009_cloudstack_inventory');
      const row = await db.selectFrom('virtual_machines').select(['name', 'cloudstack']).where('id', '=', vm).executeTakeFirstOrThrow();
      expect(row).toEqual({ name: 'i-2-12-VM', cloudstack: null });

      const view = JSON.stringify({ id: randomUUID(), instanceName: 'i-2-12-VM', displayName: `Web ${'é'.repeat(2000)}`, account: 'acme', domain: 'ROOT/acme', project: null, state: 'Stopped', stoppedOutsideLibvirt: true });
      await db.updateTable('virtual_machines').set({ cloudstack: view }).where('id', '=', vm).execute();
      const after = await db.selectFrom('virtual_machines').select(['cloudstack']).where('id', '=', vm).executeTakeFirstOrThrow();
      expect(after.cloudstack).toBe(view);
    });
  });
}
