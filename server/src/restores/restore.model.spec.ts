import { describe, expect, it } from 'vitest';
import { parseCheck } from '../adapters/qemu-img/check.js';
import { rewriteDomainXml } from './domain-xml-rewrite.js';
import { archivesOfEpoch, contentDisposition, directoryFileNames, fileSafe, newDiskPath, percentOf, replacedPathOf, tmpPathOf } from './restore.model.js';
import { formatOf } from './restore-source.js';
import { parseDomainXml } from '../adapters/libvirt/domain-xml.js';

describe('restore points from archive names', () => {
  const names = [
    'vda_vm1-vda_1700000000',
    'vdb_data_disk_1700000000',
    'config_1700000000',
    'vda_vm1-vda_1700000100',
    'vda_vm1-vda_1700000000.checkpoint',
    'something-else',
  ];
  it('groups disks and config of one epoch, sorted by target', () => {
    expect(archivesOfEpoch(names, 1700000000)).toEqual({
      config: 'config_1700000000',
      disks: [
        { name: 'vda_vm1-vda_1700000000', target: 'vda' },
        { name: 'vdb_data_disk_1700000000', target: 'vdb' },
      ],
    });
  });
  it('a BackROLL restore point has no config archive', () => {
    expect(archivesOfEpoch(names, 1700000100)).toEqual({ config: null, disks: [{ name: 'vda_vm1-vda_1700000100', target: 'vda' }] });
    expect(archivesOfEpoch(names, 1)).toEqual({ config: null, disks: [] });
  });
});

describe('file names', () => {
  it('temporary and kept files sit next to the disk', () => {
    expect(tmpPathOf('/vms/a b.qcow2', 1700000000)).toBe('/vms/a b.qcow2.backroll-restore-1700000000.tmp');
    expect(replacedPathOf('/vms/a.qcow2', 1700000000)).toBe('/vms/a.qcow2.backroll-replaced-1700000000');
  });
  it('a copy gets a file-safe name from the new VM name, next to the original or in a directory', () => {
    expect(newDiskPath('/vms/orig.qcow2', 'web copy', 'vda')).toBe('/vms/web_copy-vda.qcow2');
    expect(newDiskPath('/vms/orig.qcow2', `evil$(touch PWNED);'"\`id\` x`, 'vdb', '/restore')).toBe('/restore/evil__touch_PWNED_____id__x-vdb.qcow2');
    expect(newDiskPath('/dev/vg/lv', '../x', 'vda', '/r')).toBe('/r/__x-vda');
    expect(fileSafe('..')).toBe('_');
  });
  it('directory restores keep the disk file names, prefixed by the target on a clash', () => {
    const m = directoryFileNames([
      { target: 'vda', path: '/a/disk.qcow2' },
      { target: 'vdb', path: '/b/disk.qcow2' },
      { target: 'vdc', path: '/b/domain.xml' },
    ]);
    expect([...m.entries()]).toEqual([
      ['vda', 'disk.qcow2'],
      ['vdb', 'vdb_disk.qcow2'],
      ['vdc', 'vdc_domain.xml'],
    ]);
  });
  it('content-disposition has an ASCII fallback and the exact UTF-8 name', () => {
    expect(contentDisposition('vm-vda.qcow2')).toBe(`attachment; filename="vm-vda.qcow2"; filename*=UTF-8''vm-vda.qcow2`);
    expect(contentDisposition('é"x;.qcow2')).toBe(`attachment; filename="__x_.qcow2"; filename*=UTF-8''%C3%A9%22x%3B.qcow2`);
  });
  it('progress: extraction spans 5–90 %', () => {
    expect(percentOf(0, 100)).toBe(5);
    expect(percentOf(50, 100)).toBe(47);
    expect(percentOf(100, 100)).toBe(90);
    expect(percentOf(0, 0)).toBe(5);
  });
});

describe('disk formats of a restore point', () => {
  const xml = `<domain type='kvm'><name>a</name><uuid>11111111-1111-1111-1111-111111111111</uuid><memory>1024</memory><vcpu>1</vcpu><devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/x.img'/><target dev='vda'/></disk></devices></domain>`;
  it('manifest first, then the domain XML, else unknown', () => {
    expect(formatOf('vda', { disks: [{ target: 'vda', path: '/x.img', format: 'qcow2' }] }, xml)).toBe('qcow2');
    expect(formatOf('vda', null, xml)).toBe('raw');
    expect(formatOf('vdb', null, xml)).toBeNull();
    expect(formatOf('vda', null, null)).toBeNull();
  });
});

describe('domain XML of a VM restored as a copy', () => {
  const live = `<domain type='kvm' id='7'>
  <name>orig</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <!-- a comment is kept -->
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/vms/orig-vda.qcow2' index='2'/>
      <backingStore type='file' index='3'><format type='qcow2'/><source file='/t/base.qcow2'/><backingStore/></backingStore>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source network='default'/>
      <target dev='vnet0'/>
      <model type='virtio'/>
    </interface>
  </devices>
  <seclabel type='dynamic' model='dac'><label>+0:+0</label></seclabel>
</domain>`;

  it('new name and uuid, new disk paths, no chain, no MAC, no runtime id; the rest kept', () => {
    const name = `copy <&> '"\` $(x)`;
    const out = rewriteDomainXml(live, { name, uuid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', diskPaths: { vda: '/new/copy & vda.qcow2' } });
    const info = parseDomainXml(out);
    expect(info.name).toBe(name);
    expect(info.uuid).toBe('aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
    expect(info.id).toBeNull();
    expect(info.disks).toHaveLength(1);
    expect(info.disks[0]).toMatchObject({ target: 'vda', path: '/new/copy & vda.qcow2', format: 'qcow2', backingChain: [] });
    expect(out).not.toContain('52:54:00');
    expect(out).not.toContain('vnet0');
    expect(out).not.toContain('seclabel');
    expect(out).not.toContain('index=');
    expect(out).toContain("<model type=\"virtio\"/>");
    expect(out).toContain('<!-- a comment is kept -->');
    expect(out).toContain('<readonly/>');
  });

  it('a uuid element is added when the XML had none; an unknown disk target is refused', () => {
    const noUuid = live.replace(/<uuid>.*<\/uuid>/, '');
    expect(parseDomainXml(rewriteDomainXml(noUuid, { name: 'c', uuid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', diskPaths: {} })).uuid).toBe('aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
    expect(() => rewriteDomainXml(live, { name: 'c', uuid: 'u', diskPaths: { vdz: '/x' } })).toThrow(expect.objectContaining({ code: 'RESTORE.DOMAIN_XML_INVALID' }));
    expect(() => rewriteDomainXml('<nope/>', { name: 'c', uuid: 'u', diskPaths: {} })).toThrow(expect.objectContaining({ code: 'RESTORE.DOMAIN_XML_INVALID' }));
  });
});

describe('qemu-img check results', () => {
  it('clean, leaks only, corrupt, unreadable', () => {
    expect(parseCheck(0, '{"check-errors":0,"filename":"x","format":"qcow2"}', '')).toMatchObject({ ok: true, message: 'no errors' });
    expect(parseCheck(3, '{"check-errors":0,"leaks":4}', '')).toMatchObject({ ok: true, leaks: 4 });
    expect(parseCheck(2, '{"check-errors":0,"corruptions":2}', '')).toMatchObject({ ok: false, corruptions: 2 });
    expect(parseCheck(1, '', "qemu-img: Could not open 'x': No such file\n")).toMatchObject({ ok: false, message: "qemu-img: Could not open 'x': No such file" });
  });
});
