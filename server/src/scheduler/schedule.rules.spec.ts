import { describe, expect, it } from 'vitest';
import { MISSED_RECORD_CAP, nextOccurrence, occurrencesBetween, planOccurrences, runOutcome } from './schedule.rules.js';

const d = (iso: string) => new Date(iso);
const iso = (dates: Date[]) => dates.map((x) => x.toISOString());
const MIN = 60_000;

describe('schedule rules', () => {
  it('finds the next occurrence in the schedule time zone', () => {
    expect(nextOccurrence('30 1 * * *', 'Europe/Paris', d('2026-01-10T12:00:00Z'))?.toISOString()).toBe('2026-01-11T00:30:00.000Z');
    expect(nextOccurrence('* * * * *', 'UTC', d('2026-01-10T12:00:00Z'))?.toISOString()).toBe('2026-01-10T12:01:00.000Z');
  });

  it('lists occurrences in a window, keeping the latest ones', () => {
    const all = occurrencesBetween('*/15 * * * *', 'UTC', d('2026-01-10T12:00:00Z'), d('2026-01-10T13:00:00Z'));
    expect(iso(all.dates)).toEqual(['2026-01-10T12:15:00.000Z', '2026-01-10T12:30:00.000Z', '2026-01-10T12:45:00.000Z', '2026-01-10T13:00:00.000Z']);
    const kept = occurrencesBetween('*/5 * * * *', 'UTC', d('2026-01-10T00:00:00Z'), d('2026-01-11T00:00:00Z'), 3);
    expect(kept).toMatchObject({ total: 288, exact: true });
    expect(iso(kept.dates)).toEqual(['2026-01-10T23:50:00.000Z', '2026-01-10T23:55:00.000Z', '2026-01-11T00:00:00.000Z']);
    const long = occurrencesBetween('* * * * *', 'UTC', d('2026-01-01T00:00:00Z'), d('2026-01-31T00:00:00Z'), 2);
    expect(long.exact).toBe(false);
    expect(long.total).toBeGreaterThan(2000);
    expect(iso(long.dates)).toEqual(['2026-01-30T23:59:00.000Z', '2026-01-31T00:00:00.000Z']);
  });

  it('fires an on-time occurrence', () => {
    const plan = planOccurrences([d('2026-01-10T12:00:00Z')], d('2026-01-10T12:00:02Z'), MIN, false);
    expect(plan.fire).toEqual({ at: d('2026-01-10T12:00:00Z'), trigger: 'schedule' });
    expect(plan.missed).toEqual([]);
  });

  it('records late occurrences as missed, or catches the latest up once', () => {
    const due = [d('2026-01-10T10:00:00Z'), d('2026-01-10T11:00:00Z'), d('2026-01-10T12:00:00Z')];
    const now = d('2026-01-10T12:30:00Z');
    const off = planOccurrences(due, now, MIN, false);
    expect(off.fire).toBeUndefined();
    expect(iso(off.missed)).toEqual(iso(due));
    const on = planOccurrences(due, now, MIN, true);
    expect(on.fire).toEqual({ at: d('2026-01-10T12:00:00Z'), trigger: 'catch_up' });
    expect(iso(on.missed)).toEqual(iso(due.slice(0, 2)));
  });

  it('fires the on-time one after downtime and records the rest missed, even with catch-up', () => {
    const due = [d('2026-01-10T10:00:00Z'), d('2026-01-10T12:00:00Z')];
    const plan = planOccurrences(due, d('2026-01-10T12:00:10Z'), MIN, true);
    expect(plan.fire).toEqual({ at: d('2026-01-10T12:00:00Z'), trigger: 'schedule' });
    expect(iso(plan.missed)).toEqual(['2026-01-10T10:00:00.000Z']);
  });

  it('caps the missed records', () => {
    const due = Array.from({ length: 150 }, (_, i) => new Date(Date.UTC(2026, 0, 1) + i * MIN));
    const plan = planOccurrences(due, new Date(Date.UTC(2026, 0, 2)), MIN, false, 1000);
    expect(plan.missed).toHaveLength(MISSED_RECORD_CAP);
    expect(plan.missed[MISSED_RECORD_CAP - 1]).toEqual(due[149]);
    expect(plan.missedUnrecorded).toBe(900);
  });

  it('summarises a run from its tasks', () => {
    expect(runOutcome('missed', [])).toBe('missed');
    expect(runOutcome('fired', [])).toBe('no_pools');
    expect(runOutcome('fired', ['succeeded', 'running'])).toBe('running');
    expect(runOutcome('caught_up', ['succeeded', 'succeeded'])).toBe('succeeded');
    expect(runOutcome('fired', ['failed', 'failed'])).toBe('failed');
    expect(runOutcome('fired', ['succeeded', 'failed'])).toBe('partial');
    expect(runOutcome('fired', ['interrupted', 'failed'])).toBe('failed');
    expect(runOutcome('fired', ['canceled'])).toBe('canceled');
  });
});
