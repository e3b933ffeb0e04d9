/**
 * /api/v1 end to end on the KVM lab, as CloudStack's `backroll` provider drives it: a
 * two-disk lab VM marked as a CloudStack VM is backed up through
 * POST /tasks/singlebackup/{uuid}, polled to SUCCESS, listed as exactly one backup, its
 * stats read, restored through POST /tasks/restore/{uuid} (content checked byte for byte)
 * and deleted. Every response is parsed with the strict schemas of cloudstack-client.ts.
 * One backup, one restore, one delete, on a shut-off clone (the lab's VMs stay untouched).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { createMachineClient } from '../../src/idp/index.js';
import { cloneVm, domState, HAVE_BORG, rawSha, removeClone, scribble, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import { startLabApiServer } from '../support/lab-server.js';
import type { TestServer } from '../support/server.js';
import { BackupListInfo, CloudStackClient, RepositoryInfo, Schemas, type Generation } from './cloudstack-client.js';

const reason = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');
const GENERATIONS: Generation[] = ['2024-12', '2025-04', '2026'];

describe.skipIf(reason !== '')(`/api/v1 for CloudStack on the KVM lab${reason}`, () => {
  const l = lab!;
  let h: LabHost;
  let t: TestServer;
  let storage: string;
  let dataDir: string;
  let vm: CloneVm;
  let app: { clientId: string; clientSecret: string };
  const tag = randomBytes(3).toString('hex');
  const client = (g: Generation) => new CloudStackClient(`${t.url}/api/v1`, g, app.clientId, app.clientSecret);

  beforeAll(async () => {
    h = labHost(l, 'kvmhost1');
    expect(canaryPresent(l)).toEqual([]);
    ({ t, dataDir, storage } = await startLabApiServer(l, h, { encryption: 'repokey', compression: 'lz4', quiesce: 'off' }));
    const hostId = (await t.api('GET', '/api/v2/hosts')).body.items[0].id as string;
    // Shut off: a lab guest has no OS and would make the in-place restore wait out the shutdown grace.
    vm = cloneVm(l, h, 'vm-twodisks', `cs-v1-${tag}`, `v1-${tag}`, false);
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: randomUUID(), host_id: hostId, uuid: vm.uuid, name: vm.name, state: 'shut off', vcpus: 1, memory_bytes: 64 << 20, disks: '[]', cloudstack_managed: 1, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();
    app = createMachineClient(dataDir, t.server.secretBox, 'cloudstack', 'admin');
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    if (vm) removeClone(h, vm);
    if (storage) fs.rmSync(storage, { recursive: true, force: true });
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    expect(canaryPresent(l)).toEqual([]);
  });

  it('offerings → singlebackup → poll → list (one backup) → stats → restore (byte-identical) → delete', async () => {
    const c = client('2025-04');
    const policies = await c.success(await c.start('GET', '/backup_policies'), Type.Array(Schemas.Policy, { minItems: 1 }), 'GET /backup_policies');
    expect(policies.map((p: { name: string }) => p.name)).toContain('lab');

    const before = Object.fromEntries(vm.disks.map((d) => [d.target, rawSha(d.path)]));
    const name = await c.success(await c.start('POST', `/tasks/singlebackup/${vm.uuid}`), Type.String({ minLength: 1 }), 'POST singlebackup');
    expect(name).toMatch(/^vda_v1-[0-9a-f]+-vda_\d{10}$/);

    // Every generation lists the two-disk VM as ONE backup, named as singlebackup said.
    for (const g of GENERATIONS) {
      const cg = client(g);
      const list = await cg.success(await cg.start('GET', `/virtualmachines/${vm.uuid}/backups`), BackupListInfo, `${g}: GET backups`);
      expect(list.archives).toHaveLength(1);
      expect(list.archives[0]).toMatchObject({ name, archive: name, barchive: name });
      expect(list.encryption.mode).toBe('repokey-blake2');
      const stats = await cg.success(await cg.start('GET', `/virtualmachines/${vm.uuid}/backups/${name}`), Schemas.Stats, `${g}: GET stats`);
      expect(stats.original_size).toBeGreaterThan(0);
      expect(stats.nfiles).toBe(4); // two disk images + domain.xml + backroll.json
    }
    const old = client('2024-12');
    const repo = await old.success(await old.start('GET', `/virtualmachines/${vm.uuid}/repository`), RepositoryInfo, 'GET repository');
    expect(repo.repository.location).toBe(`${storage}/${vm.name}`);

    for (const d of vm.disks) scribble(h, vm, d.target, false, '0xc5');
    for (const d of vm.disks) expect(rawSha(d.path)).not.toBe(before[d.target]);
    const restored = await c.poll(await c.start('POST', `/tasks/restore/${vm.uuid}`, { virtual_machine_id: vm.uuid, backup_name: name, storage: '', mode: 'single' }));
    expect(JSON.stringify(restored)).toContain('SUCCESS');
    expect(restored).toEqual({ state: 'SUCCESS', info: null });
    for (const d of vm.disks) expect(rawSha(d.path), d.target).toBe(before[d.target]);
    expect(domState(h, vm.uuid)).toBe('shut off');

    const c26 = client('2026');
    const deleted = await c26.success(await c26.start('DELETE', `/virtualmachines/${vm.uuid}/backups/${name}`), Type.Null(), 'DELETE backup');
    expect(deleted).toBeNull();
    const after = await c26.success(await c26.start('GET', `/virtualmachines/${vm.uuid}/backups`), BackupListInfo, 'GET backups after delete');
    expect(after.archives).toEqual([]);
  }, 280_000);
});
