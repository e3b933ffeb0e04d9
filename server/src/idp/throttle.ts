import { AppError } from '../errors.js';

/**
 * Slows down password guessing: after `freeFailures` failed sign-ins from one key
 * (client address), each further failure locks the key out for a doubling delay
 * (1 s, 2 s, 4 s … up to `maxDelayMs`). Forgotten after `forgetAfterMs` without failures.
 *
 * Atomic: an attempt takes a slot with `begin()` before its password is checked, and
 * attempts still being checked count as failures-to-be. So N parallel guesses get at most
 * the free failures left, and once those are used (or after a lock expires) only one
 * guess per key is checked at a time: the others are refused at once, unchecked.
 *
 * Bounded: `check()` runs at most `maxConcurrentChecks` password hashes (scrypt, ~32 MiB
 * and ~100 ms each) at once for all keys together, queues up to `maxQueuedChecks` more and
 * refuses the rest (IDP.BUSY), so a flood from many addresses cannot exhaust CPU or memory.
 */
export class LoginThrottle {
  private readonly entries = new Map<string, { failures: number; lastFailure: number; lockedUntil: number; inFlight: number }>();
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Highest number of password checks that ran at once (for tests and metrics). */
  peakChecks = 0;

  constructor(
    private readonly freeFailures = 5,
    private readonly baseDelayMs = 1000,
    private readonly maxDelayMs = 5 * 60_000,
    private readonly forgetAfterMs = 15 * 60_000,
    private readonly maxEntries = 10_000,
    private readonly maxConcurrentChecks = 4,
    private readonly maxQueuedChecks = 64,
  ) {}

  /** Milliseconds until `key` may try again; 0 when it may try now. */
  retryAfterMs(key: string, now = Date.now()): number {
    const entry = this.entries.get(key);
    if (!entry) return 0;
    if (entry.inFlight === 0 && now - entry.lastFailure > this.forgetAfterMs) {
      this.entries.delete(key);
      return 0;
    }
    return Math.max(0, entry.lockedUntil - now);
  }

  /**
   * Takes a slot for one attempt of `key`: `{ ok: true }` (then call `end()` once with the
   * outcome), or `{ ok: false, retryAfterMs }` when it must not be checked now.
   */
  begin(key: string, now = Date.now()): { ok: true } | { ok: false; retryAfterMs: number } {
    const wait = this.retryAfterMs(key, now);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { failures: 0, lastFailure: now, lockedUntil: 0, inFlight: 0 };
      this.entries.set(key, entry);
      if (this.entries.size > this.maxEntries) this.prune(now);
    }
    // Within the free failures, as many at once as are left; beyond them, one at a time.
    if (entry.inFlight > 0 && entry.failures + entry.inFlight >= this.freeFailures) return { ok: false, retryAfterMs: this.baseDelayMs };
    entry.inFlight++;
    return { ok: true };
  }

  /** Ends an attempt taken with `begin()`. */
  end(key: string, succeeded: boolean, now = Date.now()): void {
    const entry = this.entries.get(key);
    if (entry) entry.inFlight = Math.max(0, entry.inFlight - 1);
    if (succeeded) this.recordSuccess(key);
    else this.recordFailure(key, now);
  }

  /** Ends an attempt whose password was never checked (the server was busy): no failure counted. */
  abandon(key: string): void {
    const entry = this.entries.get(key);
    if (entry) entry.inFlight = Math.max(0, entry.inFlight - 1);
  }

  recordFailure(key: string, now = Date.now()): void {
    const previous = this.entries.get(key);
    const failures = previous && (previous.failures === 0 || now - previous.lastFailure <= this.forgetAfterMs) ? previous.failures + 1 : 1;
    const excess = failures - this.freeFailures;
    const lockedUntil = excess > 0 ? now + Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(excess - 1, 30)) : 0;
    this.entries.delete(key);
    this.entries.set(key, { failures, lastFailure: now, lockedUntil, inFlight: previous?.inFlight ?? 0 });
    if (this.entries.size > this.maxEntries) this.prune(now);
  }

  recordSuccess(key: string): void {
    const entry = this.entries.get(key);
    if (entry && entry.inFlight > 0) Object.assign(entry, { failures: 0, lockedUntil: 0 });
    else this.entries.delete(key);
  }

  /** Runs one password check within the global bound; IDP.BUSY when too many are waiting. */
  async check<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.maxConcurrentChecks) {
      if (this.waiting.length >= this.maxQueuedChecks) {
        throw new AppError('unavailable', 'IDP.BUSY', 'too many sign-in attempts are being checked right now; try again in a few seconds');
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    this.peakChecks = Math.max(this.peakChecks, this.active);
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on: `active` stays the same
      else this.active--;
    }
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.inFlight === 0 && now - entry.lastFailure > this.forgetAfterMs) this.entries.delete(key);
    }
    // Still too many: drop the oldest (Map keeps insertion order, refreshed on each failure).
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries) break;
      if (entry.inFlight === 0) this.entries.delete(key);
    }
  }
}
