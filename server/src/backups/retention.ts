/**
 * Which restore points a retention keeps: the same selection as `borg prune`
 * (borg 1.2 `prune_split`), as a pure function. Rules apply in borg's order
 * (daily, weekly, monthly, yearly); walking from the newest, each rule keeps the
 * first point of every period it has not seen yet, skipping points an earlier
 * rule already kept; if a rule ends short of its count, it also keeps the oldest
 * point. Periods are computed in UTC (borg uses the local time of the machine
 * running it: run workers in UTC, as containers do by default).
 */

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
