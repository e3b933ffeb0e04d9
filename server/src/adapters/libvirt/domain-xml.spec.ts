import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDomainXml, scaledToBytes } from './domain-xml.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseDomainXml', () => {
  it('Apache CloudStack instance: sysinfo, disk with template backing, cdrom without source skipped, agent', () => {
    const d = parseDomainXml(fixture('cloudstack.xml'));
    expect(d).toMatchObject({
      uuid: '5c1f2a4e-7b1e-4a3e-9d2a-1f2e3d4c5b6a', // normalized to lower case
      name: 'i-2-34-VM',
      domainType: 'kvm',
      id: 12,
      vcpus: 2,
      vcpusCurrent: 2,
      memoryBytes: 2 * 1024 ** 3,
      currentMemoryBytes: 2 * 1024 ** 3,
      cloudStack: true,
      guestAgent: { state: 'connected' },
    });
    expect(d.sysinfo).toEqual([
      { section: 'system', name: 'manufacturer', value: 'Apache Software Foundation' },
      { section: 'system', name: 'product', value: 'CloudStack KVM Hypervisor' },
      { section: 'system', name: 'uuid', value: '5c1f2a4e-7b1e-4a3e-9d2a-1f2e3d4c5b6a' },
    ]);
    expect(d.disks).toEqual([
      {
        target: 'vda',
        bus: 'virtio',
        type: 'file',
        path: '/mnt/0c1b58f4-7a1f-3c6f-9bd5-2f8a7a1e3c4d/8f3e2b1a-4c5d-4e6f-8a9b-0c1d2e3f4a5b',
        sourceDescription: null,
        format: 'qcow2',
        readonly: false,
        shareable: false,
        backingChain: [
          { type: 'file', path: '/mnt/0c1b58f4-7a1f-3c6f-9bd5-2f8a7a1e3c4d/3a5f1e0c-201d-11ee-a3d4-0242ac120002', format: 'qcow2' },
        ],
        backingChainKnown: true,
      },
    ]);
  });

  it('two disks (file + block), units, vcpu current, cdrom/floppy excluded, network disk described', () => {
    const d = parseDomainXml(fixture('twodisks.xml'));
    expect(d.memoryBytes).toBe(4 * 1024 ** 3);
    expect(d.currentMemoryBytes).toBe(2048 * 1024 ** 2);
    expect(d.vcpus).toBe(4);
    expect(d.vcpusCurrent).toBe(2);
    expect(d.id).toBeNull();
    expect(d.domainType).toBe('qemu');
    expect(d.cloudStack).toBe(false);
    expect(d.guestAgent).toEqual({ state: null });
    expect(d.sysinfo).toEqual([
      { section: 'bios', name: 'vendor', value: 'SeaBIOS' },
      { section: 'oemStrings', name: null, value: 'myapp:role=db' },
    ]);
    expect(d.disks.map((x) => [x.target, x.type, x.path, x.format, x.shareable, x.sourceDescription])).toEqual([
      ['vda', 'file', '/var/lib/libvirt/images/db-01-root.qcow2', 'qcow2', false, null],
      ['vdb', 'block', '/dev/vg0/db-01-data', 'raw', true, null],
      ['vdc', 'network', null, 'raw', false, 'rbd:pool/image-1'],
    ]);
    // A domain not running: libvirt did not state the chain.
    expect(d.disks[0]!.backingChainKnown).toBe(false);
  });

  it('backing chain of depth 2, ending in a block device', () => {
    const d = parseDomainXml(fixture('chain2.xml'));
    expect(d.memoryBytes).toBe(1024 ** 3); // no unit: KiB
    expect(d.disks[0]!.path).toBe('/vms/web-01.overlay-20240101.qcow2');
    expect(d.disks[0]!.backingChain).toEqual([
      { type: 'file', path: '/vms/web-01.qcow2', format: 'qcow2' },
      { type: 'block', path: '/dev/vg0/golden', format: 'raw' },
    ]);
    expect(d.disks[0]!.backingChainKnown).toBe(true);
    expect(d.guestAgent).toEqual({ state: 'disconnected' });
  });

  it('hostile name and path: entities and character references decoded exactly', () => {
    const d = parseDomainXml(fixture('hostile.xml'));
    expect(d.name).toBe('evil$(touch PWNED);\'"`id` x & <b> $(');
    expect(d.disks[0]!.path).toBe('/home/kvmhost1/vms/it\'s "evil" & $(x).qcow2');
    expect(d.guestAgent).toBeNull();
    expect(d.memoryBytes).toBe(64 * 1024 ** 2);
  });

  it('real libvirt 9 XML: running overlay with its template, and a shut-off domain', () => {
    const run = parseDomainXml(fixture('libvirt9-running-backing.xml'));
    expect(run.disks).toHaveLength(1);
    expect(run.disks[0]!.backingChain).toHaveLength(1);
    expect(run.disks[0]!.backingChain[0]!.path).toMatch(/templates\/base\.qcow2$/);
    expect(run.disks[0]!.backingChainKnown).toBe(true);
    const off = parseDomainXml(fixture('libvirt9-shutoff.xml'));
    expect(off.id).toBeNull();
    expect(off.disks[0]!.backingChain).toEqual([]);
    expect(off.disks[0]!.backingChainKnown).toBe(false);
  });

  it('keeps names as strings (no number coercion, spaces kept)', () => {
    const d = parseDomainXml(
      "<domain type='kvm'><name> 0012 </name><uuid>11111111-2222-3333-4444-555555555555</uuid><memory>1</memory><vcpu>1</vcpu></domain>",
    );
    expect(d.name).toBe(' 0012 ');
  });

  it('refuses what is not a domain XML with LIBVIRT.BAD_XML', () => {
    expect(() => parseDomainXml('<network><name>x</name></network>')).toThrow(/no <domain>/);
    expect(() => parseDomainXml('<domain><name>x</name></domain>')).toThrow(/lacks/);
    expect(() => parseDomainXml('')).toThrow();
    let thrown: unknown;
    try {
      parseDomainXml('<network/>');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toMatchObject({ code: 'LIBVIRT.BAD_XML' });
  });
});

describe('scaledToBytes', () => {
  it.each([
    ['1', 'b', 1],
    ['1', 'bytes', 1],
    ['1', 'k', 1024],
    ['1', 'KiB', 1024],
    ['1', 'KB', 1000],
    ['1', 'M', 1024 ** 2],
    ['1', 'MiB', 1024 ** 2],
    ['1', 'MB', 1000 ** 2],
    ['2', 'G', 2 * 1024 ** 3],
    ['2', 'GB', 2 * 1000 ** 3],
    ['1', 'TiB', 1024 ** 4],
    ['1', 'PB', 1000 ** 5],
    ['65536', null, 65536 * 1024],
  ] as const)('%s %s', (v, u, expected) => {
    expect(scaledToBytes(v, u)).toBe(expected);
  });

  it('refuses nonsense', () => {
    expect(() => scaledToBytes('1', 'furlongs')).toThrow(/unknown unit/);
    expect(() => scaledToBytes('-1', 'KiB')).toThrow(/not an integer/);
    expect(() => scaledToBytes('1.5', 'KiB')).toThrow(/not an integer/);
    expect(() => scaledToBytes('99999', 'EiB')).toThrow(/too large/);
  });
});
