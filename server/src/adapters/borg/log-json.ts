/**
 * Pure parsing of `borg --log-json` stderr lines (borg 1.2). Every line is one JSON
 * object with a `type`: log_message, archive_progress, progress_message,
 * progress_percent, file_status. Non-JSON lines (tracebacks, prompts) come back as text.
 */

export type BorgEvent =
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string; msgid: string | null; name: string | null }
  | { type: 'archive_progress'; originalSize: number; compressedSize: number; deduplicatedSize: number; nfiles: number; path: string | null; finished: boolean; time: number | null }
  | { type: 'progress'; operation: number | null; msgid: string | null; message: string | null; current: number | null; total: number | null; finished: boolean }
  | { type: 'file_status'; status: string; path: string }
  | { type: 'text'; message: string };

const LEVELS: Record<string, 'debug' | 'info' | 'warn' | 'error'> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
};

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function parseBorgLine(line: string): BorgEvent | null {
  const trimmed = line.trim();
  if (trimmed === '') return null;
  if (!trimmed.startsWith('{')) return { type: 'text', message: trimmed };
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    return { type: 'text', message: trimmed };
  }
  switch (o.type) {
    case 'log_message':
      return {
        type: 'log',
        level: LEVELS[str(o.levelname) ?? ''] ?? 'info',
        message: str(o.message) ?? '',
        msgid: str(o.msgid),
        name: str(o.name),
      };
    case 'archive_progress':
      return {
        type: 'archive_progress',
        originalSize: num(o.original_size) ?? 0,
        compressedSize: num(o.compressed_size) ?? 0,
        deduplicatedSize: num(o.deduplicated_size) ?? 0,
        nfiles: num(o.nfiles) ?? 0,
        path: str(o.path),
        finished: o.finished === true,
        time: num(o.time),
      };
    case 'progress_message':
    case 'progress_percent':
      return {
        type: 'progress',
        operation: num(o.operation),
        msgid: str(o.msgid),
        message: str(o.message),
        current: num(o.current),
        total: num(o.total),
        finished: o.finished === true,
      };
    case 'file_status':
      return { type: 'file_status', status: str(o.status) ?? '', path: str(o.path) ?? '' };
    default:
      return { type: 'text', message: trimmed };
  }
}

export interface CreateProgress {
  bytesDone: number;
  bytesTotal: number;
  percent: number;
  rateBytesPerSecond: number | null;
}

/**
 * Turns archive_progress events of one `borg create` of a file of `totalBytes` into
 * progress: percent of the file read, bytes, and the rate between the first and the
 * latest event (borg's own timestamps).
 */
export class CreateProgressTracker {
  private first: { bytes: number; time: number } | null = null;
  private last: CreateProgress | null = null;

  constructor(private readonly totalBytes: number) {}

  update(e: BorgEvent): CreateProgress | null {
    if (e.type !== 'archive_progress' || e.finished) return null;
    const time = e.time ?? Date.now() / 1000;
    if (!this.first) this.first = { bytes: e.originalSize, time };
    const dt = time - this.first.time;
    const rate = dt > 0 ? (e.originalSize - this.first.bytes) / dt : null;
    const done = Math.min(e.originalSize, this.totalBytes);
    this.last = {
      bytesDone: done,
      bytesTotal: this.totalBytes,
      percent: this.totalBytes > 0 ? Math.min(100, (100 * done) / this.totalBytes) : 100,
      rateBytesPerSecond: rate,
    };
    return this.last;
  }

  get latest(): CreateProgress | null {
    return this.last;
  }
}

/** The error lines of a failed run: log messages at error level, and text (tracebacks). */
export function errorSummary(events: readonly BorgEvent[]): { msgids: string[]; message: string } {
  const msgids: string[] = [];
  const lines: string[] = [];
  for (const e of events) {
    if (e.type === 'log' && (e.level === 'error' || e.level === 'warn')) {
      if (e.msgid) msgids.push(e.msgid);
      lines.push(e.message);
    } else if (e.type === 'text') {
      lines.push(e.message);
    }
  }
  return { msgids, message: lines.slice(-8).join('; ') };
}
