import { describe, expect, it } from 'vitest';
import { archivePrefixes, configArchiveName, diskArchiveName, groupByEpoch, isOverlayPath, overlayPath, overlaysOfDisk, parseArchiveName, repositoryPath, templatePath } from './naming.js';

describe('storage layout names', () => {
  it('names archives like BackROLL', () => {
    expect(diskArchiveName('vda', '/mnt/primary/i-2-34-VM.qcow2', 1732665600)).toBe('vda_i-2-34-VM_1732665600');
    expect(diskArchiveName('vda', '/mnt/primary/0b6a6f8a-8d8e-4e1c-9d1b-7b1c2f6d5a11', 1732665600)).toBe('vda_0b6a6f8a-8d8e-4e1c-9d1b-7b1c2f6d5a11_1732665600');
    expect(configArchiveName(1732665600)).toBe('config_1732665600');
  });

  it('replaces glob and separator characters in archive names', () => {
    expect(diskArchiveName('vda', "/vms/evil$(x)*[a]:: 'q'.qcow2", 1700000000)).toBe('vda_evil__x___a_____q__1700000000');
  });

  it('parses names back and groups restore points by epoch', () => {
    expect(parseArchiveName('vda_i-2-34-VM_1732665600')).toEqual({ kind: 'disk', name: 'vda_i-2-34-VM_1732665600', epoch: 1732665600, prefix: 'vda_i-2-34-VM_', target: 'vda', stem: 'i-2-34-VM' });
    expect(parseArchiveName('config_1732665600')).toMatchObject({ kind: 'config', epoch: 1732665600 });
    expect(parseArchiveName('vda_x_1732665600.checkpoint')).toEqual({ kind: 'other', name: 'vda_x_1732665600.checkpoint' });
    const names = ['vda_a_1700000000', 'vdb_b_1700000000', 'config_1700000000', 'vda_a_1700086400', 'junk'];
    expect(groupByEpoch(names)).toEqual([
      { epoch: 1700086400, archives: ['vda_a_1700086400'], hasConfig: false },
      { epoch: 1700000000, archives: ['config_1700000000', 'vda_a_1700000000', 'vdb_b_1700000000'], hasConfig: true },
    ]);
    expect(archivePrefixes(names)).toEqual(['config_', 'vda_a_', 'vdb_b_']);
  });

  it('puts the repository, templates and overlays where they belong', () => {
    expect(repositoryPath('/backup', 'evil$(touch PWNED);\'"`id` x')).toBe('/backup/evil$(touch PWNED);\'"`id` x');
    for (const bad of ['a/b', '..', '.', 'template', 'a::b', '']) expect(() => repositoryPath('/backup', bad)).toThrow(/BACKUP|cannot|share|::/);
    expect(templatePath('/backup', '/home/h/templates/base.qcow2')).toBe('/backup/template/base.qcow2');
    const o = overlayPath('/vms/disk-a.qcow2', 1700000000);
    expect(o).toBe('/vms/disk-a.backroll-1700000000.qcow2');
    expect(isOverlayPath(o)).toBe(true);
    expect(isOverlayPath('/vms/disk-a.qcow2')).toBe(false);
    expect(overlaysOfDisk('/vms/disk-a.qcow2', ['disk-a.qcow2', 'disk-a.backroll-1700000000.qcow2', 'disk-ab.backroll-1700000000.qcow2', 'disk-a.backroll-x.qcow2'])).toEqual(['/vms/disk-a.backroll-1700000000.qcow2']);
  });
});
