/**
 * The applier against Backroll's real services on SQLite: what a service refuses is reported
 * and what depends on it waits; once the operator creates the missing resource by hand under
 * the reported name, the next run links to it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices, type Services } from '../../src/app/services.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { applyPlan, loadExisting } from '../../src/migration/backroll-import/applier.js';
import { mapBackroll } from '../../src/migration/backroll-import/mapper.js';
import type { BackrollSource } from '../../src/migration/backroll-import/source.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

const id = (n: number) => n.toString(16).padStart(32, '0');
let tdb: TestDatabase;
let db: Db;
let services: Services;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-applier-'));
  fs.mkdirSync(path.join(dir, 'backup'));
  tdb = await createTestDatabase('sqlite');
  db = openDatabase(tdb.config);
  await migrateToLatest(db);
  services = createServices({ db, secretBox: SecretBox.fromKey(Buffer.alloc(32, 7)) });
});
afterAll(async () => {
  await services.jobs.close();
  await db.destroy();
  await tdb.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('applyPlan through the services', () => {
  it('reports refusals, holds back dependents, and links to resources created by hand on the next run', async () => {
    const source: BackrollSource = {
      dialect: 'sqlite',
      location: 'sqlite:/test',
      schemaNotes: [],
      storages: [
        { id: id(1), name: 'nfs', path: path.join(dir, 'backup') },
        { id: id(2), name: 'unmounted', path: path.join(dir, 'not-mounted') },
      ],
      hooks: [],
      connectors: [],
      policies: [
        // BackROLL kept everything: not importable as is.
        { id: id(10), name: 'keep-all', description: null, schedule: '0 1 * * *', retention: { day: 0, week: 0, month: 0, year: 0 }, storageId: id(1), hookId: null, enabled: true },
        { id: id(11), name: 'on-unmounted', description: null, schedule: '0 2 * * *', retention: { day: 3, week: 0, month: 0, year: 0 }, storageId: id(2), hookId: null, enabled: false },
      ],
      pools: [{ id: id(20), name: 'rack-a', policyId: id(10), connectorId: null }],
      hosts: [{ id: id(30), hostname: 'kvm1', ipaddress: '192.0.2.1', username: 'backroll', ssh: true, poolId: id(20), tags: null }],
      userCount: 0,
    };
    const plan = mapBackroll(source, { timezone: 'UTC', keepEnabled: false, now: new Date() });
    const status = (r: Awaited<ReturnType<typeof applyPlan>>) => r.mapped.map((m) => `${m.kind}:${m.name}:${m.status}`);

    // The dry run predicts the same as the real run, and writes nothing.
    const dry = await applyPlan(source, plan, { existing: await loadExisting(db), probePath: async (p) => (fs.existsSync(p) ? null : `STORAGE.PATH_NOT_FOUND: ${p}`) });
    expect(status(dry)).toEqual(['storage:nfs:would-create', 'storage:unmounted:would-fail', 'policy:on-unmounted:blocked', 'pool:rack-a:blocked', 'host:kvm1:blocked']);
    expect((await services.storages.list({ limit: 10, offset: 0 })).total).toBe(0);

    const first = await applyPlan(source, plan, { existing: await loadExisting(db), targets: services });
    expect(status(first)).toEqual(['storage:nfs:created', 'storage:unmounted:failed', 'policy:on-unmounted:blocked', 'pool:rack-a:blocked', 'host:kvm1:blocked']);
    expect(first.mapped[1]!.detail).toMatch(/^STORAGE\.PATH_NOT_FOUND: storage path ".*not-mounted" does not exist on the Backroll server/);
    expect(first.mapped[3]!.detail).toBe('its policy "keep-all" is not in Backroll (not imported, or failed above)');
    expect(first.notMapped).toEqual([expect.objectContaining({ kind: 'policy', name: 'keep-all', field: 'retention' })]);
    expect(first.summary).toMatchObject({ created: 1, failed: 1, blocked: 3 });

    // The operator creates the policy by hand (same name) and mounts the storage; the import runs again.
    const nfs = first.mapped[0]!.id!;
    const byHand = await services.policies.create({ name: 'keep-all', schedule: '0 1 * * *', retention: { daily: 0, weekly: 0, monthly: 0, yearly: 50 }, storageId: nfs });
    fs.mkdirSync(path.join(dir, 'not-mounted'));
    const second = await applyPlan(source, plan, { existing: await loadExisting(db), targets: services });
    expect(status(second)).toEqual(['storage:nfs:exists', 'storage:unmounted:created', 'policy:on-unmounted:created', 'pool:rack-a:created', 'host:kvm1:created']);
    const pool = await services.pools.get(second.mapped[3]!.id!);
    expect(pool.policyId).toBe(byHand.id);
    const host = await services.hosts.get(second.mapped[4]!.id!);
    expect(host).toMatchObject({ poolId: pool.id, username: 'backroll', address: '192.0.2.1', sshPort: 22, libvirtUri: 'qemu:///system' });

    const third = await applyPlan(source, plan, { existing: await loadExisting(db), targets: services });
    expect(third.summary).toMatchObject({ created: 0, exists: 5, failed: 0, blocked: 0 });
  });
});
