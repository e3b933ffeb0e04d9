import { describe, expect, it } from 'vitest';
import { buildCron, checkCron, DEFAULT_MODEL, describeCron, parseCron, type CronModel } from './cron';

describe('parseCron ↔ buildCron', () => {
  const cases: Array<[string, Partial<CronModel>]> = [
    ['0 2 * * *', { frequency: 'daily', minute: 0, hour: 2 }],
    ['30 23 * * *', { frequency: 'daily', minute: 30, hour: 23 }],
    ['15 * * * *', { frequency: 'hours', minute: 15, everyHours: 1 }],
    ['0 */6 * * *', { frequency: 'hours', minute: 0, everyHours: 6 }],
    ['0 1 * * 1-5', { frequency: 'weekly', minute: 0, hour: 1, weekdays: [1, 2, 3, 4, 5] }],
    ['45 3 * * 0,6', { frequency: 'weekly', minute: 45, hour: 3, weekdays: [0, 6] }],
    ['0 4 1 * *', { frequency: 'monthly', minute: 0, hour: 4, dayOfMonth: 1 }],
  ];
  it.each(cases)('%s round-trips through the builder', (expr, model) => {
    const parsed = parseCron(expr);
    expect(parsed).toMatchObject(model);
    expect(buildCron(parsed)).toBe(expr);
  });

  it('reads weekday names and Sunday as 7', () => {
    expect(parseCron('0 2 * * MON,wed,FRI')).toMatchObject({ frequency: 'weekly', weekdays: [1, 3, 5] });
    expect(parseCron('0 2 * * 7')).toMatchObject({ frequency: 'weekly', weekdays: [0] });
  });

  it('falls back to custom for what the builder cannot express, keeping the other builder fields', () => {
    const fallback: CronModel = { ...DEFAULT_MODEL, hour: 5 };
    for (const expr of ['*/5 * * * *', '0 2 1 1 *', '0 2,14 * * *', '0 2 1 * 1', '0 2 * * */2', 'nonsense', '0 2 * *']) {
      expect(parseCron(expr, fallback)).toEqual({ ...fallback, frequency: 'custom' });
    }
  });

  it('builds compact weekday lists and nothing for custom', () => {
    expect(buildCron({ ...DEFAULT_MODEL, frequency: 'weekly', weekdays: [5, 1, 2, 3, 4] })).toBe('0 2 * * 1-5');
    expect(buildCron({ ...DEFAULT_MODEL, frequency: 'weekly', weekdays: [1, 2, 4] })).toBe('0 2 * * 1,2,4');
    expect(buildCron({ ...DEFAULT_MODEL, frequency: 'custom' })).toBeNull();
  });
});

describe('checkCron', () => {
  it('accepts the forms croner accepts', () => {
    for (const expr of ['0 2 * * *', '*/15 * * * *', '0 0-23/2 * * *', '0 2 1,15 * *', '0 2 * JAN-MAR SUN', '  0   2 * * *  ']) {
      expect(checkCron(expr)).toMatchObject({ ok: true });
    }
  });
  it('names what is wrong', () => {
    expect(checkCron('0 2 * *')).toEqual({ ok: false, message: '4 fields; a schedule has 5: minute hour day-of-month month day-of-week' });
    expect(checkCron('60 2 * * *')).toEqual({ ok: false, message: '"60" is out of range for the minute field (0–59)' });
    expect(checkCron('0 24 * * *')).toEqual({ ok: false, message: '"24" is out of range for the hour field (0–23)' });
    expect(checkCron('0 2 0 * *')).toMatchObject({ ok: false, message: expect.stringContaining('day of month') });
    expect(checkCron('0 5-2 * * *')).toEqual({ ok: false, message: 'the range "5-2" (hour) runs backwards' });
    expect(checkCron('0 */0 * * *')).toMatchObject({ ok: false });
    expect(checkCron('0 2 * * FOO')).toMatchObject({ ok: false });
  });
});

describe('describeCron', () => {
  it.each([
    ['0 2 * * *', 'Every day at 02:00'],
    ['30 23 * * 1-5', 'Every weekday (Monday to Friday) at 23:30'],
    ['0 3 * * 1,3,5', 'Every Monday, Wednesday and Friday at 03:00'],
    ['0 3 * * 0,6', 'Every Saturday and Sunday at 03:00'],
    ['0 3 * * 2-6', 'Every Tuesday to Saturday at 03:00'],
    ['15 * * * *', 'Every hour at minute 15'],
    ['15 */6 * * *', 'Every 6 hours at minute 15 (00:15, 06:15, 12:15 and 18:15)'],
    ['*/10 * * * *', 'Every 10 minutes'],
    ['0 4 1 * *', 'At 04:00, on the 1st of the month'],
    ['0 2,14 * * *', 'Every day at 02:00 and 14:00'],
    ['0 2 1 1 *', 'At 02:00, on the 1st of the month, in January'],
    ['0 2 1 * 1', 'At 02:00, on the 1st of the month or on Monday'],
    ['0 2 * 1-3 *', 'At 02:00, in January to March'],
  ])('%s → %s', (expr, words) => {
    expect(describeCron(expr)).toBe(words);
  });
  it('gives null for an invalid expression', () => {
    expect(describeCron('0 2 * *')).toBeNull();
    expect(describeCron('99 2 * * *')).toBeNull();
  });
});

describe('formatRun', () => {
  it('shows a time in the given zone, the same on every browser', async () => {
    const { formatRun } = await import('./cron');
    expect(formatRun('2026-12-03T07:00:00.000Z', 'America/New_York')).toBe('Thu 3 Dec 2026, 02:00');
    expect(formatRun('2026-07-01T00:30:00.000Z', 'Europe/Paris')).toBe('Wed 1 Jul 2026, 02:30');
    expect(formatRun('2026-12-03T00:00:00.000Z', 'UTC')).toBe('Thu 3 Dec 2026, 00:00');
    expect(formatRun('not a date', 'UTC')).toBe('not a date');
  });
});
