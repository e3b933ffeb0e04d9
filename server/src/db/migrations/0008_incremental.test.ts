/**
 * Migration 0008 on every database: restore points made before it read as full reads of
 * unknown size without checkpoint; policies get full_every_days 30 and changed-block tracking
 * on; afterwards a restore point stores its read mode, byte counts and a long checkpoint XML.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../../test/support/databases.js';
import { describeWhenAvailable } from '../../../test/support/unavailable.js';
import { migrateToLatest, openDatabase, type Db } from '../database.js';
import { RestorePointRepository } from '../../backups/restore-point.repository.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  describeWhenAvailable(`migration 0008 (incremental backups) on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase | undefined;
    let db: Db | undefined;
    afterEach(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('adds the columns with their defaults and stores a checkpoint XML of 64 KiB and byte counts over 4 GiB', async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      const applied = (await migrateToLatest(db, dialect)).applied;
      expect(applied).toContain('0008_incremental');
      const t = new Date().toISOString();
      const storageId = randomUUID();
      const policyId = randomUUID();
      await db.insertInto('storages').values({ id: storageId, name: 's', path: '/tmp/s', created_at: t, updated_at: t }).execute();
      await sql`insert into policies (id, name, description, schedule, timezone, retention_daily, retention_weekly, retention_monthly, retention_yearly, storage_id, hook_id, enabled, quiesce, compression, encryption, created_at, updated_at)
        values (${policyId}, ${'p'}, ${''}, ${'0 3 * * *'}, ${'UTC'}, ${7}, ${4}, ${0}, ${0}, ${storageId}, ${null}, ${1}, ${'preferred'}, ${'lz4'}, ${'none'}, ${t}, ${t})`.execute(db);
      const pol = await db.selectFrom('policies').select(['full_every_days', 'changed_block_tracking']).where('id', '=', policyId).executeTakeFirstOrThrow();
      expect([Number(pol.full_every_days), Number(pol.changed_block_tracking)]).toEqual([30, 1]);
      const poolId = randomUUID();
      const hostId = randomUUID();
      const vmId = randomUUID();
      await db.insertInto('pools').values({ id: poolId, name: 'p', policy_id: policyId, connector_id: null, created_at: t, updated_at: t }).execute();
      await db
        .insertInto('hosts')
        .values({ id: hostId, name: 'h', address: '127.0.0.1', ssh_port: 22, username: 'u', pool_id: poolId, tags: '[]', libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: null, connection_state: 'connected', connection_error_code: null, connection_message: null, last_seen_at: t, created_at: t, updated_at: t })
        .execute();
      await db
        .insertInto('virtual_machines')
        .values({ id: vmId, host_id: hostId, uuid: randomUUID(), name: 'vm', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: t, created_at: t, updated_at: t })
        .execute();
      const repo = new RestorePointRepository(db);
      const base = { vmId, storageId, repository: '/r', archives: ['a'], disks: [], originalSize: 1, compressedSize: 1, deduplicatedSize: 1, durationMs: 1, taskId: null, startedBy: null, source: 'backroll' as const, createdAt: t };
      const oldId = randomUUID();
      await repo.insert({ ...base, id: oldId, epoch: 1 });
      const xml = `<domaincheckpoint>${'x'.repeat(64 * 1024)}</domaincheckpoint>`;
      const newId = randomUUID();
      await repo.insert({ ...base, id: newId, epoch: 2, readMode: 'incremental', bytesToRead: 5 * 2 ** 30, bytesRead: 5 * 2 ** 30 + 1, fullReason: null, checkpointName: 'backroll-2', checkpointXml: xml, chainFullEpoch: 1 });
      const old = await repo.find(base.vmId, oldId);
      expect([old!.readMode, old!.bytesRead, old!.checkpointName]).toEqual([null, null, null]);
      const got = await repo.find(base.vmId, newId);
      expect([got!.readMode, got!.bytesToRead, got!.bytesRead, got!.checkpointName, got!.checkpointXml, got!.chainFullEpoch]).toEqual(['incremental', 5 * 2 ** 30, 5 * 2 ** 30 + 1, 'backroll-2', xml, 1]);
      await repo.dropCheckpoints(base.vmId);
      expect((await repo.find(base.vmId, newId))!.checkpointName).toBeNull();
    });
  });
}
