import { describe, expect, it } from 'vitest';
import { PROTECTION_GRACE_MS, protectedSince, scheduleIntervalMs } from './protection.js';

const DAY = 86_400_000;
const wed = new Date('2026-12-02T12:00:00.000Z'); // a Wednesday

describe('schedule interval', () => {
  it('is a day for a daily schedule and an hour for an hourly one', () => {
    expect(scheduleIntervalMs('0 2 * * *', 'UTC', wed)).toBe(DAY);
    expect(scheduleIntervalMs('15 * * * *', 'Europe/Paris', wed)).toBe(3_600_000);
  });
  it('is the largest gap: three days for weekdays only', () => {
    expect(scheduleIntervalMs('0 2 * * 1-5', 'UTC', wed)).toBe(3 * DAY);
  });
  it('is null for a schedule that does not parse', () => {
    expect(scheduleIntervalMs('not a cron', 'UTC', wed)).toBeNull();
  });
  it('protectedSince = now - interval - grace; nothing protects under an unreadable schedule', () => {
    expect(protectedSince('0 2 * * *', 'UTC', wed)).toBe(new Date(wed.getTime() - DAY - PROTECTION_GRACE_MS).toISOString());
    expect(protectedSince('61 * * * *', 'UTC', wed) > wed.toISOString()).toBe(true);
  });
});
