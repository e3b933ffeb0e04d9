/**
 * Slows down password guessing: after `freeFailures` failed sign-ins from one key
 * (client address), each further failure locks the key out for a doubling delay
 * (1 s, 2 s, 4 s … up to `maxDelayMs`). Forgotten after `forgetAfterMs` without failures.
 */
export class LoginThrottle {
  private readonly entries = new Map<string, { failures: number; lastFailure: number; lockedUntil: number }>();

  constructor(
    private readonly freeFailures = 5,
    private readonly baseDelayMs = 1000,
    private readonly maxDelayMs = 5 * 60_000,
    private readonly forgetAfterMs = 15 * 60_000,
    private readonly maxEntries = 10_000,
  ) {}

  /** Milliseconds until `key` may try again; 0 when it may try now. */
  retryAfterMs(key: string, now = Date.now()): number {
    const entry = this.entries.get(key);
    if (!entry) return 0;
    if (now - entry.lastFailure > this.forgetAfterMs) {
      this.entries.delete(key);
      return 0;
    }
    return Math.max(0, entry.lockedUntil - now);
  }

  recordFailure(key: string, now = Date.now()): void {
    const previous = this.entries.get(key);
    const failures = previous && now - previous.lastFailure <= this.forgetAfterMs ? previous.failures + 1 : 1;
    const excess = failures - this.freeFailures;
    const lockedUntil = excess > 0 ? now + Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(excess - 1, 30)) : 0;
    this.entries.delete(key);
    this.entries.set(key, { failures, lastFailure: now, lockedUntil });
    if (this.entries.size > this.maxEntries) this.prune(now);
  }

  recordSuccess(key: string): void {
    this.entries.delete(key);
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.lastFailure > this.forgetAfterMs) this.entries.delete(key);
    }
    // Still too many: drop the oldest (Map keeps insertion order, refreshed on each failure).
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}
