/**
 * The parts of CloudStack's JSON answers Backroll reads (CloudStack 4.x, `response=json`).
 * CloudStack adds fields over versions; the index signature keeps them, typed as unknown.
 */

export interface CsZone {
  id: string;
  name: string;
  allocationstate?: string;
  networktype?: string;
  [field: string]: unknown;
}

export interface CsCapabilities {
  cloudstackversion: string;
  [field: string]: unknown;
}

export type CsVmState = 'Running' | 'Stopped' | 'Starting' | 'Stopping' | 'Migrating' | 'Error' | 'Destroyed' | 'Expunging' | 'Shutdown' | (string & {});

export interface CsVirtualMachine {
  id: string;
  /** CloudStack's host name of the instance. */
  name: string;
  displayname?: string;
  /** The libvirt domain name on the KVM host, e.g. `i-2-12-VM` (admins only). */
  instancename?: string;
  state: CsVmState;
  account?: string;
  domain?: string;
  domainid?: string;
  project?: string;
  projectid?: string;
  hostid?: string;
  hostname?: string;
  zoneid?: string;
  zonename?: string;
  hypervisor?: string;
  /** The VM's settings map (rootDiskController, …). */
  details?: Record<string, string>;
  [field: string]: unknown;
}

export interface CsVolume {
  id: string;
  name: string;
  /** ROOT or DATADISK. */
  type: string;
  deviceid?: number;
  virtualmachineid?: string;
  vmname?: string;
  state?: string;
  size?: number;
  /** Name and id of the primary storage pool. */
  storage?: string;
  storageid?: string;
  /** The volume's file name (or path) inside the pool. */
  path?: string;
  format?: string;
  [field: string]: unknown;
}

export interface CsStoragePool {
  id: string;
  name: string;
  /** NetworkFilesystem, Filesystem, SharedMountPoint, RBD, … */
  type: string;
  path?: string;
  ipaddress?: string;
  state?: string;
  scope?: string;
  zoneid?: string;
  clusterid?: string;
  hypervisor?: string;
  [field: string]: unknown;
}
