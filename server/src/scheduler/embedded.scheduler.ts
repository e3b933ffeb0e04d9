import type { Clock } from '../clock.js';
import type { PolicyRecord } from '../policies/policy.repository.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import type { SchedulePolicies, ScheduleFiring } from './schedule-firing.js';
import type { ScheduleRunRepository } from './schedule-run.repository.js';
import { nextOccurrence } from './schedule.rules.js';

/** Longest single timer: setTimeout overflows past 2^31-1 ms (24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RECONCILE_MS = 60_000;

export interface PolicyScheduler {
  /** A policy was created, changed or deleted: take it into account now. */
  policyChanged(policyId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * In-process timers (embedded mode). Each enabled policy has a cursor in the
 * database: its next due occurrence. A cursor found in the past at start means
 * the process was down then: ScheduleFiring records it missed (or catches up).
 */
export class EmbeddedScheduler implements PolicyScheduler {
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  private readonly chains = new Map<string, Promise<void>>();
  private reconcileTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly deps: { firing: ScheduleFiring; runs: ScheduleRunRepository; policies: SchedulePolicies; clock: Clock; logger: JobLogger },
  ) {}

  async start(): Promise<void> {
    await this.reconcileAll();
    // A safety net for changes made by another process on the same database.
    this.reconcileTimer = setInterval(() => void this.reconcileAll().catch((err: unknown) => this.deps.logger.error({ err }, 'scheduler reconcile failed')), RECONCILE_MS);
  }

  async reconcileAll(): Promise<void> {
    const enabled = await this.deps.policies.listEnabled();
    const ids = new Set(enabled.map((p) => p.id));
    for (const p of enabled) await this.serial(p.id, () => this.sync(p));
    for (const c of await this.deps.runs.cursors()) if (!ids.has(c.policy_id)) await this.serial(c.policy_id, () => this.drop(c.policy_id));
    for (const id of [...this.timers.keys()]) if (!ids.has(id)) await this.serial(id, () => this.drop(id));
  }

  async policyChanged(policyId: string): Promise<void> {
    if (this.closed) return;
    await this.serial(policyId, async () => {
      const p = await this.deps.policies.find(policyId);
      if (!p || !p.enabled) await this.drop(policyId);
      else await this.sync(p);
    });
  }

  /** One operation at a time per policy: timers, changes and reconciles never interleave. */
  private serial(policyId: string, work: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(policyId) ?? Promise.resolve()).then(work, work);
    const settled = next.catch((err: unknown) => this.deps.logger.error({ err, policyId }, 'scheduler operation failed'));
    this.chains.set(policyId, settled);
    void settled.finally(() => {
      if (this.chains.get(policyId) === settled) this.chains.delete(policyId);
    });
    return settled;
  }

  private async sync(p: PolicyRecord): Promise<void> {
    const cursor = await this.deps.runs.cursor(p.id);
    let at: Date | undefined;
    if (cursor && cursor.schedule === p.schedule && cursor.timezone === p.timezone) {
      at = new Date(cursor.next_run_at);
    } else {
      // New, re-enabled or rescheduled: count from now, nothing is missed.
      at = nextOccurrence(p.schedule, p.timezone, this.deps.clock.now());
      if (!at) return this.drop(p.id);
      await this.saveCursor(p, at);
    }
    if (this.timers.get(p.id)?.at !== at.getTime()) this.arm(p.id, at);
  }

  private async saveCursor(p: PolicyRecord, at: Date): Promise<void> {
    await this.deps.runs.saveCursor({ policy_id: p.id, schedule: p.schedule, timezone: p.timezone, next_run_at: at.toISOString(), updated_at: this.deps.clock.now().toISOString() });
  }

  private async drop(policyId: string): Promise<void> {
    const t = this.timers.get(policyId);
    if (t) clearTimeout(t.timer);
    this.timers.delete(policyId);
    await this.deps.runs.deleteCursor(policyId);
  }

  private arm(policyId: string, at: Date): void {
    const existing = this.timers.get(policyId);
    if (existing) clearTimeout(existing.timer);
    if (this.closed) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at.getTime() - Date.now()));
    const timer = setTimeout(() => {
      if (Date.now() < at.getTime()) return this.arm(policyId, at);
      void this.serial(policyId, () => this.due(policyId, at));
    }, delay);
    this.timers.set(policyId, { timer, at: at.getTime() });
  }

  private async due(policyId: string, at: Date): Promise<void> {
    if (this.closed) return;
    const p = await this.deps.policies.find(policyId);
    if (!p || !p.enabled) return this.drop(policyId);
    const cursor = await this.deps.runs.cursor(policyId);
    if (!cursor || cursor.next_run_at !== at.toISOString()) return; // changed meanwhile; sync re-armed it
    const now = this.deps.clock.now();
    try {
      await this.deps.firing.occurrence(p, at, now);
    } finally {
      const next = nextOccurrence(p.schedule, p.timezone, now);
      if (next) {
        await this.saveCursor(p, next);
        this.arm(policyId, next);
      } else {
        await this.drop(policyId);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reconcileTimer);
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    await Promise.allSettled([...this.chains.values()]);
  }
}
