import { describe, expect, it } from 'vitest';
import { selectRetention } from './retention.js';

const at = (iso: string) => ({ id: iso, time: new Date(`${iso}Z`) });

describe('retention selection (borg prune semantics)', () => {
  it('keeps the newest point of each of the last N days', () => {
    const pts = ['2026-03-10T01:00:00', '2026-03-10T13:00:00', '2026-03-09T05:00:00', '2026-03-08T05:00:00', '2026-03-07T05:00:00'].map(at);
    const r = selectRetention(pts, { daily: 2, weekly: 0, monthly: 0, yearly: 0 });
    expect([...r.keep.keys()].sort()).toEqual(['2026-03-09T05:00:00', '2026-03-10T13:00:00']);
    expect(r.prune.sort()).toEqual(['2026-03-07T05:00:00', '2026-03-08T05:00:00', '2026-03-10T01:00:00']);
  });

  it('weekly and monthly rules skip points kept by an earlier rule', () => {
    // One point a day from 2026-01-01 to 2026-03-31.
    const pts = [];
    for (let d = new Date('2026-01-01T12:00:00Z'); d <= new Date('2026-03-31T12:00:00Z'); d = new Date(d.getTime() + 86_400_000)) {
      pts.push({ id: d.toISOString().slice(0, 10), time: d });
    }
    const r = selectRetention(pts, { daily: 7, weekly: 4, monthly: 3, yearly: 1 });
    const kept = [...r.keep.entries()].sort();
    expect(kept.filter(([, why]) => why.startsWith('daily')).map(([id]) => id)).toEqual([
      '2026-03-25', '2026-03-26', '2026-03-27', '2026-03-28', '2026-03-29', '2026-03-30', '2026-03-31',
    ]);
    // ISO weeks: the newest point of each earlier week is its Sunday.
    expect(kept.filter(([, why]) => why.startsWith('weekly')).map(([id]) => id)).toEqual(['2026-03-01', '2026-03-08', '2026-03-15', '2026-03-22']);
    // March is already kept (daily 03-31): the monthly rule takes Feb and Jan, then the oldest.
    expect(kept.filter(([, why]) => why.startsWith('monthly')).map(([id]) => id)).toEqual(['2026-01-01', '2026-01-31', '2026-02-28']);
    expect(r.keep.get('2026-01-01')).toBe('monthly[oldest] #3');
    // yearly: 2026's newest is kept already; only one year: the oldest is kept already too.
    expect(kept.filter(([, why]) => why.startsWith('yearly'))).toEqual([]);
    expect(r.keep.size + r.prune.length).toBe(pts.length);
  });

  it('ISO week-years at the turn of the year (2026-12-31 is week 53 of 2026, 2027-01-03 too)', () => {
    const pts = ['2026-12-28T00:00:00', '2027-01-03T00:00:00', '2027-01-04T00:00:00'].map(at);
    const r = selectRetention(pts, { daily: 0, weekly: 2, monthly: 0, yearly: 0 });
    expect([...r.keep.keys()].sort()).toEqual(['2027-01-03T00:00:00', '2027-01-04T00:00:00']);
  });

  it('keeps the oldest point when a rule is short of its count', () => {
    const pts = ['2026-03-10T10:00:00', '2026-03-10T09:00:00'].map(at);
    const r = selectRetention(pts, { daily: 3, weekly: 0, monthly: 0, yearly: 0 });
    expect(r.keep.get('2026-03-10T10:00:00')).toBe('daily #1');
    expect(r.keep.get('2026-03-10T09:00:00')).toBe('daily[oldest] #2');
  });

  it('keeps the newest when no rule is set, and handles no points', () => {
    expect([...selectRetention([at('2026-01-01T00:00:00'), at('2026-01-02T00:00:00')], { daily: 0, weekly: 0, monthly: 0, yearly: 0 }).keep.keys()]).toEqual(['2026-01-02T00:00:00']);
    expect(selectRetention([], { daily: 1, weekly: 1, monthly: 1, yearly: 1 })).toEqual({ keep: new Map(), prune: [] });
  });
});
