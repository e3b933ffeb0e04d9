/**
 * What a backup needs to know about a VM, read from the inventory tables: the VM row,
 * its host, the policy (explicit, or its pool's) and that policy's storage.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db/database.js';
import { toBool } from '../db/errors.js';
import type { HostTable, PolicyTable, StorageTable, VirtualMachineTable } from '../db/schema.js';
import { conflict, notFound } from '../errors.js';
import { repositoryPath } from './naming.js';

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
    await this.checkSharedName(vm, host, storage);
    return { vm, host, policy, storage };
  }

  /**
   * VMs of one name (on different hosts) share `<storage>/<vm name>`, BackROLL's layout, which is
   * kept. Only one of them may use it: the VM its owner record names, or, before there is one (new
   * or BackROLL repository), the VM the inventory has known longest. The others are refused
   * (BACKUP.VM_NAME_SHARED), naming the VM that has the repository and how to resolve it: else one
   * VM's backups and retention would mix with the other's restore points.
   */
  private async checkSharedName(vm: VirtualMachineTable, host: HostTable, storage: StorageTable): Promise<void> {
    const rows = await this.db
      .selectFrom('virtual_machines as v')
      .innerJoin('hosts as h', 'h.id', 'v.host_id')
      .leftJoin('pools as p', 'p.id', 'h.pool_id')
      .leftJoin('policies as pol', 'pol.id', 'p.policy_id')
      .select(['v.id', 'v.uuid', 'v.created_at', 'v.present', 'h.name as host_name', 'pol.storage_id'])
      .where('v.name', '=', vm.name)
      .where('v.id', '!=', vm.id)
      .execute();
    const others = rows.filter((o) => toBool(o.present) && o.uuid.toLowerCase() !== vm.uuid.toLowerCase() && (o.storage_id === null || o.storage_id === storage.id));
    if (others.length === 0) return;
    let repo: string;
    try {
      repo = repositoryPath(storage.path, vm.name);
    } catch {
      return; // the backup refuses the name itself
    }
    const owner = await fs.readFile(path.join(repo, 'backroll-vm.json'), 'utf8').then(
      (t) => (JSON.parse(t) as { vmUuid?: string }).vmUuid?.toLowerCase() ?? null,
      () => null,
    );
    if (owner === vm.uuid.toLowerCase()) return;
    let holder = owner === null ? undefined : others.find((o) => o.uuid.toLowerCase() === owner);
    if (owner === null) {
      const first = [...others, { id: vm.id, uuid: vm.uuid, created_at: vm.created_at, host_name: host.name }].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id))[0]!;
      if (first.id === vm.id) return;
      holder = others.find((o) => o.id === first.id);
    }
    if (!holder) return; // owned by a VM not in the inventory: the repository store refuses it (BACKUP.REPOSITORY_OWNED_BY_OTHER_VM)
    throw conflict(
      'BACKUP.VM_NAME_SHARED',
      `VM ${JSON.stringify(vm.name)} on host ${host.name} has the same name as VM ${JSON.stringify(vm.name)} (uuid ${holder.uuid}) on host ${holder.host_name}, ` +
        `whose backups ${owner === null ? 'get' : 'are in'} the repository ${repo} (one repository per VM name, <storage>/<vm name>, as in BackROLL): this VM is not backed up there. ` +
        `Rename one of the two VMs (virsh domrename; the renamed VM gets its own repository), or, if the VM on ${holder.host_name} no longer exists, refresh that host's inventory`,
      { vmId: vm.id, repository: repo, otherVmId: holder.id, otherVmUuid: holder.uuid, otherHost: holder.host_name },
    );
  }

  /** The present CloudStack system VMs of the pool's connected hosts (never backed up). */
  async systemVmsOfPool(poolId: string): Promise<Array<{ vm: VirtualMachineTable; host: HostTable }>> {
    const rows = await this.db
      .selectFrom('virtual_machines as v')
      .innerJoin('hosts as h', 'h.id', 'v.host_id')
      .selectAll('v')
      .where('h.pool_id', '=', poolId)
      .where('h.connection_state', '=', 'connected')
      .where('v.system_vm', '=', 1)
      .where('v.present', '=', 1)
      .orderBy('v.name')
      .execute();
    const out: Array<{ vm: VirtualMachineTable; host: HostTable }> = [];
    for (const vm of rows) out.push({ vm, host: await this.host(vm.host_id) });
    return out;
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
