/** Formatters of the admin screens that the shared ../../format.ts has no equivalent of. */
import { formatRun } from './cron';

/** Absolute time in a zone (the browser's by default), the same on every browser: "Wed 3 Dec 2026, 02:00". */
export function when(iso: string | null | undefined, timeZone?: string): string {
  if (!iso) return '—';
  return formatRun(iso, timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone);
}

/** 6.04 → "6.0×" */
export function ratio(r: number | null | undefined): string {
  return r === null || r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(1)}×`;
}
