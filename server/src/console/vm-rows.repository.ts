/**
 * The console's VM table and protection counts, computed in SQL over the inventory, the
 * latest backup task of each VM and its restore points. Portable SQL (SQLite, PostgreSQL,
 * MySQL/MariaDB): scalar subqueries with LIMIT for "the latest task", a grouped derived
 * table for restore-point sums, ISO timestamps compared as strings.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db/database.js';
import { parseJson } from '../db/errors.js';
import { TERMINAL_STATES } from '../tasks/task.state.js';
import type { Protection } from './protection.js';

export const VM_SORTS = ['name', 'host', 'pool', 'policy', 'state', 'lastBackup', 'restorePoints', 'size', 'protection'] as const;
export type VmSort = (typeof VM_SORTS)[number];

const SORT_COLUMN: Record<VmSort, string> = {
  name: 'r.name',
  host: 'r.host_name',
  pool: 'r.pool_name',
  policy: 'r.policy_name',
  state: 'r.state',
  lastBackup: 'r.last_at',
  restorePoints: 'r.rp_count',
  size: 'r.rp_dedup',
  protection: 'r.protection',
};

export interface VmRowFilter {
  protection?: Protection[];
  failed?: boolean;
  hostId?: string;
  poolId?: string;
  policyId?: string;
  tag?: string;
  search?: string;
  includeSystem?: boolean;
  present?: boolean;
}

export interface VmRow {
  id: string;
  uuid: string;
  name: string;
  state: string;
  present: boolean;
  systemVm: boolean;
  cloudStackManaged: boolean;
  vcpus: number;
  memoryBytes: number;
  diskCount: number;
  host: { id: string; name: string; connectionState: string; tags: string[] };
  pool: { id: string; name: string };
  policy: { id: string; name: string; enabled: boolean };
  lastBackup: { taskId: string; state: string; at: string; errorCode: string | null } | null;
  lastRestorePointAt: string | null;
  protection: Protection;
  restorePoints: { count: number; originalBytes: number; deduplicatedBytes: number };
  running: { taskId: string; kind: string; percent: number | null } | null;
}

/** Per policy: the oldest restore point time that still protects (see protection.ts). */
export type Thresholds = ReadonlyMap<string, string>;

const BACKUP = 'vm.backup';

/** The protection of a row as a SQL CASE; thresholds per policy are bound parameters. */
function protectionCase(thresholds: Thresholds): RawBuilder<string> {
  const entries = [...thresholds.entries()];
  const threshold =
    entries.length === 0
      ? sql`${'9999'}`
      : sql`case pol.id ${sql.join(
          entries.map(([id, since]) => sql`when ${id} then ${since}`),
          sql` `,
        )} else ${'9999'} end`;
  return sql<string>`case
    when v.system_vm = 1 or v.present = 0 then 'excluded'
    when pol.enabled = 0 then 'noPolicy'
    when rp.last_at is null then 'unprotected'
    when (lt.state is null or lt.state = 'succeeded') and rp.last_at >= ${threshold} then 'protected'
    else 'atRisk' end`;
}

/** One row per VM with everything the table shows; filter and sort apply to its columns (alias r). */
function rowsQuery(thresholds: Thresholds): RawBuilder<unknown> {
  const terminal = sql.join(TERMINAL_STATES.map((s) => sql`${s}`));
  return sql`select
      v.id, v.uuid, v.name, v.state, v.present, v.system_vm, v.cloudstack_managed, v.vcpus, v.memory_bytes, v.disks,
      h.id as host_id, h.name as host_name, h.connection_state, h.tags as host_tags,
      p.id as pool_id, p.name as pool_name,
      pol.id as policy_id, pol.name as policy_name, pol.enabled as policy_enabled,
      lt.id as last_task_id, lt.state as last_state, coalesce(lt.finished_at, lt.created_at) as last_at, lt.error_code as last_error,
      rp.n as rp_count, rp.last_at as rp_last_at, rp.orig as rp_orig, rp.dedup as rp_dedup,
      ${protectionCase(thresholds)} as protection
    from (
      select vm.*,
        (select t.id from tasks t where t.target_id = vm.id and t.kind = ${BACKUP} and t.state in (${terminal}) order by t.created_at desc limit 1) as last_task_id
      from virtual_machines vm
    ) v
    join hosts h on h.id = v.host_id
    join pools p on p.id = h.pool_id
    join policies pol on pol.id = p.policy_id
    left join tasks lt on lt.id = v.last_task_id
    left join (
      select vm_id, count(*) as n, max(created_at) as last_at, sum(original_size) as orig, sum(deduplicated_size) as dedup
      from restore_points group by vm_id
    ) rp on rp.vm_id = v.id`;
}

