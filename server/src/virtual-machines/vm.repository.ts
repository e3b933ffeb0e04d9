import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { fromBool, parseJson, toBool } from '../db/errors.js';
import type { PageRequest, PageResult } from '../db/page.js';
import type { VirtualMachineTable } from '../db/schema.js';
import type { ConnectionState } from '../hosts/host.repository.js';
import { parseVmInfo } from '../cloudstack/cloudstack-vm.rules.js';
import type { DiscoveredVm, InventoryPlan, KnownVm, VmDisk } from './inventory.rules.js';

/** A VM of the inventory cache, with what the list shows of its host. */
export interface VmRecord extends KnownVm {
  hostId: string;
  lastSeenAt: string;
  host: { id: string; name: string; poolId: string; connectionState: ConnectionState; lastSeenAt: string | null };
  createdAt: string;
  updatedAt: string;
}

export interface VmFilter {
  hostId?: string;
  poolId?: string;
  state?: string;
  /** Substring of the name, case-insensitive. */
  name?: string;
  /** Include CloudStack system VMs; default false. */
  includeSystem?: boolean;
  /** Only present (true) or only disappeared (false) VMs; default both. */
  present?: boolean;
}

const known = (r: VirtualMachineTable): KnownVm => ({
  id: r.id,
  uuid: r.uuid,
  name: r.name,
  state: r.state,
  vcpus: r.vcpus,
  memoryBytes: Number(r.memory_bytes),
  disks: parseJson<VmDisk[]>(r.disks, []),
  cloudStackManaged: toBool(r.cloudstack_managed),
  systemVm: toBool(r.system_vm),
  cloudStack: parseVmInfo(r.cloudstack),
  present: toBool(r.present),
});

const content = (d: DiscoveredVm) => ({
  name: d.name,
  state: d.state,
  vcpus: d.vcpus,
  memory_bytes: d.memoryBytes,
  disks: JSON.stringify(d.disks),
  cloudstack_managed: fromBool(d.cloudStackManaged),
  system_vm: fromBool(d.systemVm),
  cloudstack: d.cloudStack ? JSON.stringify(d.cloudStack) : null,
  present: 1,
});

/** Rows per statement for batched inserts and `in (…)` lists (far below every dialect's limits). */
const CHUNK = 200;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

export class VmRepository {
  constructor(private readonly db: Db) {}

  /** Every VM the inventory knows on the host, present or not. */
  async knownOnHost(hostId: string): Promise<KnownVm[]> {
    const rows = await this.db.selectFrom('virtual_machines').selectAll().where('host_id', '=', hostId).execute();
    return rows.map(known);
  }

  /** Applies a refresh of one host in one transaction. */
  async apply(hostId: string, plan: InventoryPlan, now: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      for (const part of chunks(plan.added)) {
        await trx
          .insertInto('virtual_machines')
          .values(part.map((d) => ({ id: randomUUID(), host_id: hostId, uuid: d.uuid, ...content(d), last_seen_at: now, created_at: now, updated_at: now })))
          .execute();
      }
      for (const u of plan.updated) {
        await trx.updateTable('virtual_machines').set({ ...content(u.vm), last_seen_at: now, updated_at: now }).where('id', '=', u.id).execute();
      }
      for (const ids of chunks(plan.unchangedIds)) {
        await trx.updateTable('virtual_machines').set({ last_seen_at: now }).where('id', 'in', ids).execute();
      }
      for (const ids of chunks(plan.disappearedIds)) {
        await trx.updateTable('virtual_machines').set({ present: 0, updated_at: now }).where('id', 'in', ids).execute();
      }
    });
  }

  /**
   * Per uuid, the pool host whose inventory row of it was seen last (where a VM CloudStack
   * stopped last ran), and the pool's hosts by name.
   */
  async poolPlacement(poolId: string, uuids: readonly string[]): Promise<{ lastHostOf: Map<string, string>; hostIds: string[] }> {
    const hostIds = (await this.db.selectFrom('hosts').select(['id']).where('pool_id', '=', poolId).orderBy('name').orderBy('id').execute()).map((h) => h.id);
    const lastHostOf = new Map<string, string>();
    for (const part of chunks(uuids.map((u) => u.toLowerCase()))) {
      if (part.length === 0 || hostIds.length === 0) continue;
      const rows = await this.db
        .selectFrom('virtual_machines')
        .select(['uuid', 'host_id', 'last_seen_at'])
        .where('uuid', 'in', part)
        .where('host_id', 'in', hostIds)
        .orderBy('last_seen_at', 'desc')
        .execute();
      for (const r of rows) if (!lastHostOf.has(r.uuid)) lastHostOf.set(r.uuid, r.host_id);
    }
    return { lastHostOf, hostIds };
  }

  async findById(id: string): Promise<VmRecord | undefined> {
    const row = await this.withHost(this.joined().where('vm.id', '=', id)).executeTakeFirst();
    return row && this.toRecord(row);
  }

  /**
   * The VM with this libvirt uuid: its present row first, else the one seen last (a VM
   * that moved between hosts has one row per host).
   */
  async findByUuid(uuid: string): Promise<VmRecord | undefined> {
    const row = await this.withHost(this.joined().where('vm.uuid', '=', uuid.toLowerCase()))
      .orderBy('vm.present', 'desc')
      .orderBy('vm.last_seen_at', 'desc')
      .executeTakeFirst();
    return row && this.toRecord(row);
  }

  async list(page: PageRequest, f: VmFilter = {}): Promise<PageResult<VmRecord>> {
    let q = this.joined();
    if (f.hostId) q = q.where('vm.host_id', '=', f.hostId);
    if (f.poolId) q = q.where('h.pool_id', '=', f.poolId);
    if (f.state) q = q.where('vm.state', '=', f.state);
    if (!f.includeSystem) q = q.where('vm.system_vm', '=', 0);
    if (f.present !== undefined) q = q.where('vm.present', '=', fromBool(f.present));
    if (f.name) {
      // `!` as the escape character: a backslash means different things in each dialect's literals.
      const pattern = `%${f.name.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;
      q = q.where(sql<boolean>`lower(${sql.ref('vm.name')}) like ${pattern} escape '!'`);
    }
    const count = await q.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
    const rows = await this.withHost(q).orderBy('vm.name').orderBy('h.name').orderBy('vm.id').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map((r) => this.toRecord(r)), total: Number(count?.n ?? 0), limit: page.limit, offset: page.offset };
  }

  private joined() {
    return this.db.selectFrom('virtual_machines as vm').innerJoin('hosts as h', 'h.id', 'vm.host_id');
  }

  private withHost(q: ReturnType<VmRepository['joined']>) {
    return q
      .selectAll('vm')
      .select(['h.name as host_name', 'h.pool_id as host_pool_id', 'h.connection_state as host_connection_state', 'h.last_seen_at as host_last_seen_at']);
  }

  private toRecord(r: VirtualMachineTable & { host_name: string; host_pool_id: string; host_connection_state: string; host_last_seen_at: string | null }): VmRecord {
    return {
      ...known(r),
      hostId: r.host_id,
      lastSeenAt: r.last_seen_at,
      host: { id: r.host_id, name: r.host_name, poolId: r.host_pool_id, connectionState: r.host_connection_state as ConnectionState, lastSeenAt: r.host_last_seen_at },
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }
}
