/**
 * BorgBackup 1.2 through `spawn('borg', argv)`: no shell, `LANG=C.UTF-8`, the passphrase
 * only in the child's environment, `--log-json` on stderr parsed into events (progress
 * and log lines), exit codes and messages mapped to typed errors.
 *
 * Environment decisions:
 * - BORG_BASE_DIR in Backroll's data dir: borg's cache and its "security" records (which
 *   repository id lives where, last nonce) belong to this installation.
 * - BORG_RELOCATED_REPO_ACCESS_IS_OK=no: a repository found at another path than where we
 *   last saw it (or a swapped directory) is refused instead of silently used.
 * - BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: `yes` only when the caller knows the
 *   repository is unencrypted (created by us with encryption none, or an existing BackROLL
 *   repository being listed/imported); `no` for encrypted repositories, so an attacker who
 *   replaces an encrypted repository with an unencrypted one cannot get data written into it.
 */
import path from 'node:path';
import type { AppError } from '../../errors.js';
import { nodeProcessRunner, type ProcessRunner, type RunResult } from '../process/process-runner.js';
import { BorgErrorCode, borgError } from './borg-errors.js';
import { errorSummary, parseBorgLine, type BorgEvent } from './log-json.js';

export type BorgEncryption = 'none' | 'repokey-blake2';

export interface RepoAccess {
  /** Absolute path of the repository directory. */
  repo: string;
  /** For encrypted repositories; never logged, never in argv. */
  passphrase?: string | null;
  /** The repository is known to be unencrypted (see the file comment). */
  unencrypted: boolean;
}

export interface BorgCallOptions {
  signal?: AbortSignal;
  /** Every parsed stderr event (progress, log lines, text). */
  onEvent?: (e: BorgEvent) => void;
  /** Seconds to wait for the repository lock. Default 10. */
  lockWait?: number;
}

export interface ArchiveStats {
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
  nfiles: number;
  durationSeconds: number;
}

export interface ListedArchive {
  name: string;
  id: string;
  /** ISO time (borg's local time, no zone). */
  start: string;
}

export interface RepoInfo {
  id: string;
  location: string;
  lastModified: string | null;
  encryption: string;
  stats: { totalSize: number; totalCompressedSize: number; uniqueSize: number; uniqueCompressedSize: number; totalChunks: number; uniqueChunks: number } | null;
  /** borg's cache and security directories of this repository (under BORG_BASE_DIR). */
  cachePath?: string | null;
  securityDir?: string | null;
}

export interface CreateOptions extends BorgCallOptions {
  archive: string;
  /** Absolute paths (stored without the leading '/'), or relative ones with `cwd`. */
  paths: readonly string[];
  cwd?: string;
  /** `lz4`, `zstd`, `zstd,N`, `none`. */
  compression: string;
  /** Archive time (UTC), instead of now: for imports and tests. */
  timestamp?: Date;
  /** Read block devices' contents (LVM disks). */
  readSpecial?: boolean;
}

export interface PruneOptions extends BorgCallOptions {
  globArchives: string;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepYearly: number;
}

export interface BorgOptions {
  /** Backroll's data dir: BORG_BASE_DIR is `<dataDir>/borg`. */
  baseDir: string;
  runner?: ProcessRunner;
  /** Path of the borg program. Default `borg`. */
  command?: string;
}

const COMPRESSION = /^(lz4|none|zstd(,([1-9]|1[0-9]|2[0-2]))?)$/;

/** Decides what a failed borg run means (pure; unit-tested on captured output). */
export function classifyBorgFailure(r: Pick<RunResult, 'code' | 'stderr'>, events: readonly BorgEvent[], ctx: { command: string; repo: string }): AppError {
  const { msgids, message } = errorSummary(events);
  const all = `${message}\n${r.stderr.slice(-4000)}`;
  const details = { command: ctx.command, repository: ctx.repo, exitCode: r.code, msgids };
  const has = (id: string) => msgids.includes(id);
  if (has('LockTimeout') || has('LockFailed') || has('LockError') || /Failed to create\/acquire the lock/.test(all)) {
    return borgError(
      BorgErrorCode.REPOSITORY_LOCKED,
      `the repository ${ctx.repo} is locked by another borg process; if none runs (a crashed one left the lock), break it: POST /api/v2/virtual-machines/{id}/repository/break-lock (borg break-lock)`,
      details,
    );
  }
  if (/No space left on device|Errno 28|InsufficientFreeSpaceError|Insufficient free space/.test(all) || has('Repository.InsufficientFreeSpaceError')) {
    return borgError(BorgErrorCode.STORAGE_FULL, `the backup storage of ${ctx.repo} is full: free space or prune old restore points (${message})`, details);
  }
  if (has('Repository.DoesNotExist') || has('Repository.InvalidRepository')) {
    return borgError(BorgErrorCode.REPOSITORY_NOT_FOUND, `no borg repository at ${ctx.repo}: ${message}`, details);
  }
  if (has('Repository.AlreadyExists')) return borgError(BorgErrorCode.REPOSITORY_EXISTS, `a repository already exists at ${ctx.repo}`, details);
  if (has('PassphraseWrong')) return borgError(BorgErrorCode.PASSPHRASE_WRONG, `the passphrase of ${ctx.repo} is wrong`, details);
  if (has('Archive.AlreadyExists')) return borgError(BorgErrorCode.ARCHIVE_EXISTS, message, details);
  if (has('Archive.DoesNotExist')) return borgError(BorgErrorCode.ARCHIVE_NOT_FOUND, message, details);
  if (has('Cache.RepositoryAccessAborted') || /previously unknown unencrypted repository/.test(all)) {
    return borgError(BorgErrorCode.REPOSITORY_UNENCRYPTED, `${ctx.repo} is unencrypted but an encrypted repository was expected (or it is unknown): refused`, details);
  }
  if (has('Cache.RepositoryReplay') || has('Cache.RepositoryIDNotUnique') || /repository was previously located at|RepositoryReplay/.test(all)) {
    return borgError(BorgErrorCode.REPOSITORY_RELOCATED, `${ctx.repo} was moved or replaced since Backroll last used it: refused (${message})`, details);
  }
  return borgError(BorgErrorCode.FAILED, `borg ${ctx.command} failed on ${ctx.repo} (exit ${r.code}): ${message || r.stderr.trim().split('\n').slice(-3).join('; ')}`, details);
}