function whereOf(filter: VmRowFilter): RawBuilder<unknown> {
  const conds: RawBuilder<unknown>[] = [];
  if (!filter.includeSystem) conds.push(sql`r.system_vm = 0`);
  if (filter.present !== undefined) conds.push(sql`r.present = ${filter.present ? 1 : 0}`);
  if (filter.protection && filter.protection.length > 0) conds.push(sql`r.protection in (${sql.join(filter.protection.map((p) => sql`${p}`))})`);
  if (filter.failed) conds.push(sql`r.last_state is not null and r.last_state <> 'succeeded'`);
  if (filter.hostId) conds.push(sql`r.host_id = ${filter.hostId}`);
  if (filter.poolId) conds.push(sql`r.pool_id = ${filter.poolId}`);
  if (filter.policyId) conds.push(sql`r.policy_id = ${filter.policyId}`);
  if (filter.tag) conds.push(sql`r.host_tags like ${`%${JSON.stringify(filter.tag).replace(/[%_!]/g, '!$&')}%`} escape '!'`);
  if (filter.search) conds.push(sql`lower(r.name) like ${`%${filter.search.toLowerCase().replace(/[%_!]/g, '!$&')}%`} escape '!'`);
  return conds.length === 0 ? sql`` : sql`where ${sql.join(conds, sql` and `)}`;
}

type RawRow = Record<string, unknown>;
const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function toRow(r: RawRow): VmRow {
  return {
    id: String(r.id),
    uuid: String(r.uuid),
    name: String(r.name),
    state: String(r.state),
    present: num(r.present) === 1,
    systemVm: num(r.system_vm) === 1,
    cloudStackManaged: num(r.cloudstack_managed) === 1,
    vcpus: num(r.vcpus),
    memoryBytes: num(r.memory_bytes),
    diskCount: parseJson<unknown[]>(str(r.disks), []).length,
    host: { id: String(r.host_id), name: String(r.host_name), connectionState: String(r.connection_state), tags: parseJson<string[]>(str(r.host_tags), []) },
    pool: { id: String(r.pool_id), name: String(r.pool_name) },
    policy: { id: String(r.policy_id), name: String(r.policy_name), enabled: num(r.policy_enabled) === 1 },
    lastBackup: r.last_task_id ? { taskId: String(r.last_task_id), state: String(r.last_state), at: String(r.last_at), errorCode: str(r.last_error) } : null,
    lastRestorePointAt: str(r.rp_last_at),
    protection: String(r.protection) as Protection,
    restorePoints: { count: num(r.rp_count), originalBytes: num(r.rp_orig), deduplicatedBytes: num(r.rp_dedup) },
    running: null,
  };
}

export class VmRowsRepository {
  constructor(private readonly db: Db) {}

  async page(
    thresholds: Thresholds,
    filter: VmRowFilter,
    sort: { by: VmSort; desc: boolean },
    page: { limit: number; offset: number },
  ): Promise<{ items: VmRow[]; total: number }> {
    const rows = rowsQuery(thresholds);
    const where = whereOf(filter);
    const col = sql.raw(SORT_COLUMN[sort.by]);
    const dir = sql.raw(sort.desc ? 'desc' : 'asc');
    // Missing values (never backed up…) last in both directions, the same on every database.
    const order = sql`case when ${col} is null then 1 else 0 end, ${col} ${dir}, r.name, r.id`;
    // The total comes with the page (a window count): the rows are computed once.
    const res = await sql<RawRow>`select r.*, count(*) over () as total_rows from (${rows}) r ${where} order by ${order} limit ${page.limit} offset ${page.offset}`.execute(this.db);
    let total = num(res.rows[0]?.total_rows);
    if (res.rows.length === 0 && page.offset > 0) total = num((await sql<{ n: number | string }>`select count(*) as n from (${rows}) r ${where}`.execute(this.db)).rows[0]?.n);
    const items = res.rows.map(toRow);
    // The task running on each VM of the page: few rows, read by state.
    if (items.length > 0) {
      const active = await this.db
        .selectFrom('tasks')
        .select(['id', 'kind', 'target_id', 'progress_percent', 'created_at'])
        .where('state', 'in', ['running', 'queued'])
        .where('target_id', 'in', items.map((i) => i.id))
        .orderBy('created_at')
        .execute();
      const byVm = new Map(active.map((t) => [t.target_id, t]));
      for (const item of items) {
        const t = byVm.get(item.id);
        if (t) item.running = { taskId: t.id, kind: t.kind, percent: t.progress_percent === null ? null : Number(t.progress_percent) };
      }
    }
    return { items, total };
  }

  /** VMs by protection state (every VM: excluded ones are counted apart). */
  async protectionCounts(thresholds: Thresholds): Promise<Record<Protection, number>> {
    const res = await sql<{ protection: Protection; n: number | string }>`select r.protection, count(*) as n from (${rowsQuery(thresholds)}) r group by r.protection`.execute(this.db);
    const out: Record<Protection, number> = { protected: 0, atRisk: 0, unprotected: 0, noPolicy: 0, excluded: 0 };
    for (const row of res.rows) out[row.protection] = num(row.n);
    return out;
  }
}
