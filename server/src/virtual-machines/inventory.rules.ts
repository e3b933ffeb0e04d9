/** Pure rules of the VM inventory: system VMs, disks from libvirt + qemu-img, what a refresh changes. */
import type { DomainDisk, DomainInfo } from '../adapters/libvirt/domain-xml.js';
import type { DomainState } from '../adapters/libvirt/virsh.js';
import type { ImageInfo } from '../adapters/qemu-img/qemu-img-info.js';
import type { CloudStackVmInfo } from '../cloudstack/cloudstack-vm.rules.js';

/**
 * Apache CloudStack names its system VMs `<prefix>-<id>-<instance>` (VirtualMachineName.java):
 * r = virtual router, s = secondary storage VM, v = console proxy, b = internal load balancer,
 * l = elastic load balancer; `<instance>` is the `instance.name` setting, "VM" by default.
 * User instances are `i-<account>-<id>-<instance>`.
 */
export const CLOUDSTACK_SYSTEM_VM_NAME = /^[rsvbl]-\d+-[A-Za-z0-9]+$/;

/**
 * Excluded from backups (CloudStack re-creates them) but listed. Only for domains CloudStack
 * manages (SMBIOS sysinfo): a plain KVM guest that happens to be called `r-1-VM` is backed up.
 */
export function isSystemVm(name: string, cloudStackManaged: boolean): boolean {
  return cloudStackManaged && CLOUDSTACK_SYSTEM_VM_NAME.test(name);
}

export interface VmImage {
  path: string | null;
  format: string | null;
  virtualSizeBytes: number | null;
  actualSizeBytes: number | null;
}

/** A disk as the inventory stores it (JSON in `virtual_machines.disks`) and the API shows it. */
export interface VmDisk {
  /** Guest device: `vda`, `sda`. */
  target: string;
  bus: string | null;
  /** `file`, `block`, `network`, `volume`… (backups handle file and block). */
  type: string;
  /** File path or device node; null for network or volume sources (see `source`). */
  path: string | null;
  /** For sources without a path: `rbd:pool/image`, `volume:pool/vol`. */
  source: string | null;
  /** Format of the top image (driver type): `qcow2`, `raw`. */
  format: string | null;
  readonly: boolean;
  shareable: boolean;
  /** Size the guest sees (qemu-img); null when unknown. */
  virtualSizeBytes: number | null;
  /** Space the top image uses on the host (qemu-img); null when unknown. */
  actualSizeBytes: number | null;
  /** Images below the top one, nearest first. */
  backingChain: VmImage[];
  /** Who stated the chain: qemu-img (from the images), libvirt (live XML), or null: unknown. */
  backingChainSource: 'qemu-img' | 'libvirt' | null;
  /** Why sizes or the chain are missing (e.g. QEMU_IMG.IMAGE_NOT_FOUND). */
  problem: { code: string; message: string } | null;
}

/** A domain as read from its host. */
export interface DiscoveredVm {
  uuid: string;
  name: string;
  state: DomainState;
  vcpus: number;
  memoryBytes: number;
  disks: VmDisk[];
  cloudStackManaged: boolean;
  systemVm: boolean;
  /** What the pool's CloudStack connector says about it; null without a connector or when CloudStack does not know it. */
  cloudStack: CloudStackVmInfo | null;
}

/** Disks qemu-img can inspect: a local file or block device. */
export function inspectable(d: DomainDisk): boolean {
  return (d.type === 'file' || d.type === 'block') && d.path !== null && d.path.startsWith('/');
}

/**
 * One disk from the domain XML and, when it could be read, `qemu-img info --backing-chain`
 * (`chain`, top first) or the error it gave.
 */
export function buildDisk(d: DomainDisk, chain: ImageInfo[] | null, problem: { code: string; message: string } | null): VmDisk {
  const top = chain?.[0];
  return {
    target: d.target,
    bus: d.bus,
    type: d.type,
    path: d.path,
    source: d.sourceDescription,
    format: d.format,
    readonly: d.readonly,
    shareable: d.shareable,
    virtualSizeBytes: top?.virtualSizeBytes ?? null,
    actualSizeBytes: top?.actualSizeBytes ?? null,
    backingChain: chain
      ? chain.slice(1).map((i) => ({ path: i.filename, format: i.format, virtualSizeBytes: i.virtualSizeBytes, actualSizeBytes: i.actualSizeBytes }))
      : d.backingChain.map((b) => ({ path: b.path, format: b.format, virtualSizeBytes: null, actualSizeBytes: null })),
    backingChainSource: chain ? 'qemu-img' : d.backingChainKnown ? 'libvirt' : null,
    problem,
  };
}

/** Longest name the inventory stores (varchar(255) on every database); libvirt allows longer. */
export const MAX_NAME = 255;

export function discoveredVm(info: DomainInfo, state: DomainState, disks: VmDisk[]): DiscoveredVm {
  const name = [...info.name].length > MAX_NAME ? [...info.name].slice(0, MAX_NAME).join('') : info.name;
  return {
    uuid: info.uuid,
    name,
    state,
    vcpus: info.vcpus,
    memoryBytes: info.memoryBytes,
    disks,
    cloudStackManaged: info.cloudStack,
    systemVm: isSystemVm(info.name, info.cloudStack),
    cloudStack: null,
  };
}

/** What the inventory holds about one VM of the host (present or not). */
export interface KnownVm {
  id: string;
  uuid: string;
  name: string;
  state: string;
  vcpus: number;
  memoryBytes: number;
  disks: VmDisk[];
  cloudStackManaged: boolean;
  systemVm: boolean;
  cloudStack: CloudStackVmInfo | null;
  present: boolean;
}

export interface InventoryPlan {
  added: DiscoveredVm[];
  /** Known VMs whose description changed (or that came back). */
  updated: Array<{ id: string; vm: DiscoveredVm }>;
  /** Known, present, seen again and unchanged: only `last_seen_at` moves. */
  unchangedIds: string[];
  /** Present before, not found now: marked absent, never deleted (their backups still matter). */
  disappearedIds: string[];
}

function same(k: KnownVm, d: DiscoveredVm): boolean {
  return (
    k.present &&
    k.name === d.name &&
    k.state === d.state &&
    k.vcpus === d.vcpus &&
    k.memoryBytes === d.memoryBytes &&
    k.cloudStackManaged === d.cloudStackManaged &&
    k.systemVm === d.systemVm &&
    JSON.stringify(k.cloudStack) === JSON.stringify(d.cloudStack) &&
    JSON.stringify(k.disks) === JSON.stringify(d.disks)
  );
}

/**
 * Compares the host's known VMs with what was found. `unreadable`: uuids listed but not read
 * (an error other than "gone"): they are neither updated nor marked absent.
 */
export function planInventory(known: KnownVm[], found: DiscoveredVm[], unreadable: ReadonlySet<string> = new Set()): InventoryPlan {
  const byUuid = new Map(known.map((k) => [k.uuid, k]));
  const plan: InventoryPlan = { added: [], updated: [], unchangedIds: [], disappearedIds: [] };
  const seen = new Set<string>();
  for (const d of found) {
    if (seen.has(d.uuid)) continue; // virsh never lists a uuid twice; be safe anyway
    seen.add(d.uuid);
    const k = byUuid.get(d.uuid);
    if (!k) plan.added.push(d);
    else if (same(k, d)) plan.unchangedIds.push(k.id);
    else plan.updated.push({ id: k.id, vm: d });
  }
  for (const k of known) {
    if (k.present && !seen.has(k.uuid) && !unreadable.has(k.uuid)) plan.disappearedIds.push(k.id);
  }
  return plan;
}
