/**
 * Storage capacity, cached and bounded in time. `statfs` on a hung NFS mount never returns and
 * holds one of libuv's few pool threads: a request must not wait for it, and a second call on
 * the same path must not pile up behind the first. So one probe per path at a time, results
 * reused for `ttlMs`, and a caller waits at most `timeoutMs` — then gets the last known figures
 * with an error saying they are stale.
 */
import type { Capacity, FileSystem } from '../adapters/filesystem.js';
import { isoNow, type Clock } from '../clock.js';

export interface CapacityReading {
  capacity: Capacity | null;
  /** When `capacity` was read (null: never). */
  at: string | null;
  error: { code: string; message: string } | null;
}

interface Entry {
  reading: CapacityReading;
  readAtMs: number;
  inFlight: Promise<void> | null;
}

export const CAPACITY_TTL_MS = 60_000;
export const CAPACITY_TIMEOUT_MS = 5_000;

export class CapacityCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly fs: FileSystem,
    private readonly clock: Clock,
    private readonly ttlMs = CAPACITY_TTL_MS,
    private readonly timeoutMs = CAPACITY_TIMEOUT_MS,
  ) {}

  async read(dir: string): Promise<CapacityReading> {
    let entry = this.entries.get(dir);
    if (!entry) {
      entry = { reading: { capacity: null, at: null, error: null }, readAtMs: -Infinity, inFlight: null };
      this.entries.set(dir, entry);
    }
    const now = this.clock.now().getTime();
    if (now - entry.readAtMs < this.ttlMs && entry.inFlight === null) return entry.reading;
    if (entry.inFlight === null) entry.inFlight = this.probe(dir, entry);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      entry.inFlight.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return entry.reading;
    return {
      ...entry.reading,
      error: {
        code: 'STORAGE.CAPACITY_TIMEOUT',
        message: `the file system of ${dir} has not answered statfs within ${this.timeoutMs / 1000} s (a hung network mount?); ${entry.reading.at ? `figures from ${entry.reading.at}` : 'no figures yet'}`,
      },
    };
  }

  private async probe(dir: string, entry: Entry): Promise<void> {
    try {
      const capacity = await this.fs.capacity(dir);
      entry.reading = capacity
        ? { capacity, at: isoNow(this.clock), error: null }
        : { ...entry.reading, error: { code: 'STORAGE.CAPACITY_UNREADABLE', message: `the capacity of ${dir} cannot be read (missing or not mounted?)` } };
    } catch (err) {
      entry.reading = { ...entry.reading, error: { code: 'STORAGE.CAPACITY_UNREADABLE', message: `the capacity of ${dir} cannot be read: ${(err as Error).message}` } };
    } finally {
      entry.readAtMs = this.clock.now().getTime();
      entry.inFlight = null;
    }
  }
}