export class Borg {
  private readonly runner: ProcessRunner;
  private readonly command: string;

  constructor(private readonly opts: BorgOptions) {
    this.runner = opts.runner ?? nodeProcessRunner;
    this.command = opts.command ?? 'borg';
  }

  async version(): Promise<string> {
    const r = await this.spawn(['--version'], {}, {});
    return r.stdout.trim();
  }

  async init(access: RepoAccess, encryption: BorgEncryption, o: BorgCallOptions = {}): Promise<void> {
    if (encryption !== 'none' && !access.passphrase) throw borgError(BorgErrorCode.FAILED, 'an encrypted repository needs a passphrase');
    await this.call('init', access, ['init', `--encryption=${encryption}`, access.repo], o);
  }

  async create(access: RepoAccess, c: CreateOptions): Promise<ArchiveStats> {
    if (!COMPRESSION.test(c.compression)) throw borgError(BorgErrorCode.FAILED, `unsupported compression ${JSON.stringify(c.compression)}`);
    const args = ['create', '--json', '--progress', '--compression', c.compression, '--checkpoint-interval', '86400'];
    if (c.timestamp) args.push('--timestamp', c.timestamp.toISOString().slice(0, 19));
    if (c.readSpecial) args.push('--read-special');
    args.push(`${access.repo}::${c.archive}`, '--', ...c.paths);
    const r = await this.call('create', access, args, c, c.cwd);
    const out = JSON.parse(r.stdout) as { archive: { duration: number; stats: { original_size: number; compressed_size: number; deduplicated_size: number; nfiles: number } } };
    const s = out.archive.stats;
    return { originalSize: s.original_size, compressedSize: s.compressed_size, deduplicatedSize: s.deduplicated_size, nfiles: s.nfiles, durationSeconds: out.archive.duration };
  }

  async list(access: RepoAccess, o: BorgCallOptions & { globArchives?: string } = {}): Promise<ListedArchive[]> {
    const args = ['list', '--json'];
    if (o.globArchives) args.push('--glob-archives', o.globArchives);
    args.push(access.repo);
    const r = await this.call('list', access, args, o);
    const out = JSON.parse(r.stdout) as { archives: Array<{ name: string; id: string; start?: string; time?: string }> };
    return out.archives.map((a) => ({ name: a.name, id: a.id, start: a.start ?? a.time ?? '' }));
  }

  /** `borg info --json` of the repository, or of one archive with `archive`. */
  async info(access: RepoAccess, o: BorgCallOptions = {}): Promise<RepoInfo> {
    const r = await this.call('info', access, ['info', '--json', access.repo], o);
    const out = JSON.parse(r.stdout) as {
      repository: { id: string; location: string; last_modified?: string };
      encryption: { mode: string };
      cache?: { path?: string; stats?: { total_size: number; total_csize: number; unique_size: number; unique_csize: number; total_chunks: number; total_unique_chunks: number } };
      security_dir?: string;
    };
    const s = out.cache?.stats;
    return {
      id: out.repository.id,
      location: out.repository.location,
      lastModified: out.repository.last_modified ?? null,
      encryption: out.encryption.mode,
      stats: s
        ? { totalSize: s.total_size, totalCompressedSize: s.total_csize, uniqueSize: s.unique_size, uniqueCompressedSize: s.unique_csize, totalChunks: s.total_chunks, uniqueChunks: s.total_unique_chunks }
        : null,
      cachePath: out.cache?.path ?? null,
      securityDir: out.security_dir ?? null,
    };
  }

