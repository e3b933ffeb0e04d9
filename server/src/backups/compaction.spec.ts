import { describe, expect, it } from 'vitest';
import { compactionDecision } from './compaction.js';

const H = 3_600_000;
const at = (iso: string) => new Date(iso);
const now = at('2026-12-03T12:00:00Z');

describe('compaction decision (pure)', () => {
  it('never compacts when nothing was deleted since the last compaction, whatever its age', () => {
    expect(compactionDecision({ compactedAt: null, deletedSince: null }, now, 24 * H)).toEqual({ compact: false, why: expect.stringMatching(/nothing to reclaim/) });
    expect(compactionDecision({ compactedAt: at('2020-01-01T00:00:00Z'), deletedSince: null }, now, 0).compact).toBe(false);
  });

  it('compacts a repository never compacted as soon as something was deleted', () => {
    expect(compactionDecision({ compactedAt: null, deletedSince: at('2026-12-03T11:00:00Z') }, now, 24 * H)).toEqual({ compact: true, why: expect.stringMatching(/never compacted/) });
  });

  it('defers within the interval, and says when the space comes back', () => {
    const d = compactionDecision({ compactedAt: at('2026-12-03T02:00:00Z'), deletedSince: at('2026-12-03T11:00:00Z') }, now, 24 * H);
    expect(d.compact).toBe(false);
    expect(d.why).toBe('the last compaction was 10 h ago (interval 24 h): the space of the archives deleted since 2026-12-03T11:00:00.000Z is freed by the first backup after 2026-12-04T02:00:00.000Z');
  });

  it('compacts once the interval is over (boundary included)', () => {
    expect(compactionDecision({ compactedAt: at('2026-12-02T12:00:00Z'), deletedSince: at('2026-12-03T11:00:00Z') }, now, 24 * H)).toEqual({ compact: true, why: 'archives were deleted and the last compaction was 24 h ago' });
    expect(compactionDecision({ compactedAt: at('2026-12-02T12:00:01Z'), deletedSince: at('2026-12-03T11:00:00Z') }, now, 24 * H).compact).toBe(false);
  });

  it('interval 0 compacts after every deletion', () => {
    expect(compactionDecision({ compactedAt: now, deletedSince: now }, now, 0).compact).toBe(true);
  });
});
