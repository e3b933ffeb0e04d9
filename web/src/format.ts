// Formatters shared by every screen. All take null/undefined and answer '—'.
const DASH = '—';
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number | null | undefined, digits = 1): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return DASH;
  const sign = bytes < 0 ? '-' : '';
  let v = Math.abs(bytes);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${sign}${i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : digits)} ${UNITS[i]}`;
}

export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (bytesPerSecond === null || bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond)) return DASH;
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** 45 s, 3 min 20 s, 2 h 05 min, 3 d 4 h. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return DASH;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h${m % 60 ? ` ${String(m % 60).padStart(2, '0')} min` : ''}`;
  const d = Math.floor(h / 24);
  return `${d} d${h % 24 ? ` ${h % 24} h` : ''}`;
}

export function durationBetween(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from) return null;
  const end = to ? Date.parse(to) : Date.now();
  return end - Date.parse(from);
}

const rtf = typeof Intl !== 'undefined' ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;

/** "3 minutes ago", "in 2 hours". */
export function formatRelative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return DASH;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return DASH;
  const diff = (t - now) / 1000;
  const abs = Math.abs(diff);
  const [value, unit]: [number, Intl.RelativeTimeFormatUnit] =
    abs < 45 ? [Math.round(diff), 'second'] :
    abs < 2700 ? [Math.round(diff / 60), 'minute'] :
    abs < 79200 ? [Math.round(diff / 3600), 'hour'] :
    abs < 2592000 ? [Math.round(diff / 86400), 'day'] :
    abs < 31536000 ? [Math.round(diff / 2592000), 'month'] : [Math.round(diff / 31536000), 'year'];
  if (unit === 'second' && abs < 10) return 'just now';
  return rtf ? rtf.format(value, unit) : `${value} ${unit}s`;
}

/** Local date and time, e.g. "2 Dec 2026, 14:05". */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function formatPercent(p: number | null | undefined, digits = 0): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return DASH;
  return `${p.toFixed(digits)} %`;
}

/** Seconds left from bytes done/total and rate. */
export function etaSeconds(done: number | null | undefined, total: number | null | undefined, rate: number | null | undefined): number | null {
  if (!done || !total || !rate || rate <= 0 || total <= done) return null;
  return (total - done) / rate;
}

/** "schedule:<id>" → scheduled, "user:x" → manual by x, "client:y" → API (y). */
export function describeTrigger(startedBy: string | null | undefined): { kind: 'scheduled' | 'manual' | 'api' | 'unknown'; who: string } {
  if (!startedBy) return { kind: 'unknown', who: '' };
  const [prefix, ...rest] = startedBy.split(':');
  const who = rest.join(':');
  if (prefix === 'schedule') return { kind: 'scheduled', who: '' };
  if (prefix === 'user') return { kind: 'manual', who };
  if (prefix === 'client') return { kind: 'api', who };
  return { kind: 'unknown', who: startedBy };
}

export function taskKindLabel(kind: string): string {
  const labels: Record<string, string> = {
    'vm.backup': 'VM backup',
    'pool.backup': 'Pool backup',
    'vm.restore': 'Restore',
    'restore-point.delete': 'Delete restore point',
    'repository.verify': 'Verify repository',
  };
  return labels[kind] ?? kind;
}

/** "12.0 MiB of 1.0 GiB read" (or "12.0 MiB read" when the disk size is unknown); '—' without a read mode. */
export function formatReadAmount(read: { mode: string | null; bytesRead: number | null; diskSize: number | null } | null | undefined): string {
  if (!read?.mode || read.bytesRead === null) return DASH;
  return read.diskSize === null ? `${formatBytes(read.bytesRead)} read` : `${formatBytes(read.bytesRead)} of ${formatBytes(read.diskSize)} read`;
}

/** "incremental: 12.0 MiB of 1.0 GiB read", "full: … (reason)"; '—' for restore points made before incremental backups. */
export function formatReadSummary(read: { mode: string | null; bytesRead: number | null; diskSize: number | null; fullReason?: string | null } | null | undefined): string {
  if (!read?.mode) return DASH;
  const amount = formatReadAmount(read);
  return `${read.mode}${amount === DASH ? '' : `: ${amount}`}${read.mode === 'full' && read.fullReason ? ` (${read.fullReason})` : ''}`;
}

/** A backup step that reads disks ("vda: incremental: 12 MiB of 1 GiB read (…)"): its bytes are bytes read of bytes to read. */
export function isReadStep(step: string | null | undefined): boolean {
  return !!step && /^[A-Za-z0-9_-]+: (incremental|full): .+ read\b/.test(step);
}
