/** Pure formatting for the terminal client (unit-tested). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '?';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[i]}`;
}

export interface ProgressLike {
  percent: number | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  rateBytesPerSecond: number | null;
  step: string | null;
}

/** `[########------------]  42.0%  1.1 GiB / 2.5 GiB  85.3 MiB/s  vda: borg create` */
export function progressLine(state: string, p: ProgressLike, width = 24): string {
  const pct = p.percent ?? (p.bytesDone !== null && p.bytesTotal ? (100 * p.bytesDone) / p.bytesTotal : null);
  const filled = pct === null ? 0 : Math.max(0, Math.min(width, Math.round((pct / 100) * width)));
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const parts = [bar, pct === null ? '   ?  ' : `${pct.toFixed(1).padStart(5)}%`];
  if (p.bytesDone !== null || p.bytesTotal !== null) parts.push(`${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}`);
  if (p.rateBytesPerSecond) parts.push(`${formatBytes(p.rateBytesPerSecond)}/s`);
  parts.push(state);
  if (p.step) parts.push(p.step);
  return parts.join('  ');
}

export interface ReadLike {
  mode: 'full' | 'incremental' | null;
  bytesToRead: number | null;
  bytesRead: number | null;
  fullReason: string | null;
  diskSize: number | null;
}

/**
 * How a restore point's disks were read: `incremental: 12.0 MiB of 1.0 GiB read`,
 * `full: 1.0 GiB of 1.0 GiB read (periodic full read …)`; `—` for one made before
 * incremental backups (or an older server that does not say).
 */
export function readSummary(read: ReadLike | null | undefined): string {
  if (!read?.mode) return '—';
  const amount = read.bytesRead === null ? '' : read.diskSize === null ? `: ${formatBytes(read.bytesRead)} read` : `: ${formatBytes(read.bytesRead)} of ${formatBytes(read.diskSize)} read`;
  return `${read.mode}${amount}${read.mode === 'full' && read.fullReason ? ` (${read.fullReason})` : ''}`;
}

/** Fixed-width text table; every cell is made printable (no terminal escapes from VM names). */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const clean = (v: string | number | null | undefined) => String(v ?? '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  const cells = [headers, ...rows.map((r) => r.map(clean))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Exit codes of the client: scripts branch on them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, canceled: 3, auth: 4, notFound: 5, unavailable: 6 } as const;

export function exitCodeForTaskState(state: string): number {
  if (state === 'succeeded') return EXIT.ok;
  if (state === 'canceled' || state === 'interrupted') return EXIT.canceled;
  return EXIT.failed;
}
