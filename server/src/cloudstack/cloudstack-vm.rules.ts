/**
 * Pure rules about CloudStack VMs: what the inventory keeps of CloudStack's answer, how a
 * libvirt domain is matched to a CloudStack instance, where a volume's file is on a KVM host,
 * and which CloudStack states Backroll can work with.
 */
import path from 'node:path';
import type { CsStoragePool, CsVirtualMachine, CsVolume } from '../adapters/cloudstack/cloudstack-client.js';
import { AppError } from '../errors.js';

/** What the inventory stores about a VM CloudStack knows (`virtual_machines.cloudstack`, JSON). */
export interface CloudStackVmInfo {
  /** CloudStack's instance id (its uuid; the libvirt domain uuid of a running instance). */
  id: string;
  /** The libvirt domain name, e.g. `i-2-12-VM`. */
  instanceName: string | null;
  displayName: string | null;
  account: string | null;
  domain: string | null;
  project: string | null;
  /** The state as CloudStack sees it: Running, Stopped, Starting, Stopping, … */
  state: string;
  /** Stopped by CloudStack and therefore undefined from libvirt: known through the connector only. */
  stoppedOutsideLibvirt: boolean;
}

/** Stable error codes of the CloudStack side of backups and restores. */
export const CloudStackVmErrorCode = {
  SYSTEM_VM: 'VM.SYSTEM_VM',
  NO_CONNECTOR: 'CLOUDSTACK.NO_CONNECTOR',
  VM_UNKNOWN: 'CLOUDSTACK.VM_UNKNOWN',
  VM_BUSY: 'CLOUDSTACK.VM_BUSY',
  VM_STARTED: 'CLOUDSTACK.VM_STARTED_DURING_BACKUP',
  VOLUME_UNSUPPORTED: 'CLOUDSTACK.VOLUME_UNSUPPORTED',
  VOLUME_PATH_INVALID: 'CLOUDSTACK.VOLUME_PATH_INVALID',
} as const;

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

export function vmInfo(vm: CsVirtualMachine, stoppedOutsideLibvirt: boolean): CloudStackVmInfo {
  return {
    id: vm.id.toLowerCase(),
    instanceName: str(vm.instancename),
    displayName: str(vm.displayname) ?? str(vm.name),
    account: str(vm.account),
    domain: str(vm.domain),
    project: str(vm.project),
    state: String(vm.state),
    stoppedOutsideLibvirt,
  };
}

/** The stored JSON, or null when absent or not ours (never throws on a bad row). */
export function parseVmInfo(text: string | null | undefined): CloudStackVmInfo | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as Partial<CloudStackVmInfo>;
    return typeof v.id === 'string' && typeof v.state === 'string' ? (v as CloudStackVmInfo) : null;
  } catch {
    return null;
  }
}

/**
 * The CloudStack instance of a libvirt domain: CloudStack gives the domain its instance's uuid
 * (and the same uuid in the SMBIOS system entry); the instance name is the fallback for an
 * instance whose uuid differs (imported VMs).
 */
export function matchInstance(domain: { uuid: string; name: string }, byId: ReadonlyMap<string, CsVirtualMachine>, byInstanceName: ReadonlyMap<string, CsVirtualMachine>): CsVirtualMachine | undefined {
  return byId.get(domain.uuid.toLowerCase()) ?? byInstanceName.get(domain.name);
}

export function indexInstances(vms: readonly CsVirtualMachine[]): { byId: Map<string, CsVirtualMachine>; byInstanceName: Map<string, CsVirtualMachine> } {
  const byId = new Map<string, CsVirtualMachine>();
  const byInstanceName = new Map<string, CsVirtualMachine>();
  for (const vm of vms) {
    if (typeof vm.hypervisor === 'string' && vm.hypervisor !== 'KVM') continue;
    byId.set(vm.id.toLowerCase(), vm);
    if (typeof vm.instancename === 'string') byInstanceName.set(vm.instancename, vm);
  }
  return { byId, byInstanceName };
}

/** A CloudStack state in which the VM is off and its volumes are not in use. */
export const isStopped = (state: string): boolean => state === 'Stopped';

