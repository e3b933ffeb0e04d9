/**
 * The console's read models: the dashboard (one request, aggregates computed in SQL) and the
 * VM table. Policies are few: their protection thresholds and next runs come from their cron
 * schedules here, then go into the SQL as parameters.
 */
import { sql } from 'kysely';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { nextRuns } from '../policies/policy.rules.js';
import type { StorageService } from '../storages/storage.service.js';
import type { UsageRepository } from '../storages/usage.repository.js';
import { toTaskRecord } from '../tasks/task.repository.js';
import { toTaskView, type TaskView } from '../tasks/task.service.js';
import { TERMINAL_STATES } from '../tasks/task.state.js';
import { protectedSince, type Protection } from './protection.js';
import { dedupRatio, estimateFullAt, lastOfEachDay } from './usage-trend.js';
import { VmRowsRepository, type VmRow, type VmRowFilter, type VmSort } from './vm-rows.repository.js';

const DAY_MS = 86_400_000;
const n = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

interface PolicyInfo {
  id: string;
  name: string;
  schedule: string;
  timezone: string;
  enabled: boolean;
}

export interface VmTableRow extends VmRow {
  nextRunAt: string | null;
}

export class ConsoleService {
  private readonly rows: VmRowsRepository;

  constructor(
    readonly db: Db,
    private readonly storages: StorageService,
    private readonly usage: UsageRepository,
    private readonly clock: Clock,
  ) {
    this.rows = new VmRowsRepository(db);
  }

  private async policies(): Promise<PolicyInfo[]> {
    const rows = await this.db.selectFrom('policies').select(['id', 'name', 'schedule', 'timezone', 'enabled']).execute();
    return rows.map((r) => ({ id: r.id, name: r.name, schedule: r.schedule, timezone: r.timezone, enabled: n(r.enabled) === 1 }));
  }

  private thresholds(policies: PolicyInfo[], now: Date): Map<string, string> {
    return new Map(policies.map((p) => [p.id, protectedSince(p.schedule, p.timezone, now)]));
  }

  private nextRun(p: PolicyInfo, now: Date): string | null {
    if (!p.enabled) return null;
    const runs = nextRuns(p.schedule, p.timezone, now, 1);
    return runs.ok ? runs.value[0]!.toISOString() : null;
  }

  async vmTable(filter: VmRowFilter, sort: { by: VmSort; desc: boolean }, page: { limit: number; offset: number }): Promise<{ items: VmTableRow[]; total: number; limit: number; offset: number }> {
    const now = this.clock.now();
    const policies = await this.policies();
    const res = await this.rows.page(this.thresholds(policies, now), filter, sort, page);
    const next = new Map(policies.map((p) => [p.id, this.nextRun(p, now)]));
    return { items: res.items.map((r) => ({ ...r, nextRunAt: next.get(r.policy.id) ?? null })), total: res.total, ...page };
  }

  async dashboard() {
    const now = this.clock.now();
    const policies = await this.policies();
    const since = new Date(now.getTime() - 7 * DAY_MS).toISOString();
    const [protection, matrix, failingVms, hosts, running, storages, nextRuns, gettingStarted] = await Promise.all([
      this.rows.protectionCounts(this.thresholds(policies, now)),
      this.taskMatrix(since),
      this.failingVms(),
      this.hostIssues(),
      this.running(),
      this.storageCards(now),
      this.nextRuns(policies, now),
      this.gettingStarted(),
    ]);
    const total = Object.values(protection).reduce((a, b) => a + b, 0);
    return {
      generatedAt: now.toISOString(),
      protection: { ...protection, total },
      taskMatrix: matrix,
      issues: { failingVms, ...hosts },
      running,
      storages,
      nextRuns,
      gettingStarted,
    };
  }

  private async taskMatrix(since: string) {
    const rows = await this.db
      .selectFrom('tasks')
      .where('created_at', '>=', since)
      .select((eb) => ['kind', 'state', eb.fn.countAll<number | string>().as('n')])
      .groupBy(['kind', 'state'])
      .execute();
    const cells = rows.map((r) => ({ kind: r.kind, state: r.state, count: n(r.n) })).sort((a, b) => a.kind.localeCompare(b.kind) || a.state.localeCompare(b.state));
    return {
      since,
      kinds: [...new Set(cells.map((c) => c.kind))],
      states: ['queued', 'running', 'succeeded', 'failed', 'partial', 'canceled', 'interrupted'],
      cells,
    };
  }

