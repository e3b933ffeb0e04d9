import { describe, expect, it } from 'vitest';
import { groupByEpoch } from '../backups/naming.js';
import { foundRestorePoint, placeholderUuid, planRepository, readManifest, repositoryNameProblem } from './reindex.rules.js';

const E1 = 1_764_000_000;
const E2 = 1_764_086_400;
const names = [`vda_disk-a_${E1}`, `vdb_disk-b_${E1}`, `config_${E1}`, `vda_disk-a_${E2}`, 'vda_disk-a_1764172800.checkpoint'];
const [g2, g1] = groupByEpoch(names);

const manifest = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    epoch: E1,
    vm: { uuid: '6F1B0A3C-1111-4222-8333-944445555666', name: 'web' },
    disks: [
      { target: 'vda', path: '/vms/disk-a.qcow2', format: 'qcow2', archive: `vda_disk-a_${E1}`, backingChain: ['/t/base.qcow2'], virtualSize: 1024 },
      { target: 'vdb', path: '/vms/disk-b.raw', format: 'raw', archive: `vdb_disk-b_${E1}`, backingChain: [], virtualSize: null },
    ],
    ...over,
  });

describe('reindex rules', () => {
  it('accepts a VM name as repository directory, refuses what could escape the storage or is reserved', () => {
    expect(repositoryNameProblem('web')).toBeNull();
    expect(repositoryNameProblem('evil$(touch PWNED);\'"`id` x')).toBeNull();
    for (const bad of ['..', '.', '', 'a/b', '../etc', 'a::b', 'template', '.backroll', 'lost+found', 'x\0y']) expect(repositoryNameProblem(bad), bad).not.toBeNull();
  });

  it('reads the disks of backroll.json only when they are exactly the restore point’s disk archives', () => {
    const ok = readManifest(manifest(), g1!);
    expect(ok.problem).toBeNull();
    expect(ok.vmUuid).toBe('6f1b0a3c-1111-4222-8333-944445555666');
    expect(ok.disks.map((d) => [d.target, d.path, d.format, d.archive, d.backingChain])).toEqual([
      ['vda', '/vms/disk-a.qcow2', 'qcow2', `vda_disk-a_${E1}`, ['/t/base.qcow2']],
      ['vdb', '/vms/disk-b.raw', 'raw', `vdb_disk-b_${E1}`, []],
    ]);
    const bad = (m: string, g = g1!) => {
      const r = readManifest(m, g);
      expect(r.disks).toEqual([]);
      return r.problem;
    };
    expect(bad('not json')).toMatch(/not JSON/);
    expect(bad(manifest({ epoch: E2 }))).toMatch(/epoch/);
    expect(bad(manifest({ disks: [JSON.parse(manifest()).disks[0]] }))).toMatch(/1 disk\(s\).*2 disk archive/);
    // A disk named for another target, a relative path, an archive of another restore point.
    const d = JSON.parse(manifest()).disks;
    expect(bad(manifest({ disks: [{ ...d[0], target: 'vdb' }, d[1]] }))).toMatch(/does not hold/);
    expect(bad(manifest({ disks: [{ ...d[0], path: '../../etc/shadow' }, d[1]] }))).toMatch(/not an absolute path/);
    expect(bad(manifest({ disks: [{ ...d[0], archive: `vda_disk-a_${E2}` }, d[1]] }))).toMatch(/does not hold/);
    expect(bad(manifest({ disks: [d[0], d[0]] }))).toMatch(/lists 2/);
    // A uuid that is not one is not used to match a VM.
    expect(readManifest(manifest({ vm: { uuid: '../x' } }), g1!).vmUuid).toBeNull();
  });

  it('plans one repository: adds what the index lacks, keeps the rest as is, reports missing and incomplete rows', () => {
    const rows = [
      { id: 'kept', vmId: 'v', epoch: E1, archives: [`config_${E1}`, `vda_disk-a_${E1}`, `vdb_disk-b_${E1}`] },
      { id: 'gone', vmId: 'v', epoch: 1_700_000_000, archives: ['vda_disk-a_1700000000'] },
    ];
    const plan = planRepository([g2!, g1!], rows);
    expect(plan.add.map((g) => g.epoch)).toEqual([E2]);
    expect(plan.kept.map((r) => r.id)).toEqual(['kept']);
    expect(plan.missing.map((r) => r.id)).toEqual(['gone']);
    expect(plan.incomplete).toEqual([]);
    // Twice: once added, nothing more to add.
    const again = planRepository([g2!, g1!], [...rows, { id: 'new', vmId: 'v', epoch: E2, archives: [`vda_disk-a_${E2}`] }]);
    expect(again.add).toEqual([]);
    // A disk archive of an indexed restore point vanished.
    const partial = planRepository([g1!], [{ ...rows[0]!, archives: [...rows[0]!.archives, `vdc_disk-c_${E1}`] }]);
    expect(partial.incomplete.map((r) => [r.id, r.absent, r.extra])).toEqual([['kept', [`vdc_disk-c_${E1}`], []]]);
  });

  it('records a found restore point at its epoch, as found in borg', () => {
    const rp = foundRestorePoint(g1!, { id: 'i', vmId: 'v', storageId: 's', repository: '/b/web' }, []);
    expect(rp).toMatchObject({ epoch: E1, archives: [`config_${E1}`, `vda_disk-a_${E1}`, `vdb_disk-b_${E1}`], source: 'borg', createdAt: new Date(E1 * 1000).toISOString(), taskId: null });
  });

  it('gives a VM known only by its repository a stable uuid per storage and name', () => {
    const u = placeholderUuid('s1', 'web');
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(placeholderUuid('s1', 'web')).toBe(u);
    expect(placeholderUuid('s2', 'web')).not.toBe(u);
    expect(placeholderUuid('s1', 'db')).not.toBe(u);
  });
});