  async archiveInfo(access: RepoAccess, archive: string, o: BorgCallOptions = {}): Promise<ArchiveStats> {
    const r = await this.call('info', access, ['info', '--json', `${access.repo}::${archive}`], o);
    const out = JSON.parse(r.stdout) as { archives: Array<{ duration: number; stats: { original_size: number; compressed_size: number; deduplicated_size: number; nfiles: number } }> };
    const a = out.archives[0]!;
    return { originalSize: a.stats.original_size, compressedSize: a.stats.compressed_size, deduplicatedSize: a.stats.deduplicated_size, nfiles: a.stats.nfiles, durationSeconds: a.duration };
  }

  /** Prunes the archives matching the glob (one archive series: `vda_disk_*`, `config_*`). */
  async prune(access: RepoAccess, p: PruneOptions): Promise<void> {
    const keep = (flag: string, n: number) => (n > 0 ? [flag, String(n)] : []);
    const args = [
      'prune',
      '--glob-archives',
      p.globArchives,
      ...keep('--keep-daily', p.keepDaily),
      ...keep('--keep-weekly', p.keepWeekly),
      ...keep('--keep-monthly', p.keepMonthly),
      ...keep('--keep-yearly', p.keepYearly),
    ];
    // borg refuses a prune that keeps nothing: Backroll's retention then keeps the newest.
    if (p.keepDaily + p.keepWeekly + p.keepMonthly + p.keepYearly === 0) args.push('--keep-last', '1');
    args.push(access.repo);
    await this.call('prune', access, args, p);
  }

  async compact(access: RepoAccess, o: BorgCallOptions = {}): Promise<void> {
    await this.call('compact', access, ['compact', access.repo], o);
  }

  /** Deletes archives by name (borg 1.2: `borg delete REPO -- ARCHIVE...`; `--`: a name starting with `-` is never an option). */
  async deleteArchives(access: RepoAccess, archives: readonly string[], o: BorgCallOptions = {}): Promise<void> {
    if (archives.length === 0) return;
    await this.call('delete', access, ['delete', access.repo, '--', ...archives], o);
  }

  /** BORG.CHECK_FAILED when borg reports problems. */
  async check(access: RepoAccess, o: BorgCallOptions & { verifyData?: boolean } = {}): Promise<void> {
    const args = ['check', ...(o.verifyData ? ['--verify-data'] : []), access.repo];
    try {
      await this.call('check', access, args, o);
    } catch (err) {
      const e = err as AppError;
      if (e.code === BorgErrorCode.FAILED) throw borgError(BorgErrorCode.CHECK_FAILED, e.message.replace(/^borg check failed/, 'borg check found problems'), e.details);
      throw err;
    }
  }

  async breakLock(access: RepoAccess, o: BorgCallOptions = {}): Promise<void> {
    await this.call('break-lock', access, ['break-lock', access.repo], o);
  }

  /** The environment borg runs with for this repository (for tools built on borg's own classes, e.g. the image writer). */
  envFor(access: RepoAccess): Record<string, string> {
    return this.env(access);
  }

  /** The borg command this adapter runs. */
  get borgCommand(): string {
    return this.command;
  }

  private env(access: RepoAccess): Record<string, string> {
    const env: Record<string, string> = {
      BORG_BASE_DIR: path.join(this.opts.baseDir, 'borg'),
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'no',
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: access.unencrypted ? 'yes' : 'no',
      BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'NO',
      BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'NO',
      BORG_DISPLAY_PASSPHRASE: 'no',
      // borg prune buckets archives by local time: UTC makes it match the retention function.
      TZ: 'UTC',
    };
    if (access.passphrase) env.BORG_PASSPHRASE = access.passphrase;
    return env;
  }

  private async call(command: string, access: RepoAccess, args: string[], o: BorgCallOptions, cwd?: string): Promise<RunResult> {
    const [sub, ...rest] = args;
    const full = [sub!, '--log-json', '--lock-wait', String(o.lockWait ?? 10), ...rest];
    const events: BorgEvent[] = [];
    const r = await this.spawn(full, { env: this.env(access), cwd, signal: o.signal }, { events, onEvent: o.onEvent });
    if (r.aborted) throw borgError(BorgErrorCode.CANCELED, `borg ${command} was stopped (canceled)`, { repository: access.repo });
    // Exit 1 is "warning": the operation completed (e.g. a file changed while read).
    if (r.code !== 0 && r.code !== 1) throw classifyBorgFailure(r, events, { command, repo: access.repo });
    return r;
  }

  private async spawn(argv: string[], run: { env?: Record<string, string>; cwd?: string; signal?: AbortSignal }, sink: { events?: BorgEvent[]; onEvent?: (e: BorgEvent) => void }): Promise<RunResult> {
    try {
      return await this.runner.run(this.command, argv, {
        ...run,
        killGraceMs: 15_000,
        onStderrLine: (line) => {
          const e = parseBorgLine(line);
          if (!e) return;
          if (sink.events && e.type !== 'archive_progress' && e.type !== 'file_status') {
            sink.events.push(e);
            if (sink.events.length > 200) sink.events.shift();
          }
          sink.onEvent?.(e);
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw borgError(BorgErrorCode.NOT_INSTALLED, `borg is not installed on this worker (${this.command}): install borgbackup`);
      throw err;
    }
  }
}
