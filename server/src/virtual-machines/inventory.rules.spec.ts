import { describe, expect, it } from 'vitest';
import type { DomainDisk } from '../adapters/libvirt/domain-xml.js';
import type { ImageInfo } from '../adapters/qemu-img/qemu-img-info.js';
import { buildDisk, discoveredVm, inspectable, isSystemVm, MAX_NAME, planInventory, type DiscoveredVm, type KnownVm } from './inventory.rules.js';

describe('CloudStack system VMs', () => {
  it('flags r-, s-, v-, b-, l-<id>-<instance> of CloudStack-managed domains only', () => {
    for (const name of ['r-12-VM', 's-1-VM', 'v-2-VM', 'b-7-VM', 'l-9-VM', 'r-1234567-CLOUD']) {
      expect(isSystemVm(name, true), name).toBe(true);
      // A plain KVM guest that happens to have such a name is backed up like any other.
      expect(isSystemVm(name, false), name).toBe(false);
    }
    for (const name of ['i-2-34-VM', 'r-VM', 'r-12-', 'r-12-VM-x', 'R-12-VM', 'router-1-VM', 'r-1a-VM', 'x-1-VM', 'r-12-VM\n', ' r-12-VM']) {
      expect(isSystemVm(name, true), JSON.stringify(name)).toBe(false);
    }
  });
});

const disk = (over: Partial<DomainDisk> = {}): DomainDisk => ({
  target: 'vda',
  bus: 'virtio',
  type: 'file',
  path: '/vms/a.qcow2',
  sourceDescription: null,
  format: 'qcow2',
  readonly: false,
  shareable: false,
  backingChain: [],
  backingChainKnown: false,
  ...over,
});
const img = (filename: string, over: Partial<ImageInfo> = {}): ImageInfo => ({
  filename,
  format: 'qcow2',
  virtualSizeBytes: 64 << 20,
  actualSizeBytes: 1 << 20,
  backingFilename: null,
  backingFormat: null,
  dirty: false,
  encrypted: false,
  ...over,
});

describe('buildDisk', () => {
  it('takes sizes and the chain from qemu-img when it answered', () => {
    const d = buildDisk(disk(), [img('/vms/a.qcow2', { backingFilename: '/t/base.qcow2' }), img('/t/base.qcow2', { format: 'raw', virtualSizeBytes: 32 << 20, actualSizeBytes: null })], null);
    expect(d).toEqual({
      target: 'vda',
      bus: 'virtio',
      type: 'file',
      path: '/vms/a.qcow2',
      source: null,
      format: 'qcow2',
      readonly: false,
      shareable: false,
      virtualSizeBytes: 64 << 20,
      actualSizeBytes: 1 << 20,
      backingChain: [{ path: '/t/base.qcow2', format: 'raw', virtualSizeBytes: 32 << 20, actualSizeBytes: null }],
      backingChainSource: 'qemu-img',
      problem: null,
    });
  });

  it("falls back on libvirt's chain (running domain), or says the chain is unknown", () => {
    const live = disk({ backingChain: [{ type: 'file', path: '/t/base.qcow2', format: 'qcow2' }], backingChainKnown: true });
    const problem = { code: 'QEMU_IMG.PERMISSION_DENIED', message: 'denied' };
    expect(buildDisk(live, null, problem)).toMatchObject({
      backingChain: [{ path: '/t/base.qcow2', format: 'qcow2', virtualSizeBytes: null, actualSizeBytes: null }],
      backingChainSource: 'libvirt',
      virtualSizeBytes: null,
      problem,
    });
    expect(buildDisk(disk(), null, problem)).toMatchObject({ backingChain: [], backingChainSource: null });
  });

  it('inspects local files and block devices only', () => {
    expect(inspectable(disk())).toBe(true);
    expect(inspectable(disk({ type: 'block', path: '/dev/vg/lv' }))).toBe(true);
    expect(inspectable(disk({ type: 'network', path: null, sourceDescription: 'rbd:pool/img' }))).toBe(false);
    expect(inspectable(disk({ type: 'file', path: 'relative.qcow2' }))).toBe(false);
    expect(buildDisk(disk({ type: 'network', path: null, sourceDescription: 'rbd:pool/img' }), null, null)).toMatchObject({ source: 'rbd:pool/img', backingChainSource: null, problem: null });
  });
});

describe('discoveredVm', () => {
  it('keeps hostile names as they are and shortens what no database column holds', () => {
    const info = { uuid: 'u', name: 'evil$(touch PWNED);\'"`id` x', domainType: 'kvm', id: 1, vcpus: 2, vcpusCurrent: 2, memoryBytes: 1, currentMemoryBytes: 1, disks: [], sysinfo: [], cloudStack: false, guestAgent: null };
    expect(discoveredVm(info, 'running', []).name).toBe(info.name);
    const long = discoveredVm({ ...info, name: '🐧'.repeat(300) }, 'running', []);
    expect([...long.name]).toHaveLength(MAX_NAME);
    expect(discoveredVm({ ...info, name: 'r-1-VM', cloudStack: true }, 'running', [])).toMatchObject({ systemVm: true, cloudStackManaged: true });
  });
});

describe('planInventory', () => {
  const vm = (uuid: string, over: Partial<DiscoveredVm> = {}): DiscoveredVm => ({
    uuid,
    cloudStack: null,
    name: `vm-${uuid}`,
    state: 'running',
    vcpus: 1,
    memoryBytes: 64 << 20,
    disks: [buildDisk(disk(), null, null)],
    cloudStackManaged: false,
    systemVm: false,
    ...over,
  });
  const known = (uuid: string, over: Partial<KnownVm> = {}): KnownVm => ({ id: `id-${uuid}`, ...vm(uuid), present: true, ...over });

  it('adds new, updates changed, touches unchanged, marks vanished absent', () => {
    const plan = planInventory(
      [known('a'), known('b'), known('c'), known('d', { present: false }), known('e', { present: false })],
      [vm('a'), vm('b', { state: 'shut off' }), vm('d'), vm('n')],
    );
    expect(plan.added.map((v) => v.uuid)).toEqual(['n']);
    expect(plan.updated.map((u) => u.id)).toEqual(['id-b', 'id-d']); // d came back
    expect(plan.unchangedIds).toEqual(['id-a']);
    expect(plan.disappearedIds).toEqual(['id-c']); // e was already absent
  });

  it('any change of name, size, disks or flags is an update', () => {
    const k = known('a');
    for (const change of [{ name: 'renamed' }, { vcpus: 2 }, { memoryBytes: 1 }, { cloudStackManaged: true }, { systemVm: true }, { disks: [] }]) {
      expect(planInventory([k], [vm('a', change)]).updated, JSON.stringify(change)).toHaveLength(1);
    }
  });

  it('a domain that could not be read is neither updated nor marked absent', () => {
    const plan = planInventory([known('a'), known('b')], [vm('a')], new Set(['b']));
    expect(plan).toEqual({ added: [], updated: [], unchangedIds: ['id-a'], disappearedIds: [] });
  });

  it('nothing found on a host that had VMs: all of them disappear (the caller never plans a failed host)', () => {
    expect(planInventory([known('a'), known('b')], []).disappearedIds).toEqual(['id-a', 'id-b']);
  });
});
