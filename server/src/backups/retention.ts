/**
 * Which restore points a retention keeps: the same selection as `borg prune`
 * (borg 1.2 `prune_split`), as a pure function. Rules apply in borg's order
 * (daily, weekly, monthly, yearly); walking from the newest, each rule keeps the
 * first point of every period it has not seen yet, skipping points an earlier
 * rule already kept; if a rule ends short of its count, it also keeps the oldest
 * point. Periods are computed in UTC (borg uses the local time of the machine
 * running it: run workers in UTC, as containers do by default).
 */
import { groupByEpoch } from './naming.js';

export interface RetentionRules {
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export interface Dated {
  id: string;
  time: Date;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** ISO 8601 week-based year and week (`%G-%V`). */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-${pad(week)}`;
}

const PERIOD: Record<keyof RetentionRules, (d: Date) => string> = {
  daily: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
  weekly: isoWeek,
  monthly: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`,
  yearly: (d) => String(d.getUTCFullYear()),
};

const ORDER: Array<keyof RetentionRules> = ['daily', 'weekly', 'monthly', 'yearly'];

export interface RetentionDecision {
  keep: Map<string, string>;
  prune: string[];
}

/** Returns the kept ids (with the rule that kept each, borg-style `daily #1`) and the pruned ones. */
export function selectRetention(points: readonly Dated[], rules: RetentionRules): RetentionDecision {
  const sorted = [...points].sort((a, b) => b.time.getTime() - a.time.getTime());
  const keptBecause = new Map<string, string>();
  for (const rule of ORDER) {
    const n = rules[rule];
    if (n <= 0) continue;
    const period = PERIOD[rule];
    let last: string | null = null;
    let count = 0;
    let a: Dated | undefined;
    for (a of sorted) {
      const p = period(a.time);
      if (p !== last) {
        last = p;
        if (!keptBecause.has(a.id)) {
          count++;
          keptBecause.set(a.id, `${rule} #${count}`);
          if (count === n) break;
        }
      }
    }
    if (a !== undefined && count < n && !keptBecause.has(a.id)) {
      count++;
      keptBecause.set(a.id, `${rule}[oldest] #${count}`);
    }
  }
  // Backroll never prunes everything: with no rule at all the newest stays (borg prune would refuse).
  if (ORDER.every((r) => rules[r] <= 0) && sorted[0]) keptBecause.set(sorted[0].id, 'last #1');
  return { keep: keptBecause, prune: sorted.filter((a) => !keptBecause.has(a.id)).map((a) => a.id) };
}

/** A restore point: every archive of one epoch (naming.ts `groupByEpoch`). */
export interface RetentionPlan {
  /** Epochs kept, newest first. */
  keep: number[];
  /** Restore points pruned: each with all of its archives (disks and config alike). */
  prune: Array<{ epoch: number; archives: string[] }>;
}

/**
 * The one retention decision applied to whole restore points (pure): an epoch is kept or pruned
 * with all its archives. Never `borg prune` per archive series: series of different length (a disk
 * added or removed) would keep different epochs and leave partial restore points behind.
 */
export function retentionPlan(names: readonly string[], rules: RetentionRules): RetentionPlan {
  const groups = groupByEpoch(names);
  const decision = selectRetention(groups.map((g) => ({ id: String(g.epoch), time: new Date(g.epoch * 1000) })), rules);
  return {
    keep: groups.filter((g) => decision.keep.has(String(g.epoch))).map((g) => g.epoch),
    prune: groups.filter((g) => !decision.keep.has(String(g.epoch))).map((g) => ({ epoch: g.epoch, archives: g.archives })),
  };
}

/** What pruning needs of borg (adapters/borg/borg.ts `Borg`). */
export interface PruneBorg<A> {
  list(access: A): Promise<Array<{ name: string }>>;
  deleteArchives(access: A, archives: readonly string[]): Promise<void>;
}

/**
 * Applies `retentionPlan` to a repository: deletes the archives of every pruned restore point in one `borg delete`.
 * `names`: the repository's archives when the caller knows them (it holds the VM's lock and listed them); else listed here.
 */
export async function pruneRestorePoints<A>(borg: PruneBorg<A>, access: A, rules: RetentionRules, names?: readonly string[]): Promise<RetentionPlan> {
  const plan = retentionPlan(names ?? (await borg.list(access)).map((a) => a.name), rules);
  await borg.deleteArchives(access, plan.prune.flatMap((p) => p.archives));
  return plan;
}
