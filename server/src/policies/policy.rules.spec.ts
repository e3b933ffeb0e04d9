import { describe, expect, it } from 'vitest';
import { checkRetention, checkTimeZone, nextRuns, parseCompression } from './policy.rules.js';

describe('policy rules', () => {
  it('gives the next five runs of a daily schedule in its time zone', () => {
    const r = nextRuns('0 2 * * *', 'Europe/Paris', new Date('2026-03-27T12:00:00Z'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // 02:00 Paris is 01:00Z before the DST switch and 00:00Z after it; on 29 March
    // 02:00 does not exist (clocks jump to 03:00), so that run happens at 03:00 CEST.
    expect(r.value.map((d) => d.toISOString())).toEqual([
      '2026-03-28T01:00:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:00:00.000Z',
      '2026-03-31T00:00:00.000Z',
      '2026-04-01T00:00:00.000Z',
    ]);
  });

  it('refuses 6-field and malformed expressions, and ones that never fire', () => {
    expect(nextRuns('0 0 2 * * *', 'UTC', new Date())).toMatchObject({ ok: false, code: 'POLICY.SCHEDULE_INVALID' });
    expect(nextRuns('61 * * * *', 'UTC', new Date())).toMatchObject({ ok: false, code: 'POLICY.SCHEDULE_INVALID' });
    expect(nextRuns('every day', 'UTC', new Date())).toMatchObject({ ok: false, code: 'POLICY.SCHEDULE_INVALID' });
    expect(nextRuns('0 0 31 2 *', 'UTC', new Date())).toMatchObject({ ok: false, code: 'POLICY.SCHEDULE_NEVER_RUNS' });
  });

  it('uses classic cron OR semantics for day-of-month and day-of-week', () => {
    const r = nextRuns('0 0 1 * 1', 'UTC', new Date('2026-06-01T00:30:00Z'), 3);
    expect(r.ok && r.value.map((d) => d.toISOString())).toEqual(['2026-06-08T00:00:00.000Z', '2026-06-15T00:00:00.000Z', '2026-06-22T00:00:00.000Z']);
  });

  it('validates retention', () => {
    expect(checkRetention({ daily: 7, weekly: 0, monthly: 0, yearly: 0 }).ok).toBe(true);
    expect(checkRetention({ daily: 0, weekly: 0, monthly: 0, yearly: 0 })).toMatchObject({ ok: false, code: 'POLICY.RETENTION_INVALID' });
    expect(checkRetention({ daily: -1, weekly: 1, monthly: 0, yearly: 0 }).ok).toBe(false);
    expect(checkRetention({ daily: 1.5, weekly: 1, monthly: 0, yearly: 0 }).ok).toBe(false);
  });

  it('validates time zones', () => {
    expect(checkTimeZone('UTC').ok).toBe(true);
    expect(checkTimeZone('America/New_York').ok).toBe(true);
    expect(checkTimeZone('Mars/Olympus')).toMatchObject({ ok: false, code: 'POLICY.TIMEZONE_INVALID' });
  });

  it('parses borg compression settings', () => {
    expect(parseCompression('lz4')).toEqual({ ok: true, value: { algorithm: 'lz4' } });
    expect(parseCompression('none')).toEqual({ ok: true, value: { algorithm: 'none' } });
    expect(parseCompression('zstd')).toEqual({ ok: true, value: { algorithm: 'zstd', level: undefined } });
    expect(parseCompression('zstd,19')).toEqual({ ok: true, value: { algorithm: 'zstd', level: 19 } });
    for (const bad of ['zstd,0', 'zstd,23', 'gzip', 'lz4,3', 'zstd,', '']) {
      expect(parseCompression(bad)).toMatchObject({ ok: false, code: 'POLICY.COMPRESSION_INVALID' });
    }
  });
});
