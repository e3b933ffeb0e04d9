/** What restores read from the database: the VM, its host, the restore point and its storage. */
import type { Db } from '../db/database.js';
import { parseJson, toBool } from '../db/errors.js';
import { parseVmInfo, type CloudStackVmInfo } from '../cloudstack/cloudstack-vm.rules.js';

export interface RestoreVm {
  id: string;
  hostId: string;
  uuid: string;
  name: string;
  /** A CloudStack instance (SMBIOS or the connector): never stopped or started with virsh. */
  cloudStackManaged?: boolean;
  /** What the pool's connector said at the last inventory refresh. */
  cloudStack?: CloudStackVmInfo | null;
}
export interface RestoreHost {
  id: string;
  name: string;
  libvirtUri: string;
  poolId?: string;
}
export interface RestorePointRow {
  id: string;
  vmId: string;
  storageId: string;
  storagePath: string;
  repository: string;
  epoch: number;
  originalSize: number | null;
  /** The archives the restore point recorded when it was made (or indexed): its manifest. */
  archives?: string[];
  /** The disks it recorded (target, path, archive, backing chain); empty for BackROLL restore points found in borg. */
  disks?: Array<{ target: string; path: string; archive: string; backingChain?: string[] }>;
}

export interface RestoreLookup {
  vm(id: string): Promise<RestoreVm | undefined>;
  host(id: string): Promise<RestoreHost | undefined>;
  restorePoint(vmId: string, id: string): Promise<RestorePointRow | undefined>;
}

export class RestoreRepository implements RestoreLookup {
  constructor(private readonly db: Db) {}

  async vm(id: string): Promise<RestoreVm | undefined> {
    const r = await this.db.selectFrom('virtual_machines').select(['id', 'host_id', 'uuid', 'name', 'cloudstack_managed', 'cloudstack']).where('id', '=', id).executeTakeFirst();
    return r && { id: r.id, hostId: r.host_id, uuid: r.uuid, name: r.name, cloudStackManaged: toBool(r.cloudstack_managed), cloudStack: parseVmInfo(r.cloudstack) };
  }

  async host(id: string): Promise<RestoreHost | undefined> {
    const r = await this.db.selectFrom('hosts').select(['id', 'name', 'libvirt_uri', 'pool_id']).where('id', '=', id).executeTakeFirst();
    return r && { id: r.id, name: r.name, libvirtUri: r.libvirt_uri, poolId: r.pool_id };
  }

  async restorePoint(vmId: string, id: string): Promise<RestorePointRow | undefined> {
    const r = await this.db
      .selectFrom('restore_points as rp')
      .innerJoin('storages as s', 's.id', 'rp.storage_id')
      .select(['rp.id', 'rp.vm_id', 'rp.storage_id', 's.path as storage_path', 'rp.repository', 'rp.epoch', 'rp.original_size', 'rp.archives', 'rp.disks'])
      .where('rp.id', '=', id)
      .where('rp.vm_id', '=', vmId)
      .executeTakeFirst();
    return (
      r && {
        id: r.id,
        vmId: r.vm_id,
        storageId: r.storage_id,
        storagePath: r.storage_path,
        repository: r.repository,
        epoch: Number(r.epoch),
        originalSize: r.original_size === null ? null : Number(r.original_size),
        archives: parseJson<string[]>(r.archives, []),
        disks: parseJson<NonNullable<RestorePointRow['disks']>>(r.disks, []),
      }
    );
  }
}