  /** VMs (present, not system VMs) among whose last 3 finished backups at least one did not succeed. */
  private async failingVms() {
    const terminal = sql.join(TERMINAL_STATES.map((s) => sql`${s}`));
    // The states of the 3 latest finished backups, each an index-ordered lookup (target_id, kind, created_at, state).
    // The LIMIT keeps the derived table from being flattened into the outer query (SQLite would
    // then run each lookup once per reference: a dozen times per VM instead of three).
    const nth = (n: number) =>
      sql`(select t.state from tasks t where t.target_id = v.id and t.kind = 'vm.backup' and t.state in (${terminal}) order by t.created_at desc limit 1 offset ${sql.lit(n)})`;
    const failed = (col: string) => sql`case when ${sql.ref(col)} is not null and ${sql.ref(col)} <> 'succeeded' then 1 else 0 end`;
    const res = await sql<{ id: string; name: string; host_id: string; host_name: string; failures: number | string }>`
      select x.id, x.name, x.host_id, x.host_name, ${failed('x.s1')} + ${failed('x.s2')} + ${failed('x.s3')} as failures from (
        select v.id, v.name, h.id as host_id, h.name as host_name, ${nth(0)} as s1, ${nth(1)} as s2, ${nth(2)} as s3
        from virtual_machines v join hosts h on h.id = v.host_id
        where v.present = 1 and v.system_vm = 0
        limit 1000000000
      ) x where (x.s1 is not null and x.s1 <> 'succeeded') or (x.s2 is not null and x.s2 <> 'succeeded') or (x.s3 is not null and x.s3 <> 'succeeded')
      order by failures desc, x.name limit 50`.execute(this.db);
    if (res.rows.length === 0) return [];
    const ids = res.rows.map((r) => r.id);
    // Their last 3 finished backups: one short index-ordered read per VM (at most 50), in parallel.
    const recent = await Promise.all(
      ids.map((vmId) =>
        this.db
          .selectFrom('tasks')
          .select(['id', 'state', 'created_at', 'finished_at', 'error_code'])
          .where('target_id', '=', vmId)
          .where('kind', '=', 'vm.backup')
          .where('state', 'in', TERMINAL_STATES)
          .orderBy('created_at', 'desc')
          .limit(3)
          .execute(),
      ),
    );
    const byVm = new Map(
      ids.map((vmId, i) => [vmId, recent[i]!.map((t) => ({ taskId: t.id, state: t.state, at: t.finished_at ?? t.created_at, errorCode: t.error_code }))]),
    );
    return res.rows.map((r) => ({ vmId: r.id, vmName: r.name, hostId: r.host_id, hostName: r.host_name, failures: n(r.failures), recent: byVm.get(r.id) ?? [] }));
  }

  private async hostIssues() {
    const rows = await this.db
      .selectFrom('hosts')
      .select(['id', 'name', 'connection_state', 'connection_error_code', 'connection_message', 'last_seen_at', 'host_key_fingerprint'])
      .where((eb) => eb.or([eb('connection_state', '<>', 'connected'), eb('connection_error_code', '=', 'HOST.KEY_CHANGED')]))
      .orderBy('name')
      .execute();
    const keyChanged = rows.filter((r) => r.connection_error_code === 'HOST.KEY_CHANGED');
    const notConnected = rows.filter((r) => r.connection_error_code !== 'HOST.KEY_CHANGED');
    return {
      hostsNotConnected: notConnected.map((r) => ({ hostId: r.id, hostName: r.name, state: r.connection_state, errorCode: r.connection_error_code, message: r.connection_message, lastSeenAt: r.last_seen_at })),
      hostKeyChanged: keyChanged.map((r) => ({ hostId: r.id, hostName: r.name, message: r.connection_message, pinnedFingerprint: r.host_key_fingerprint })),
    };
  }

  private async running(): Promise<Array<TaskView & { targetName: string | null }>> {
    const rows = await this.db
      .selectFrom('tasks')
      .selectAll()
      .where('state', 'in', ['running', 'queued'])
      .orderBy(sql`case when state = 'running' then 0 else 1 end`)
      .orderBy(sql`case when parent_id is null then 0 else 1 end`)
      .orderBy('created_at')
      .limit(50)
      .execute();
    const vmIds = rows.filter((r) => r.target_type === 'vm' && r.target_id).map((r) => r.target_id!);
    const poolIds = rows.filter((r) => r.target_type === 'pool' && r.target_id).map((r) => r.target_id!);
    const names = new Map<string, string>();
    if (vmIds.length > 0) for (const v of await this.db.selectFrom('virtual_machines').select(['id', 'name']).where('id', 'in', vmIds).execute()) names.set(v.id, v.name);
    if (poolIds.length > 0) for (const p of await this.db.selectFrom('pools').select(['id', 'name']).where('id', 'in', poolIds).execute()) names.set(p.id, p.name);
    return rows.map((r) => ({ ...toTaskView(toTaskRecord(r)), targetName: (r.target_id && names.get(r.target_id)) || null }));
  }

