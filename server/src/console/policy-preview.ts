/**
 * What a policy would do, before it is saved: its next runs and, on one VM's real restore
 * points, which ones its retention keeps (and by which rule, as borg prune --list says) and
 * which it prunes, with the space that would likely be freed. Uses the same pure selection as
 * the prune the backups run (backups/retention.ts); nothing is changed.
 */
import type { Db } from '../db/database.js';
import { invalid, notFound } from '../errors.js';
import { selectRetention } from '../backups/retention.js';
import { checkRetention, checkTimeZone, nextRuns, type Result, type Retention } from '../policies/policy.rules.js';
import { scheduleIntervalMs } from './protection.js';

export interface PreviewInput {
  schedule: string;
  timezone?: string;
  runs?: number;
  retention?: Retention;
  vmId?: string;
}

export interface PrunePoint {
  restorePointId: string;
  createdAt: string;
  reason: string;
  originalSize: number | null;
  deduplicatedSize: number | null;
}

function must<T>(r: Result<T>, field: string): T {
  if (!r.ok) throw invalid(r.code, r.message, { field, errors: [{ path: `body/${field}`, message: r.message }] });
  return r.value;
}

/** `daily #3` → `daily 3`; `weekly[oldest] #2` → `weekly (oldest) 2`. */
const reasonText = (borgStyle: string) => borgStyle.replace('[oldest]', ' (oldest)').replace(' #', ' ');

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export async function previewPolicy(db: Db, input: PreviewInput, now: Date) {
  const timezone = must(checkTimeZone(input.timezone ?? 'UTC'), 'timezone');
  const runs = must(nextRuns(input.schedule, timezone, now, input.runs ?? 5), 'schedule');
  const intervalMs = scheduleIntervalMs(input.schedule, timezone, now);
  if (input.vmId && !input.retention) throw invalid('POLICY.PREVIEW_NEEDS_RETENTION', 'a prune preview on a VM needs the retention to apply: send retention with vmId', { field: 'retention' });
  let prune = null;
  if (input.vmId && input.retention) {
    const retention = must(checkRetention(input.retention), 'retention');
    const vm = await db.selectFrom('virtual_machines').select(['id', 'name']).where('id', '=', input.vmId).executeTakeFirst();
    if (!vm) throw notFound('VM.NOT_FOUND', `no VM with id ${input.vmId}`, { id: input.vmId });
    const points = await db
      .selectFrom('restore_points')
      .select(['id', 'epoch', 'created_at', 'original_size', 'deduplicated_size'])
      .where('vm_id', '=', vm.id)
      .execute();
    // The archive epoch is the time borg prune groups by (the archive names carry it).
    const decision = selectRetention(points.map((p) => ({ id: p.id, time: new Date(Number(p.epoch) * 1000) })), retention);
    const byId = new Map(points.map((p) => [p.id, p]));
    const describe = (id: string, reason: string): PrunePoint => {
      const p = byId.get(id)!;
      return { restorePointId: id, createdAt: new Date(Number(p.epoch) * 1000).toISOString(), reason, originalSize: num(p.original_size), deduplicatedSize: num(p.deduplicated_size) };
    };
    const kept = [...decision.keep.entries()].map(([id, why]) => describe(id, reasonText(why))).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const pruned = decision.prune.map((id) => describe(id, 'not kept by any rule'));
    prune = {
      vmId: vm.id,
      vmName: vm.name,
      total: points.length,
      keptCount: kept.length,
      prunedCount: pruned.length,
      kept,
      pruned,
      freedBytes: pruned.reduce((a, p) => a + (p.deduplicatedSize ?? 0), 0),
      freedBytesEstimated: true,
    };
  }
  return { nextRuns: runs.map((d) => d.toISOString()), intervalSeconds: intervalMs === null ? null : Math.round(intervalMs / 1000), prune };
}
