import { Cron } from 'croner';
import { describe, expect, it } from 'vitest';
import { convertSchedule } from './schedule.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const convert = (s: string, tz = 'Europe/Paris') => convertSchedule(s, tz, NOW);

/** Days (YYYY-MM-DD in UTC) a schedule fires on in 2026, through croner as the scheduler runs it. */
function days(schedule: string, count = 60): string[] {
  const cron = new Cron(schedule, { timezone: 'UTC', paused: true, legacyMode: true });
  return cron.nextRuns(count, NOW).map((d) => d.toISOString().slice(0, 10));
}

/** Days Celery (BackROLL) fires "M H dom mon dow" on: every field must match. */
function celeryDays(dom: (d: number) => boolean, dow: (w: number) => boolean, count = 60): string[] {
  const out: string[] = [];
  for (let t = NOW.getTime(); out.length < count; t += 86_400_000) {
    const d = new Date(t);
    if (dom(d.getUTCDate()) && dow(d.getUTCDay())) out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

describe('convertSchedule: BackROLL (Celery crontab) → Backroll cron', () => {
  it('keeps what the BackROLL UI writes, the whole week becoming *', () => {
    expect(convert('30 1 * * 1,2,3,4,5,6,7')).toEqual({ ok: true, exact: true, schedule: '30 1 * * *', notes: [] });
    expect(convert('0 22 * * 1,3,5')).toEqual({ ok: true, exact: true, schedule: '0 22 * * 1,3,5', notes: [] });
    expect(convert('  0   2 * * 7 ')).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * 7' });
  });

  it('keeps steps, ranges and lists; writes names as numbers', () => {
    expect(convert('*/15 8-18/2 * * MON-fri')).toMatchObject({ ok: true, exact: true, schedule: '*/15 8-18/2 * * 1-5' });
    expect(convert('0 3 1 jan,Jul *')).toMatchObject({ ok: true, exact: true, schedule: '0 3 1 1,7 *' });
    expect(convert('0 3 1-31 * ?')).toMatchObject({ ok: true, exact: true, schedule: '0 3 * * *' });
  });

  it('expands croniter macros and drops a seconds field BackROLL never used', () => {
    expect(convert('@daily')).toMatchObject({ ok: true, exact: true, schedule: '0 0 * * *' });
    expect(convert('@WEEKLY')).toMatchObject({ ok: true, exact: true, schedule: '0 0 * * 0' });
    const six = convert('0 2 * * * 30');
    expect(six).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * *' });
    expect(six.ok && six.notes[0]).toContain('6th field "30"');
  });

  it('writes "days 8-14 and Monday" (Celery: both) as the second Monday, firing on exactly the same days', () => {
    const r = convert('0 2 8-14 * 1');
    expect(r).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * 1#2' });
    expect(days('0 2 * * 1#2', 12)).toEqual(celeryDays((d) => d >= 8 && d <= 14, (w) => w === 1, 12));
    expect(convert('0 2 22-28 * 0,6')).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * 0#4,6#4' });
    expect(convert('0 2 1,2,3,4,5,6,7 * sun')).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * 0#1' });
  });

  it('cannot express Friday the 13th: keeps the rarer field, runs on every day BackROLL did, and says why', () => {
    const r = convert('0 2 13 * 5');
    expect(r.ok && !r.exact).toBe(true);
    if (!r.ok || r.exact) throw new Error('expected an inexact conversion');
    expect(r.schedule).toBe('0 2 13 * *');
    expect(r.reason).toContain('both the day of month (13) and the day of week (5)');
    const converted = days(r.schedule, 24);
    for (const d of celeryDays((x) => x === 13, (w) => w === 5, 2)) expect(converted).toContain(d);
  });

  it('keeps the weekday when it fires less often than the days of the month', () => {
    const r = convert('0 2 1-20 * 0');
    expect(r).toMatchObject({ ok: true, exact: false, schedule: '0 2 * * 0' });
    if (!r.ok) throw new Error('expected a conversion');
    const converted = days(r.schedule, 20);
    for (const d of celeryDays((x) => x <= 20, (w) => w === 0, 10)) expect(converted).toContain(d);
  });

  it('refuses what cannot be converted, with the reason', () => {
    expect(convert('')).toEqual({ ok: false, reason: 'the schedule is empty' });
    expect(convert('0 2 L * *')).toMatchObject({ ok: false, reason: expect.stringContaining('"L" in the day of month field') });
    expect(convert('0 2 * * 5#3')).toMatchObject({ ok: false });
    expect(convert('0 25 * * *')).toMatchObject({ ok: false, reason: expect.stringContaining('25 is out of range for the hour field (0-23)') });
    expect(convert('0 2 * *')).toMatchObject({ ok: false, reason: expect.stringContaining('has 4 fields') });
    expect(convert('@reboot')).toMatchObject({ ok: false, reason: expect.stringContaining('not a time schedule') });
    expect(convert('0 2 5-1 * *')).toMatchObject({ ok: false, reason: expect.stringContaining('goes backwards') });
    expect(convert('0 0 30 2 *')).toMatchObject({ ok: false, reason: expect.stringContaining('never fires') });
  });

  it('reads 7 and 0 as Sunday, as BackROLL did (`% 7`)', () => {
    expect(convert('0 2 8-14 * 7')).toMatchObject({ ok: true, exact: true, schedule: '0 2 * * 0#2' });
    expect(convert('0 2 * * 0,1,2,3,4,5,7')).toMatchObject({ ok: true, schedule: '0 2 * * 0,1,2,3,4,5,7' });
    expect(convert('0 2 * * 0-6')).toMatchObject({ ok: true, schedule: '0 2 * * *' });
  });
});
