/**
 * Pure helpers of the prune preview: the server's dry run (POST /policies/preview)
 * says, per restore point, whether the retention keeps it and which rule does
 * (`daily #3`, `weekly[oldest] #1`, `last #1` — the words of borg prune --list).
 */

export interface PrunePoint {
  id: string;
  /** ISO time of the restore point */
  createdAt: string;
  keep: boolean;
  /** rule that keeps it, e.g. "daily #3"; null when pruned */
  reason: string | null;
  /** deduplicated (unique) bytes of the point, when known: what deleting it frees */
  uniqueBytes?: number | null;
  /** original size of its disks, when known */
  originalBytes?: number | null;
}

export interface PruneSummary {
  kept: number;
  pruned: number;
  /** bytes freed: the server's figure, else the sum of the pruned points' unique bytes; null when unknown */
  freedBytes: number | null;
  /** true when freedBytes is a lower bound (some pruned points have no size) */
  freedPartial: boolean;
}

const RULE_WORDS: Record<string, string> = { daily: 'daily', weekly: 'weekly', monthly: 'monthly', yearly: 'yearly', last: 'newest' };

/** "daily #3" / "daily 3" → "daily 3"; "weekly[oldest] #2" / "weekly (oldest) 2" → "weekly 2 (oldest)"; "last #1" → "newest". */
export function reasonInWords(reason: string | null): string {
  if (!reason) return '';
  const m = /^(\w+)(\[oldest\]|\s*\(oldest\))?\s*#?(\d+)$/.exec(reason.trim());
  if (!m) return reason;
  const [, rule, oldest, n] = m;
  if (rule === 'last') return 'newest';
  return `${RULE_WORDS[rule!] ?? rule} ${n}${oldest ? ' (oldest)' : ''}`;
}

export function summarize(points: readonly PrunePoint[], serverFreedBytes?: number | null): PruneSummary {
  const pruned = points.filter((p) => !p.keep);
  const kept = points.length - pruned.length;
  if (typeof serverFreedBytes === 'number') return { kept, pruned: pruned.length, freedBytes: serverFreedBytes, freedPartial: false };
  const sized = pruned.filter((p) => typeof p.uniqueBytes === 'number');
  if (pruned.length > 0 && sized.length === 0) return { kept, pruned: pruned.length, freedBytes: null, freedPartial: false };
  const freed = sized.reduce((s, p) => s + (p.uniqueBytes as number), 0);
  return { kept, pruned: pruned.length, freedBytes: freed, freedPartial: sized.length < pruned.length };
}

/** Newest first. */
export function sortNewestFirst(points: readonly PrunePoint[]): PrunePoint[] {
  return [...points].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
/** 1536 → "1.5 KiB" */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v.toFixed(1).replace(/\.0$/, '');
  return `${n < 0 ? '-' : ''}${text} ${UNITS[u]}`;
}

/** One restore point of the server's dry run (POST /policies/preview → prune.kept / prune.pruned). */
export interface ServerPrunePoint {
  restorePointId: string;
  createdAt: string;
  reason: string;
  deduplicatedSize?: number | null;
  originalSize?: number | null;
}
export interface ServerPrune {
  vmId: string;
  kept: ServerPrunePoint[];
  pruned: ServerPrunePoint[];
  freedBytes: number | null;
  freedBytesEstimated?: boolean;
}

/** The server's two lists as one list of points for the preview. */
export function fromServerPrune(prune: ServerPrune): PrunePoint[] {
  const point = (p: ServerPrunePoint, keep: boolean): PrunePoint => ({
    id: p.restorePointId,
    createdAt: p.createdAt,
    keep,
    reason: keep ? p.reason : null,
    uniqueBytes: p.deduplicatedSize ?? null,
    originalBytes: p.originalSize ?? null,
  });
  return [...prune.kept.map((p) => point(p, true)), ...prune.pruned.map((p) => point(p, false))];
}
