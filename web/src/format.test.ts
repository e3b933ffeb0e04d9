import { describe, expect, it } from 'vitest';
import { describeTrigger, etaSeconds, formatBytes, formatDuration, formatRelative } from './format';

describe('formatters', () => {
  it('bytes, durations, relative times, ETA and triggers', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(20 * 1024 ** 3)).toBe('20.0 GiB');
    expect(formatBytes(null)).toBe('—');
    expect(formatDuration(45_000)).toBe('45 s');
    expect(formatDuration(200_000)).toBe('3 min 20 s');
    expect(formatDuration(2 * 3600_000 + 5 * 60_000)).toBe('2 h 05 min');
    const now = Date.parse('2026-12-02T14:00:00Z');
    expect(formatRelative('2026-12-02T13:57:00Z', now)).toMatch(/3 minutes ago/);
    expect(formatRelative('2026-12-02T16:00:00Z', now)).toMatch(/in 2 hours/);
    expect(etaSeconds(50, 150, 10)).toBe(10);
    expect(etaSeconds(150, 150, 10)).toBeNull();
    expect(describeTrigger('schedule:abc')).toEqual({ kind: 'scheduled', who: '' });
    expect(describeTrigger('user:admin')).toEqual({ kind: 'manual', who: 'admin' });
    expect(describeTrigger('client:ci')).toEqual({ kind: 'api', who: 'ci' });
  });
});
