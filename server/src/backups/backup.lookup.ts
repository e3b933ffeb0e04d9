/**
 * What a backup needs to know about a VM, read from the inventory tables: the VM row,
 * its host, the policy (explicit, or its pool's) and that policy's storage.
 */
import type { Db } from '../db/database.js';
import { toBool } from '../db/errors.js';
import type { HostTable, PolicyTable, StorageTable, VirtualMachineTable } from '../db/schema.js';
import { notFound } from '../errors.js';

export interface BackupTarget {
  vm: VirtualMachineTable;
  host: HostTable;
  policy: PolicyTable;
  storage: StorageTable;
}

export class BackupLookup {
  constructor(private readonly db: Db) {}

  async vm(vmId: string): Promise<VirtualMachineTable> {
    const vm = await this.db.selectFrom('virtual_machines').selectAll().where('id', '=', vmId).executeTakeFirst();
    if (!vm) throw notFound('VM.NOT_FOUND', `no virtual machine with id ${vmId}`, { id: vmId });
    return vm;
  }

  async host(hostId: string): Promise<HostTable> {
    const host = await this.db.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirst();
    if (!host) throw notFound('HOST.NOT_FOUND', `no host with id ${hostId}`, { id: hostId });
    return host;
  }

  async pool(poolId: string): Promise<{ id: string; name: string; policy_id: string }> {
    const pool = await this.db.selectFrom('pools').select(['id', 'name', 'policy_id']).where('id', '=', poolId).executeTakeFirst();
    if (!pool) throw notFound('POOL.NOT_FOUND', `no pool with id ${poolId}; list them with GET /api/v2/pools`, { id: poolId });
    return pool;
  }

  async target(vmId: string, policyId?: string | null): Promise<BackupTarget> {
    const vm = await this.vm(vmId);
    const host = await this.host(vm.host_id);
    let pid = policyId ?? null;
    if (!pid) {
      const pool = await this.db.selectFrom('pools').select(['policy_id']).where('id', '=', host.pool_id).executeTakeFirst();
      pid = pool?.policy_id ?? null;
    }
    const policy = pid ? await this.db.selectFrom('policies').selectAll().where('id', '=', pid).executeTakeFirst() : undefined;
    if (!policy) throw notFound('POLICY.NOT_FOUND', `no backup policy for VM ${vm.name} (pool of host ${host.name})`, { vmId, policyId: pid });
    const storage = await this.db.selectFrom('storages').selectAll().where('id', '=', policy.storage_id).executeTakeFirst();
    if (!storage) throw notFound('STORAGE.NOT_FOUND', `the storage of policy ${policy.name} does not exist`, { storageId: policy.storage_id });
    return { vm, host, policy, storage };
  }

  /** Backup-eligible VMs of the pool's connected hosts: present, not a CloudStack system VM. */
  async eligibleVmsOfPool(poolId: string): Promise<Array<{ vm: VirtualMachineTable; host: HostTable }>> {
    const hosts = await this.db.selectFrom('hosts').selectAll().where('pool_id', '=', poolId).where('connection_state', '=', 'connected').orderBy('name').execute();
    const out: Array<{ vm: VirtualMachineTable; host: HostTable }> = [];
    for (const host of hosts) {
      const vms = await this.db.selectFrom('virtual_machines').selectAll().where('host_id', '=', host.id).orderBy('name').execute();
      for (const vm of vms) if (toBool(vm.present) && !toBool(vm.system_vm)) out.push({ vm, host });
    }
    return out;
  }
}