/** CloudStack's states while it changes the VM: nothing may be done to it meanwhile. */
export const isTransitional = (state: string): boolean => ['Starting', 'Stopping', 'Migrating', 'Expunging'].includes(state);

/**
 * The guest device of a volume as CloudStack's KVM agent names it: the bus prefix of the
 * controller (virtio → vd, scsi → sd, ide → hd) and the letter of its device id (0 → a).
 */
export function volumeTarget(volume: CsVolume, vm: Pick<CsVirtualMachine, 'details'>): string {
  const id = Number(volume.deviceid);
  if (!Number.isInteger(id) || id < 0 || id > 25) {
    throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `volume ${volume.id} has device id ${String(volume.deviceid)}: Backroll cannot name its guest device`, { volumeId: volume.id });
  }
  const controller = (volume.type === 'ROOT' ? vm.details?.rootDiskController : vm.details?.dataDiskController) ?? 'virtio';
  const prefix = controller === 'scsi' || controller === 'virtio-scsi' ? 'sd' : controller === 'ide' ? 'hd' : 'vd';
  return `${prefix}${String.fromCharCode(97 + id)}`;
}

/**
 * Where a primary storage pool is on a KVM host: NFS pools are mounted by the agent at
 * `/mnt/<pool id>`; local (Filesystem) and SharedMountPoint pools are their path.
 * Other pool types (RBD, CLVM, iSCSI, …) hold no files Backroll can read.
 */
export function poolMountPath(pool: CsStoragePool): string {
  const bad = (why: string) => new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `primary storage ${JSON.stringify(pool.name)} (${pool.type}) ${why}`, { storagePoolId: pool.id, type: pool.type });
  let dir: string | null;
  switch (pool.type) {
    case 'NetworkFilesystem':
      if (!/^[0-9a-f-]{36}$/i.test(pool.id)) throw bad(`has the id ${JSON.stringify(pool.id)}, not a uuid`);
      dir = `/mnt/${pool.id}`;
      break;
    case 'Filesystem':
    case 'SharedMountPoint':
      dir = typeof pool.path === 'string' ? pool.path : null;
      break;
    default:
      throw bad('is not a file-based pool: Backroll backs up file volumes (NFS, local, shared mount point)');
  }
  const trimmed = dir?.replace(/(.)\/+$/, '$1') ?? '';
  if (!trimmed || !path.isAbsolute(trimmed) || trimmed.split('/').includes('..') || path.normalize(trimmed) !== trimmed || trimmed.length > 4096) {
    throw bad(`has the path ${JSON.stringify(dir)}, which is not a plain absolute path`);
  }
  return trimmed;
}

/** A volume's image format from CloudStack's answer; anything but QCOW2 and RAW is refused. */
export function volumeFormat(volume: CsVolume): 'qcow2' | 'raw' {
  const f = String(volume.format ?? '').toUpperCase();
  if (f === 'QCOW2') return 'qcow2';
  if (f === 'RAW') return 'raw';
  throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `volume ${volume.id} has the format ${JSON.stringify(volume.format ?? null)}: Backroll backs up QCOW2 and RAW volumes`, { volumeId: volume.id, format: volume.format ?? null });
}

/**
 * The file of a volume inside its pool's directory: `<pool dir>/<volume path>`, where the volume
 * path is one file name (CloudStack's volume uuid) — never a path that leaves the pool.
 */
export function volumeFile(poolDir: string, volume: CsVolume): string {
  const p = volume.path;
  const bad = (why: string) =>
    new AppError('conflict', CloudStackVmErrorCode.VOLUME_PATH_INVALID, `volume ${volume.id} has the path ${JSON.stringify(typeof p === 'string' ? p.slice(0, 200) : (p ?? null))}: ${why}; it is not read`, { volumeId: volume.id });
  if (typeof p !== 'string' || p === '') throw bad('no path');
  let name = p;
  // Some CloudStack versions answer the full path on the host.
  if (p.startsWith('/')) {
    if (path.dirname(p) !== poolDir) throw bad(`it is not a file directly inside the pool directory ${poolDir}`);
    name = path.basename(p);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(name) || name.includes('..')) throw bad('not a plain file name');
  return path.join(poolDir, name);
}
