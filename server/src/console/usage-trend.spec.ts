import { describe, expect, it } from 'vitest';
import { dedupRatio, estimateFullAt, lastOfEachDay } from './usage-trend.js';

const DAY = 86_400_000;
const t0 = Date.parse('2026-11-01T00:00:00.000Z');
const at = (ms: number) => new Date(ms).toISOString();

describe('storage usage trend', () => {
  it('extrapolates a linear growth to the full date', () => {
    // 10 GB/day on 1000 GB, 100 GB used at t0 → full 90 days after t0.
    const samples = Array.from({ length: 10 }, (_, i) => ({ at: at(t0 + i * DAY), usedBytes: 100e9 + i * 10e9, capacityBytes: 1000e9 }));
    expect(estimateFullAt(samples, new Date(t0 + 9 * DAY))).toBe(at(t0 + 90 * DAY));
  });
  it('gives no date for a flat or shrinking usage, or too few samples', () => {
    expect(estimateFullAt([{ at: at(t0), usedBytes: 5, capacityBytes: 10 }, { at: at(t0 + DAY), usedBytes: 5, capacityBytes: 10 }], new Date(t0))).toBeNull();
    expect(estimateFullAt([{ at: at(t0), usedBytes: 6, capacityBytes: 10 }, { at: at(t0 + DAY), usedBytes: 5, capacityBytes: 10 }], new Date(t0))).toBeNull();
    expect(estimateFullAt([{ at: at(t0), usedBytes: 6, capacityBytes: 10 }], new Date(t0))).toBeNull();
  });
  it('keeps the last sample of each day', () => {
    const s = [at(t0), at(t0 + 3_600_000), at(t0 + DAY)].map((a) => ({ at: a }));
    expect(lastOfEachDay(s)).toEqual([s[1], s[2]]);
  });
  it('computes the deduplication ratio', () => {
    expect(dedupRatio(600, 100)).toBe(6);
    expect(dedupRatio(0, 0)).toBeNull();
  });
});
