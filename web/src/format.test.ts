import { describe, expect, it } from 'vitest';
import { describeTrigger, etaSeconds, formatBytes, formatDuration, formatReadAmount, formatReadSummary, formatRelative, isReadStep } from './format';

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

  it('how a restore point was read, and which steps report bytes to read', () => {
    const MiB = 1024 ** 2;
    const inc = { mode: 'incremental', bytesToRead: 12 * MiB, bytesRead: 12 * MiB, fullReason: null, diskSize: 1024 * MiB };
    expect(formatReadSummary(inc)).toBe('incremental: 12.0 MiB of 1.0 GiB read');
    expect(formatReadSummary({ ...inc, mode: 'full', fullReason: 'periodic full read' })).toBe('full: 12.0 MiB of 1.0 GiB read (periodic full read)');
    expect(formatReadAmount({ ...inc, diskSize: null })).toBe('12.0 MiB read');
    expect(formatReadSummary({ ...inc, mode: null })).toBe('—');
    expect(formatReadSummary(undefined)).toBe('—');
    expect(isReadStep('vda: incremental: 12 MiB of 1.0 GiB read (12 MiB to read)')).toBe(true);
    expect(isReadStep('sdb: full: 512 B of 64 MiB read (1.0 GiB to read)')).toBe(true);
    expect(isReadStep('vda: full read')).toBe(false); // the disk's start: bytes are not bytes to read yet
    expect(isReadStep('vda: borg create')).toBe(false);
    expect(isReadStep(null)).toBe(false);
  });
});
