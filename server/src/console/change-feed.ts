/**
 * One feed of changes for the console's event stream: tasks (created, progress, state), hosts
 * (connection, key) and VMs (inventory), read from the database by `updated_at` — the source
 * of truth in every mode, whichever process made the change. One poll per process serves every
 * open stream; task signals (local or Redis) make it poll at once instead of within a second.
 *
 * Event ids are the rows' `updated_at`: a reconnect with Last-Event-ID replays what changed
 * since, with an overlap for rows committed a little after their timestamp (events are
 * snapshots: a repeat is harmless). Timestamps from a clock ahead of this one are re-read until
 * this clock passes them, never skipped.
 */
import type { Db } from '../db/database.js';
import { toHostRecord } from '../hosts/host.repository.js';
import { toTaskRecord } from '../tasks/task.repository.js';
import { toTaskView } from '../tasks/task.service.js';

export type ChangeType = 'task' | 'host' | 'vm';
export interface ChangeEvent {
  type: ChangeType;
  /** Event id: the row's updated_at. */
  id: string;
  data: unknown;
}

export const FEED_OVERLAP_MS = 5_000;
/** Rows per table replayed on a resume; beyond, the client re-fetches (a `resync`). */
export const REPLAY_LIMIT = 1_000;
/** A resume older than this is a `resync`. */
export const REPLAY_MAX_AGE_MS = 60 * 60 * 1000;

type Listener = (events: ChangeEvent[], resync: boolean) => void;

const iso = (ms: number) => new Date(ms).toISOString();

export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private polling = false;
  private again = false;
  private highWater = '';
  private readonly sent = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly watchTasks: (onChange: () => void) => () => void,
    private readonly now: () => number = Date.now,
    private readonly pollMs = 1_000,
  ) {}

  get subscribers(): number {
    return this.listeners.size;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start();
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) this.stop();
    };
  }

  /** What changed at or after `since` (minus the overlap), oldest first; `complete` false when there was too much. */
  async replay(since: string): Promise<{ events: ChangeEvent[]; complete: boolean }> {
    const sinceMs = Date.parse(since);
    if (!Number.isFinite(sinceMs) || this.now() - sinceMs > REPLAY_MAX_AGE_MS) return { events: [], complete: false };
    const { events, truncated } = await this.read(iso(sinceMs - FEED_OVERLAP_MS), REPLAY_LIMIT);
    return { events, complete: !truncated };
  }

  private start(): void {
    this.highWater = iso(this.now());
    this.sent.clear();
    this.unwatch = this.watchTasks(() => this.pollSoon());
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  private stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.soon = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
  }

  private pollSoon(): void {
    if (this.soon || this.listeners.size === 0) return;
    // Coalesce bursts of signals (progress of many tasks) into one read.
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.poll();
    }, 100);
    this.soon.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.again = false;
        const nowMs = this.now();
        const base = Math.min(Date.parse(this.highWater) || nowMs, nowMs);
        const from = iso(base - FEED_OVERLAP_MS);
        const { events, truncated } = await this.read(from, 2_000);
        const fresh = events.filter((e) => {
          const key = `${e.type}:${(e.data as { id: string }).id}`;
          if (this.sent.get(key) === e.id) return false;
          this.sent.set(key, e.id);
          return true;
        });
        for (const e of events) if (e.id > this.highWater) this.highWater = e.id;
        for (const [key, at] of this.sent) if (at < iso(base - 2 * FEED_OVERLAP_MS)) this.sent.delete(key);
        if (fresh.length > 0 || truncated) for (const l of [...this.listeners]) l(fresh, truncated);
      } while (this.again && this.listeners.size > 0);
    } catch {
      // The database is briefly unavailable: the next poll reads the same window again.
    } finally {
      this.polling = false;
    }
  }

  private async read(from: string, limit: number): Promise<{ events: ChangeEvent[]; truncated: boolean }> {
    const [tasks, hosts, vms] = await Promise.all([
      this.db.selectFrom('tasks').selectAll().where('updated_at', '>=', from).orderBy('updated_at').limit(limit + 1).execute(),
      this.db.selectFrom('hosts').selectAll().where('updated_at', '>=', from).orderBy('updated_at').limit(limit + 1).execute(),
      this.db
        .selectFrom('virtual_machines')
        .select(['id', 'host_id', 'name', 'state', 'present', 'updated_at'])
        .where('updated_at', '>=', from)
        .orderBy('updated_at')
        .limit(limit + 1)
        .execute(),
    ]);
    const truncated = tasks.length > limit || hosts.length > limit || vms.length > limit;
    const events: ChangeEvent[] = [
      ...tasks.slice(0, limit).map((r) => ({ type: 'task' as const, id: r.updated_at, data: toTaskView(toTaskRecord(r)) })),
      ...hosts.slice(0, limit).map((r) => {
        const { ...host } = toHostRecord(r);
        return { type: 'host' as const, id: r.updated_at, data: host };
      }),
      ...vms.slice(0, limit).map((r) => ({
        type: 'vm' as const,
        id: r.updated_at,
        data: { id: r.id, hostId: r.host_id, name: r.name, state: r.state, present: Number(r.present) === 1, updatedAt: r.updated_at },
      })),
    ];
    events.sort((a, b) => a.id.localeCompare(b.id));
    return { events, truncated };
  }
}
