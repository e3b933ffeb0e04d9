/** Storage usage over time: the daily series of a sparkline and the date the storage fills up. */

export interface UsagePoint {
  at: string;
  usedBytes: number | null;
  capacityBytes: number | null;
}

/** The last sample of each UTC day, oldest first (input: oldest first). */
export function lastOfEachDay<T extends { at: string }>(samples: readonly T[]): T[] {
  const byDay = new Map<string, T>();
  for (const s of samples) byDay.set(s.at.slice(0, 10), s);
  return [...byDay.values()];
}

/**
 * When used space reaches capacity at the least-squares trend of the samples; null with fewer
 * than two usable samples spanning an hour, a flat or shrinking trend, or beyond 100 years.
 */
export function estimateFullAt(samples: readonly UsagePoint[], now: Date): string | null {
  const pts = samples.filter((s) => s.usedBytes !== null && s.capacityBytes !== null).map((s) => ({ x: Date.parse(s.at), y: s.usedBytes! }));
  if (pts.length < 2) return null;
  const last = samples.filter((s) => s.capacityBytes !== null).at(-1)!;
  const x0 = pts[0]!.x;
  if (pts[pts.length - 1]!.x - x0 < 3_600_000) return null;
  const n = pts.length;
  const mx = pts.reduce((a, p) => a + (p.x - x0), 0) / n;
  const my = pts.reduce((a, p) => a + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of pts) {
    sxy += (p.x - x0 - mx) * (p.y - my);
    sxx += (p.x - x0 - mx) ** 2;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx; // bytes per ms
  if (slope <= 0) return null;
  const intercept = my - slope * mx;
  const fullX = x0 + (last.capacityBytes! - intercept) / slope;
  const at = Math.max(fullX, now.getTime());
  if (at - now.getTime() > 100 * 365 * 86_400_000) return null;
  return new Date(at).toISOString();
}

/** original / deduplicated, null when nothing is stored yet. */
export function dedupRatio(originalBytes: number, deduplicatedBytes: number): number | null {
  if (deduplicatedBytes <= 0 || originalBytes <= 0) return null;
  return Math.round((originalBytes / deduplicatedBytes) * 100) / 100;
}
