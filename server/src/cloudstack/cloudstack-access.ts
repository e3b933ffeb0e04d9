/**
 * Backroll's side of a pool's CloudStack connector: the client of the pool of a host, the
 * instance CloudStack knows by a VM's uuid, and the files of a VM's volumes on the primary
 * storage (for a VM CloudStack stopped, which libvirt no longer has). Paths are built from
 * CloudStack's answers only through the strict rules of cloudstack-vm.rules.ts, then checked on
 * this worker: a regular file (no symlink) directly inside the pool's directory.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { CloudStackErrorCode, type CloudStackClient, type CsStoragePool, type CsVirtualMachine } from '../adapters/cloudstack/cloudstack-client.js';
import type { DomainDisk } from '../adapters/libvirt/domain-xml.js';
import type { Db } from '../db/database.js';
import { AppError } from '../errors.js';
import { CloudStackVmErrorCode, isTransitional, poolMountPath, volumeFile, volumeFormat, volumeTarget } from './cloudstack-vm.rules.js';

export type ClientOfConnector = (connectorId: string) => Promise<CloudStackClient>;

export interface VolumeDisk {
  target: string;
  path: string;
  format: 'qcow2' | 'raw';
  volumeId: string;
  volumeName: string;
  type: string;
  /** CloudStack's virtual size of the volume, bytes. */
  sizeBytes: number | null;
}

export class CloudStackAccess {
  constructor(
    private readonly db: Db,
    private readonly clientOf: ClientOfConnector,
  ) {}

  /** The client of the pool's connector; null when the pool has none. */
  async clientForPool(poolId: string): Promise<CloudStackClient | null> {
    const pool = await this.db.selectFrom('pools').select(['connector_id']).where('id', '=', poolId).executeTakeFirst();
    return pool?.connector_id ? this.clientOf(pool.connector_id) : null;
  }

  /** Like clientForPool, but a pool without a connector is an error that says what to do. */
  async requireClient(poolId: string, vmName: string): Promise<CloudStackClient> {
    const c = await this.clientForPool(poolId);
    if (!c) {
      throw new AppError('conflict', CloudStackVmErrorCode.NO_CONNECTOR, `VM ${JSON.stringify(vmName)} is a CloudStack VM that libvirt no longer has (stopped by CloudStack), and its pool has no CloudStack connector: set the pool's connectorId`, { poolId });
    }
    return c;
  }

  /** The instance of that id, or undefined when CloudStack does not know it (any more). */
  async instance(client: CloudStackClient, id: string, signal?: AbortSignal): Promise<CsVirtualMachine | undefined> {
    try {
      return (await client.listVirtualMachines({ id }, { signal })).find((v) => v.id.toLowerCase() === id.toLowerCase());
    } catch (err) {
      // CloudStack answers an unknown id with 431 (invalid parameter value).
      if (err instanceof AppError && err.code === CloudStackErrorCode.API_ERROR && err.details?.errorcode === 431) return undefined;
      throw err;
    }
  }

  /** The instance, which must exist and be in no transition (Starting, Stopping, …). */
  async settledInstance(client: CloudStackClient, id: string, vmName: string, signal?: AbortSignal): Promise<CsVirtualMachine> {
    const vm = await this.instance(client, id, signal);
    if (!vm) throw new AppError('not_found', CloudStackVmErrorCode.VM_UNKNOWN, `CloudStack (${client.where}) has no instance ${id} (VM ${JSON.stringify(vmName)}): it was expunged, or the connector's account cannot see it`, { id });
    if (isTransitional(String(vm.state))) {
      throw new AppError('conflict', CloudStackVmErrorCode.VM_BUSY, `CloudStack instance ${JSON.stringify(vm.instancename ?? vm.name)} is ${vm.state}: retry when CloudStack has finished`, { id, state: vm.state });
    }
    return vm;
  }

  /**
   * The volumes of the instance as files on the primary storage (ROOT first, then by device id).
   * With `check`, each file is checked on this worker (regular file inside the pool directory).
   */
  async volumeDisks(client: CloudStackClient, vm: CsVirtualMachine, opts: { check: boolean; signal?: AbortSignal }): Promise<VolumeDisk[]> {
    const volumes = (await client.listVolumes({ virtualmachineid: vm.id }, { signal: opts.signal })).filter((v) => v.virtualmachineid === undefined || String(v.virtualmachineid).toLowerCase() === vm.id.toLowerCase());
    if (volumes.length === 0) throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `CloudStack lists no volume of instance ${vm.id}`, { id: vm.id });
    const pools = new Map<string, CsStoragePool>();
    const out: VolumeDisk[] = [];
    for (const v of [...volumes].sort((a, b) => Number(a.type !== 'ROOT') - Number(b.type !== 'ROOT') || Number(a.deviceid ?? 0) - Number(b.deviceid ?? 0))) {
      if (typeof v.storageid !== 'string') throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `volume ${v.id} of instance ${vm.id} is on no primary storage (state ${String(v.state)})`, { volumeId: v.id });
      let pool = pools.get(v.storageid);
      if (!pool) {
        pool = (await client.listStoragePools({ id: v.storageid }, { signal: opts.signal })).find((p) => p.id === v.storageid);
        if (!pool) throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `CloudStack lists no primary storage ${v.storageid} (of volume ${v.id})`, { volumeId: v.id, storagePoolId: v.storageid });
        pools.set(v.storageid, pool);
      }
      const dir = poolMountPath(pool);
      const file = volumeFile(dir, v);
      if (opts.check) await checkVolumeFile(dir, file, v.id);
      out.push({ target: volumeTarget(v, vm), path: file, format: volumeFormat(v), volumeId: v.id, volumeName: String(v.name), type: String(v.type), sizeBytes: typeof v.size === 'number' ? v.size : null });
    }
    const targets = new Set(out.map((d) => d.target));
    if (targets.size !== out.length) throw new AppError('conflict', CloudStackVmErrorCode.VOLUME_UNSUPPORTED, `two volumes of instance ${vm.id} map to the same guest device`, { id: vm.id });
    return out;
  }
}

/** The file must be a regular file (not a symlink) whose real directory is the pool's real directory. */
export async function checkVolumeFile(poolDir: string, file: string, volumeId: string): Promise<void> {
  const bad = (why: string) => new AppError('conflict', CloudStackVmErrorCode.VOLUME_PATH_INVALID, `volume ${volumeId}: ${file} ${why}; it is not read`, { volumeId, path: file });
  let st;
  try {
    st = await fs.lstat(file);
  } catch (err) {
    throw new AppError('unavailable', 'VM.DISK_NOT_ACCESSIBLE', `this worker cannot read volume ${volumeId} at ${file} (${(err as NodeJS.ErrnoException).code}): mount the primary storage on the worker at the same path as on the KVM hosts`, { volumeId, path: file });
  }
  if (!st.isFile()) throw bad(st.isSymbolicLink() ? 'is a symbolic link' : 'is not a regular file');
  const [realDir, realPool] = await Promise.all([fs.realpath(path.dirname(file)), fs.realpath(poolDir)]);
  if (realDir !== realPool) throw bad(`is not inside the pool directory ${poolDir}`);
}

/** A volume as the disk of a domain definition, for the backup engine's shut-off path. */
export function asDomainDisk(d: VolumeDisk): DomainDisk {
  return { target: d.target, bus: null, type: 'file', path: d.path, sourceDescription: null, format: d.format, readonly: false, shareable: false, backingChain: [], backingChainKnown: false };
}