  private async storageCards(now: Date) {
    const [storages, stored, samples] = await Promise.all([
      this.storages.all(),
      this.usage.storedBytes(),
      this.usage.since(new Date(now.getTime() - 30 * DAY_MS).toISOString()),
    ]);
    return Promise.all(
      storages.map(async (s) => {
        const cap = await this.storages.capacityOf(s);
        const bytes = stored.get(s.id) ?? { backupBytes: 0, originalBytes: 0, restorePoints: 0 };
        const series = samples.get(s.id) ?? [];
        return {
          id: s.id,
          name: s.name,
          path: s.path,
          capacityBytes: cap.capacity?.capacityBytes ?? null,
          usedBytes: cap.capacity?.usedBytes ?? null,
          freeBytes: cap.capacity?.freeBytes ?? null,
          capacityAt: cap.at,
          capacityError: cap.error,
          backupBytes: bytes.backupBytes,
          originalBytes: bytes.originalBytes,
          restorePoints: bytes.restorePoints,
          dedupRatio: dedupRatio(bytes.originalBytes, bytes.backupBytes),
          samples: lastOfEachDay(series).map((x) => ({ at: x.at, usedBytes: x.usedBytes, capacityBytes: x.capacityBytes })),
          estimatedFullAt: estimateFullAt(series, now),
        };
      }),
    );
  }

  private async nextRuns(policies: PolicyInfo[], now: Date) {
    const counts = await sql<{ policy_id: string; pools: number | string; vms: number | string }>`
      select p.policy_id, count(distinct p.id) as pools, count(v.id) as vms
      from pools p left join hosts h on h.pool_id = p.id
      left join virtual_machines v on v.host_id = h.id and v.present = 1 and v.system_vm = 0
      group by p.policy_id`.execute(this.db);
    const byPolicy = new Map(counts.rows.map((r) => [r.policy_id, { pools: n(r.pools), vms: n(r.vms) }]));
    const out: Array<{ policyId: string; policyName: string; at: string; poolCount: number; vmCount: number }> = [];
    for (const p of policies) {
      const c = byPolicy.get(p.id);
      const at = this.nextRun(p, now);
      if (!c || c.pools === 0 || !at) continue;
      out.push({ policyId: p.id, policyName: p.name, at, poolCount: c.pools, vmCount: c.vms });
    }
    return out.sort((a, b) => a.at.localeCompare(b.at) || a.policyName.localeCompare(b.policyName)).slice(0, 10);
  }

  private async gettingStarted() {
    const exists = async (q: Promise<unknown>) => (await q) !== undefined;
    const [storage, policy, pool, host, hostConnected, firstBackup] = await Promise.all([
      exists(this.db.selectFrom('storages').select('id').limit(1).executeTakeFirst()),
      exists(this.db.selectFrom('policies').select('id').limit(1).executeTakeFirst()),
      exists(this.db.selectFrom('pools').select('id').limit(1).executeTakeFirst()),
      exists(this.db.selectFrom('hosts').select('id').limit(1).executeTakeFirst()),
      exists(this.db.selectFrom('hosts').select('id').where('connection_state', '=', 'connected').limit(1).executeTakeFirst()),
      exists(this.db.selectFrom('restore_points').select('id').limit(1).executeTakeFirst()),
    ]);
    return { storage, policy, pool, host, hostConnected, firstBackup, complete: storage && policy && pool && host && hostConnected && firstBackup };
  }

  /** Usage history of one storage (the storage page's chart) and the VMs using most space. */
  async storageUsage(storageId: string, days: number) {
    const now = this.clock.now();
    const [samples, stored, topVms] = await Promise.all([
      this.usage.since(new Date(now.getTime() - days * DAY_MS).toISOString(), storageId),
      this.usage.storedBytes(),
      this.usage.topVms(storageId, 10),
    ]);
    const series = samples.get(storageId) ?? [];
    const bytes = stored.get(storageId) ?? { backupBytes: 0, originalBytes: 0, restorePoints: 0 };
    return {
      storageId,
      samples: series,
      backupBytes: bytes.backupBytes,
      originalBytes: bytes.originalBytes,
      dedupRatio: dedupRatio(bytes.originalBytes, bytes.backupBytes),
      estimatedFullAt: estimateFullAt(series.filter((x) => x.at >= new Date(now.getTime() - 30 * DAY_MS).toISOString()), now),
      topVms,
    };
  }
}

export type { Protection };
