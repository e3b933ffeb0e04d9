/**
 * The image writer (server/python/backroll_image_writer.py): writes one archive holding a
 * complete preallocated-qcow2 image of a disk read over NBD, re-referencing the base
 * archive's chunks where the dirty bitmap says the guest did not write. It runs with the
 * Python interpreter of the installed borg (the `#!` line of the borg script), in borg's
 * environment (passphrase in BORG_PASSPHRASE, never argv); parameters on stdin.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../../errors.js';
import type { ProcessRunner } from '../process/process-runner.js';
import type { Borg, RepoAccess } from './borg.js';
import { parseBorgLine } from './log-json.js';

export const WRITER_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../python/backroll_image_writer.py');

export interface ImageWriteOptions {
  archive: string;
  /** Incremental: the base archive and the NBD dirty-bitmap context; both null → full read. */
  baseArchive: string | null;
  bitmap: string | null;
  /** The path of the file inside the archive (as borg create would store the disk path). */
  itemPath: string;
  compression: string;
  timestamp: Date;
  socket: string;
  exportName: string;
  virtualSize: number;
  chunkSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: { bytesToRead: number; bytesRead: number; mode: string }) => void;
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Called with each archive as soon as the writer committed it (the disk's, then the config's). */
  onWritten?: (archive: string) => void;
  /**
   * Asked once the disk's archive is written: the restore point's config archive, which the
   * writer then writes in the same process (no second borg start); null: none.
   */
  thenConfig?: (disk: ImageWriteResult) => Promise<ConfigArchiveSpec | null>;
}

export interface ConfigArchiveSpec {
  archive: string;
  timestamp: Date;
  /** Files at the archive root: `[A-Za-z0-9][A-Za-z0-9._-]*` names. */
  files: Array<{ name: string; data: Buffer }>;
}

export interface ConfigArchiveResult {
  archive: string;
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
}

export interface ImageWriteResult {
  mode: 'full' | 'incremental';
  /** Why a requested incremental read became a full one (base missing, other size…). */
  reason: string | null;
  bytesToRead: number;
  bytesRead: number;
  diskSize: number;
  imageSize: number;
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
  durationSeconds: number;
  /** Seconds since the writer started at the end of each phase (extents, layout, repository, plan, data, saved). */
  phases?: Record<string, number>;
  /** The config archive, when `thenConfig` gave one and the writer wrote it. */
  config?: ConfigArchiveResult;
}

/** The interpreter named by a script's `#!` line (`/usr/bin/python3`, or `env python3` → `python3`). */
export function interpreterOf(firstLine: string): string | null {
  const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(firstLine);
  if (!m) return null;
  if (path.basename(m[1]!) === 'env') return m[2] ?? null;
  return m[1]!;
}

function which(cmd: string): string | null {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', cmd);
    if (existsSync(p)) return p;
  }
  return null;
}

export class ImageWriter {
  constructor(
    private readonly borg: Borg,
    private readonly runner: ProcessRunner,
  ) {}

  /** The interpreter that runs the installed borg; null when it cannot be told (then no incremental path). */
  python(): string | null {
    const borgPath = which(this.borg.borgCommand);
    if (!borgPath) return null;
    try {
      return interpreterOf(readFileSync(borgPath, 'utf8').slice(0, 200).split('\n')[0] ?? '');
    } catch {
      return null;
    }
  }

  async write(access: RepoAccess, o: ImageWriteOptions): Promise<ImageWriteResult> {
    const python = this.python();
    if (!python) throw new AppError('unavailable', 'BACKUP.IMAGE_WRITER_UNAVAILABLE', `cannot tell which Python runs ${this.borg.borgCommand}`);
    const input = {
      repo: access.repo,
      archive: o.archive,
      baseArchive: o.baseArchive,
      bitmap: o.bitmap,
      itemPath: o.itemPath,
      compression: o.compression,
      timestamp: o.timestamp.toISOString().slice(0, 19),
      socket: o.socket,
      export: o.exportName,
      virtualSize: o.virtualSize,
      chunkSize: o.chunkSize ?? 1 << 16,
      lockWait: 10,
      thenConfig: o.thenConfig !== undefined,
    };
    let result: ImageWriteResult | null = null;
    let config: ConfigArchiveResult | null = null;
    let error: { code: string; message: string } | null = null;
    let unsupported: string | null = null;
    let stdin: { write(data: string): void; end(): void } | null = null;
    let answer: Promise<void> = Promise.resolve();
    let configWanted = false;
    const r = await this.runner.run(python, [WRITER_SCRIPT], {
      env: this.borg.envFor(access),
      stdin: `${JSON.stringify(input)}\n`,
      ...(o.thenConfig ? { openStdin: (w: { write(data: string): void; end(): void }) => void (stdin = w) } : {}),
      signal: o.signal,
      killGraceMs: 5_000,
      onStdoutLine: (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (m.type === 'progress') o.onProgress?.({ bytesToRead: Number(m.bytesToRead), bytesRead: Number(m.bytesRead), mode: String(m.mode) });
        else if (m.type === 'result') {
          result = m as unknown as ImageWriteResult;
          o.onWritten?.(o.archive);
          const ask = o.thenConfig;
          if (ask) {
            const disk = result;
            // The writer waits on stdin for its config archive (or an empty object).
            answer = ask(disk).then(
              (spec) => {
                configWanted = spec !== null;
                stdin?.write(`${JSON.stringify(spec ? { archive: spec.archive, timestamp: spec.timestamp.toISOString().slice(0, 19), files: spec.files.map((f) => ({ name: f.name, data: f.data.toString('base64') })) } : {})}\n`);
                stdin?.end();
              },
              (err: unknown) => {
                stdin?.end();
                error = { code: 'BACKUP.CONFIG_FAILED', message: `the config archive could not be prepared: ${(err as Error).message}` };
              },
            );
          }
        } else if (m.type === 'config') {
          config = { archive: String(m.archive), originalSize: Number(m.originalSize), compressedSize: Number(m.compressedSize), deduplicatedSize: Number(m.deduplicatedSize) };
          o.onWritten?.(config.archive);
        } else if (m.type === 'error') error = { code: String(m.code), message: String(m.message) };
        else if (m.type === 'unsupported') unsupported = String(m.reason);
      },
      onStderrLine: (line) => {
        const e = parseBorgLine(line);
        if (e?.type === 'log' && (e.level === 'warn' || e.level === 'error')) o.onLog?.(e.level, `borg: ${e.message}`);
      },
    });
    (stdin as { end(): void } | null)?.end();
    await answer;
    if (r.aborted) throw new AppError('conflict', 'BORG.CANCELED', 'the image writer was stopped (canceled)');
    if (unsupported) throw new AppError('unavailable', 'BACKUP.BORG_VERSION_UNVERIFIED', unsupported);
    if (error) {
      const e = error as { code: string; message: string };
      throw new AppError('unavailable', e.code, `writing ${o.archive}: ${e.message}`);
    }
    if (r.code !== 0 || !result) throw new AppError('internal', 'BACKUP.IMAGE_WRITER_FAILED', `the image writer failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join('; ')}`);
    if (configWanted && !config) throw new AppError('internal', 'BACKUP.IMAGE_WRITER_FAILED', `the image writer ended without writing the config archive`);
    return config ? { ...(result as ImageWriteResult), config } : result;
  }
}
