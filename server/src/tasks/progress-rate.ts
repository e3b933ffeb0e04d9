import type { TaskProgress } from './task-context.js';

/**
 * A rate for handlers that report bytes but no rate (the incremental reader reports bytes
 * read of bytes to read per disk): bytes since the current segment started over the time
 * since. A segment restarts when `bytesTotal` changes or `bytesDone` goes back (next disk).
 * Once a handler reports a rate itself, the meter stays out for the rest of the task.
 */
export class RateMeter {
  private segment: { at: number; bytes: number; total: number | undefined; last: number } | null = null;
  private handlerRates = false;

  constructor(private readonly minIntervalMs = 1000) {}

  /** The rate to add to `p` (bytes/s), or undefined: none yet, or the handler gives its own. */
  measure(p: TaskProgress, now: number): number | undefined {
    if (p.rateBytesPerSecond !== undefined) this.handlerRates = true;
    if (this.handlerRates || p.bytesDone === undefined || !Number.isFinite(p.bytesDone)) return undefined;
    const total = p.bytesTotal ?? this.segment?.total;
    const s = this.segment;
    if (!s || total !== s.total || p.bytesDone < s.last) {
      this.segment = { at: now, bytes: p.bytesDone, total, last: p.bytesDone };
      return undefined;
    }
    s.last = p.bytesDone;
    const ms = now - s.at;
    if (ms < this.minIntervalMs) return undefined;
    return Math.round(((p.bytesDone - s.bytes) * 1000) / ms);
  }
}
