import { Cron } from 'croner';
import type { TaskState } from '../tasks/task.state.js';

/**
 * Pure scheduling decisions: which occurrences of a schedule are due, which of
 * them still count as on time, which are recorded as missed, which is caught up.
 *
 * Missed runs: an occurrence started more than the grace period after its time
 * (the scheduler or every worker was down) is not run late; it is recorded as a
 * schedule run with outcome `missed`. With catch-up on, the latest missed
 * occurrence of a policy is run once instead (`caught_up`), the older ones stay missed.
 */

export type RunTrigger = 'schedule' | 'catch_up';
export type RunRecordOutcome = 'fired' | 'caught_up' | 'missed';

/** At most this many missed occurrences are recorded per policy and downtime (the most recent). */
export const MISSED_RECORD_CAP = 100;
const SCAN_CAP = 2000;

function cron(schedule: string, timezone: string): Cron {
  return new Cron(schedule, { timezone, paused: true, legacyMode: true });
}

/** The first occurrence strictly after `after`, or undefined when there is none. */
export function nextOccurrence(schedule: string, timezone: string, after: Date): Date | undefined {
  return cron(schedule, timezone).nextRun(after) ?? undefined;
}

/**
 * Occurrences in (after, until], oldest first; `dates` keeps the last `keep`,
 * `total` counts them all (a lower bound when `exact` is false: a long downtime of a
 * dense schedule is not scanned occurrence by occurrence).
 */
export function occurrencesBetween(
  schedule: string,
  timezone: string,
  after: Date,
  until: Date,
  keep = MISSED_RECORD_CAP,
): { dates: Date[]; total: number; exact: boolean } {
  const c = cron(schedule, timezone);
  const scan = (from: Date, limit: number) => {
    const dates: Date[] = [];
    let count = 0;
    let cursor = from;
    while (count < limit) {
      const next = c.nextRun(cursor);
      if (!next || next.getTime() > until.getTime()) return { dates, count, done: true };
      count++;
      dates.push(next);
      if (dates.length > keep) dates.shift();
      cursor = next;
    }
    return { dates, count, done: false };
  };
  const first = scan(after, SCAN_CAP);
  if (first.done) return { dates: first.dates, total: first.count, exact: true };
  // Too many to walk: estimate the period, then walk only the last stretch.
  const a = first.dates[first.dates.length - 2]!;
  const b = first.dates[first.dates.length - 1]!;
  const period = Math.max(1000, b.getTime() - a.getTime());
  const tail = scan(new Date(Math.max(b.getTime(), until.getTime() - period * keep * 2)), Number.MAX_SAFE_INTEGER);
  return { dates: tail.dates.length >= keep ? tail.dates : [...first.dates, ...tail.dates].slice(-keep), total: first.count + tail.count, exact: false };
}

export interface OccurrencePlan {
  fire?: { at: Date; trigger: RunTrigger };
  /** Recorded as missed (most recent ones, at most MISSED_RECORD_CAP). */
  missed: Date[];
  /** Missed occurrences beyond the cap: counted in the log only. */
  missedUnrecorded: number;
}

/**
 * Decides what to do with the occurrences that are due now (oldest first, all ≤ now):
 * an on-time one fires; late ones are missed, the latest of them caught up when asked.
 */
export function planOccurrences(due: Date[], now: Date, graceMs: number, catchUp: boolean, totalDue = due.length): OccurrencePlan {
  const onTime = due.filter((d) => now.getTime() - d.getTime() <= graceMs);
  const late = due.filter((d) => now.getTime() - d.getTime() > graceMs);
  const plan: OccurrencePlan = { missed: late, missedUnrecorded: Math.max(0, totalDue - due.length) };
  const latestOnTime = onTime[onTime.length - 1];
  if (latestOnTime) {
    plan.fire = { at: latestOnTime, trigger: 'schedule' };
    // Two on-time occurrences (a schedule denser than the grace): the older one is missed too.
    plan.missed = [...late, ...onTime.slice(0, -1)];
  } else if (catchUp && late.length > 0) {
    plan.fire = { at: late[late.length - 1]!, trigger: 'catch_up' };
    plan.missed = late.slice(0, -1);
  }
  if (plan.missed.length > MISSED_RECORD_CAP) {
    plan.missedUnrecorded += plan.missed.length - MISSED_RECORD_CAP;
    plan.missed = plan.missed.slice(-MISSED_RECORD_CAP);
  }
  return plan;
}

export type RunOutcome = 'missed' | 'no_pools' | 'running' | 'succeeded' | 'failed' | 'partial' | 'canceled' | 'interrupted';

/** The outcome of one schedule run, from its record and its pool backups' states. */
export function runOutcome(recorded: RunRecordOutcome, tasks: TaskState[]): RunOutcome {
  if (recorded === 'missed') return 'missed';
  if (tasks.length === 0) return 'no_pools';
  if (tasks.some((s) => s === 'queued' || s === 'running')) return 'running';
  const first = tasks[0]!;
  if (tasks.every((s) => s === first)) return first as RunOutcome;
  if (tasks.some((s) => s === 'succeeded' || s === 'partial')) return 'partial';
  return 'failed';
}
