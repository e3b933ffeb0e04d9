/**
 * When a VM counts as protected: its pool's policy is enabled, its last backup succeeded and
 * its newest restore point is younger than the policy's interval plus a grace period (a
 * backup takes time). The interval of a cron schedule is the largest gap between its next
 * runs: `0 2 * * 1-5` runs daily on weekdays but leaves three days over the weekend.
 */
import { nextRuns } from '../policies/policy.rules.js';

export const PROTECTION_STATES = ['protected', 'atRisk', 'unprotected', 'noPolicy', 'excluded'] as const;
export type Protection = (typeof PROTECTION_STATES)[number];

/** How late a backup may finish after its scheduled time before the VM counts as at risk. */
export const PROTECTION_GRACE_MS = 60 * 60 * 1000;
/** Runs looked at to find the largest gap (enough for weekly patterns; monthly ones show theirs too). */
const RUNS_SAMPLED = 10;

/** The largest gap (ms) between the next runs of a schedule; null when it does not parse or runs once. */
export function scheduleIntervalMs(schedule: string, timeZone: string, from: Date): number | null {
  const runs = nextRuns(schedule, timeZone, from, RUNS_SAMPLED);
  if (!runs.ok || runs.value.length < 2) return null;
  let max = 0;
  for (let i = 1; i < runs.value.length; i++) max = Math.max(max, runs.value[i]!.getTime() - runs.value[i - 1]!.getTime());
  return max;
}

/** The oldest restore point time (ISO) that still counts as protecting a VM under this schedule. */
export function protectedSince(schedule: string, timeZone: string, now: Date): string {
  const interval = scheduleIntervalMs(schedule, timeZone, now);
  // A schedule that cannot be read protects nothing: any restore point is too old.
  if (interval === null) return '9999-12-31T23:59:59.999Z';
  return new Date(now.getTime() - interval - PROTECTION_GRACE_MS).toISOString();
}
