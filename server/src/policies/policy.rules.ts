import { Cron } from 'croner';

/** Pure validation of policy settings; each returns an error message or the parsed value. */

export type Result<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

export interface Retention {
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export function checkRetention(r: Retention): Result<Retention> {
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isInteger(v) || v < 0) return { ok: false, code: 'POLICY.RETENTION_INVALID', message: `retention.${k} must be an integer ≥ 0, got ${v}` };
  }
  if (r.daily + r.weekly + r.monthly + r.yearly === 0) {
    return { ok: false, code: 'POLICY.RETENTION_INVALID', message: 'retention keeps nothing: set at least one of daily, weekly, monthly, yearly above 0' };
  }
  return { ok: true, value: r };
}

export function checkTimeZone(tz: string): Result<string> {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return { ok: true, value: tz };
  } catch {
    return { ok: false, code: 'POLICY.TIMEZONE_INVALID', message: `unknown time zone "${tz}": use an IANA name such as UTC or Europe/Paris` };
  }
}

/**
 * A schedule is a classic 5-field cron expression (minute hour day-of-month month
 * day-of-week) that fires at least once; returns its next `count` run times.
 */
export function nextRuns(schedule: string, timeZone: string, from: Date, count = 5): Result<Date[]> {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5) {
    return {
      ok: false,
      code: 'POLICY.SCHEDULE_INVALID',
      message: `schedule "${schedule}" has ${fields.length} fields; expected 5 (minute hour day-of-month month day-of-week), e.g. "0 2 * * *" for 02:00 every day`,
    };
  }
  let runs: Date[];
  try {
    const cron = new Cron(fields.join(' '), { timezone: timeZone, paused: true, legacyMode: true });
    runs = cron.nextRuns(count, from);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, '') : String(err);
    return { ok: false, code: 'POLICY.SCHEDULE_INVALID', message: `schedule "${schedule}" is not a valid cron expression: ${reason}` };
  }
  if (runs.length === 0) {
    return { ok: false, code: 'POLICY.SCHEDULE_NEVER_RUNS', message: `schedule "${schedule}" never fires (e.g. 31 February); fix the day or month` };
  }
  return { ok: true, value: runs };
}

export type Compression = { algorithm: 'none' } | { algorithm: 'lz4' } | { algorithm: 'zstd'; level?: number };

/** `lz4`, `none`, `zstd` or `zstd,N` with N in 1..22 — the borg `--compression` values Backroll allows. */
export function parseCompression(value: string): Result<Compression> {
  const v = value.trim();
  if (v === 'none' || v === 'lz4') return { ok: true, value: { algorithm: v } };
  const m = /^zstd(?:,(\d{1,2}))?$/.exec(v);
  if (m) {
    const level = m[1] === undefined ? undefined : Number(m[1]);
    if (level === undefined || (level >= 1 && level <= 22)) return { ok: true, value: { algorithm: 'zstd', level } };
  }
  return { ok: false, code: 'POLICY.COMPRESSION_INVALID', message: `compression "${value}" is not supported: use lz4, zstd, zstd,N (N from 1 to 22) or none` };
}

export const QUIESCE_MODES = ['off', 'preferred', 'required'] as const;
export const ENCRYPTION_MODES = ['none', 'repokey'] as const;
