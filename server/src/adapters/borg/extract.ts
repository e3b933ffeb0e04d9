/**
 * The read side of borg that restores need, beside `Borg` (borg.ts): list an archive's
 * items and stream one file out of an archive (`borg extract --stdout`).
 *
 * Same conventions as borg.ts, which this file reuses: argv only, the small environment of
 * the process runner (`LANG=C.UTF-8`), `BORG_BASE_DIR` in the data dir, the passphrase only in
 * the child's environment, `--log-json` parsed by log-json.ts and failures classified by
 * `classifyBorgFailure`. `borg extract --stdout` needs a streaming child, which the collecting
 * ProcessRunner is not, hence the one `spawn` here.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { AppError } from '../../errors.js';
import { baseEnv, nodeProcessRunner, type ProcessRunner } from '../process/process-runner.js';
import { classifyBorgFailure, type ListedArchive, type RepoAccess } from './borg.js';
import { BorgErrorCode, borgError } from './borg-errors.js';
import { parseBorgLine, type BorgEvent } from './log-json.js';
import { readTar, TarFormatError, type TarFile } from './tar-reader.js';

export interface BorgItem {
  /** As stored: without the leading `/`. */
  path: string;
  /** `-` regular file, `d` directory, `l` symlink… */
  type: string;
  size: number;
}

export interface ExtractStream {
  stdout: Readable;
  /** Resolves when borg exited 0 (or 1, warnings); rejects with a typed error. Has a catch attached. */
  done: Promise<void>;
  /** Stops borg (SIGTERM, SIGKILL after 5 s). `done` then rejects with TASK.CANCELED. */
  abort(): void;
}

export interface BorgReaderOptions {
  /** Backroll's data dir: BORG_BASE_DIR is `<dataDir>/borg`, as for `Borg`. */
  baseDir: string;
  runner?: ProcessRunner;
  /** Default `borg`. */
  command?: string;
  /** Seconds to wait for the repository lock before BORG.REPOSITORY_LOCKED. Default 10. */
  lockWait?: number;
}

/** The environment `Borg` gives its children (kept identical to borg.ts `env`). */
export function borgEnv(baseDir: string, access: RepoAccess): Record<string, string> {
  const env: Record<string, string> = {
    BORG_BASE_DIR: path.join(baseDir, 'borg'),
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'no',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: access.unencrypted ? 'yes' : 'no',
    BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'NO',
    BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'NO',
    BORG_DISPLAY_PASSPHRASE: 'no',
    TZ: 'UTC',
  };
  if (access.passphrase) env.BORG_PASSPHRASE = access.passphrase;
  return env;
}

export class BorgReader {
  private readonly runner: ProcessRunner;
  private readonly command: string;
  private readonly lockWait: number;

  constructor(private readonly opts: BorgReaderOptions) {
    this.runner = opts.runner ?? nodeProcessRunner;
    this.command = opts.command ?? 'borg';
    this.lockWait = opts.lockWait ?? 10;
  }

  private argv(sub: string, rest: string[]): string[] {
    return [sub, '--log-json', '--lock-wait', String(this.lockWait), ...rest];
  }

  async listArchives(access: RepoAccess, signal?: AbortSignal): Promise<ListedArchive[]> {
    const out = await this.call(access, 'list', ['--json', access.repo], signal);
    const parsed = JSON.parse(out) as { archives: Array<{ name: string; id: string; start?: string; time?: string }> };
    return parsed.archives.map((a) => ({ name: a.name, id: a.id, start: a.start ?? a.time ?? '' }));
  }

  /** Every item of an archive (`borg list --json-lines REPO::ARCHIVE`). */
  async listItems(access: RepoAccess, archive: string, signal?: AbortSignal): Promise<BorgItem[]> {
    const out = await this.call(access, 'list', ['--json-lines', `${access.repo}::${archive}`], signal);
    return out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const j = JSON.parse(l) as { path: string; type: string; size?: number };
        return { path: j.path, type: j.type, size: Number(j.size ?? 0) };
      });
  }

  /** A small file of an archive, whole (the config archive's domain.xml, backroll.json). */
  async readFile(access: RepoAccess, archive: string, itemPath: string, signal?: AbortSignal): Promise<Buffer> {
    const x = this.extract(access, archive, itemPath, { signal });
    const chunks: Buffer[] = [];
    try {
      for await (const c of x.stdout) chunks.push(c as Buffer);
    } catch {
      // the reason is in `done`
    }
    await x.done;
    return Buffer.concat(chunks);
  }

  /**
   * Every regular file of a small archive (the config archive: domain.xml, backroll.json,
   * checkpoint.xml) in one borg process: `borg export-tar REPO::ARCHIVE -`, read by the pure tar
   * reader. Instead of a listing plus one `borg extract` per file (three processes, ~0.5 s).
   * More than `maxBytes` of tar is refused (BORG.ARCHIVE_TOO_LARGE): the archive is not a config archive.
   */
  async readSmallFiles(access: RepoAccess, archive: string, o: { signal?: AbortSignal; maxBytes?: number } = {}): Promise<TarFile[]> {
    const max = o.maxBytes ?? 64 * 1024 * 1024;
    const { child, done, abort } = this.spawnBorg('export-tar', access, archive, ['--', `${access.repo}::${archive}`, '-'], null, { signal: o.signal });
    const chunks: Buffer[] = [];
    let total = 0;
    let tooLarge = false;
    try {
      for await (const c of child.stdout!) {
        total += (c as Buffer).length;
        if (total > max) {
          tooLarge = true;
          abort();
          break;
        }
        chunks.push(c as Buffer);
      }
    } catch {
      // the reason is in `done`
    }
    if (tooLarge) {
      await done.catch(() => undefined);
      throw borgError(BorgErrorCode.ARCHIVE_TOO_LARGE, `archive ${archive} holds more than ${max} bytes: it is not a configuration archive`, { repository: access.repo, archive });
    }
    await done;
    try {
      return readTar(Buffer.concat(chunks));
    } catch (err) {
      if (err instanceof TarFormatError) throw borgError(BorgErrorCode.FAILED, `borg export-tar of ${archive} gave an unreadable tar stream: ${err.message}`, { repository: access.repo, archive });
      throw err;
    }
  }

  /** `borg extract --stdout REPO::ARCHIVE PATH`: the file's bytes on `stdout`, with backpressure. */
  extract(access: RepoAccess, archive: string, itemPath: string, o: { signal?: AbortSignal; onEvent?: (e: BorgEvent) => void } = {}): ExtractStream {
    const { child, done, abort } = this.spawnBorg('extract', access, archive, ['--stdout', `${access.repo}::${archive}`, '--', itemPath], null, o);
    return { stdout: child.stdout!, done, abort };
  }

  /**
   * `borg extract --sparse` of one file into `dir` (its cwd): borg writes the file itself (runs
   * of zeros as holes), no byte of it passes through this process. The leading
   * `stripComponents` directories of the item path are dropped, so the file lands at
   * `<dir>/<its base name>`. Owner, mode, ACLs, xattrs and flags of the archive are not
   * trusted: `--numeric-ids --noacls --noxattrs --noflags`, and the caller sets owner and mode
   * afterwards. Progress comes as `progress` events (`--progress`: bytes done of total); borg
   * writes them on its stderr pipe, so a frozen worker stalls it as it stalls `--stdout`.
   */
  extractInto(access: RepoAccess, archive: string, itemPath: string, dir: string, stripComponents: number, o: { signal?: AbortSignal; onEvent?: (e: BorgEvent) => void } = {}): Omit<ExtractStream, 'stdout'> {
    const args = ['--progress', '--sparse', '--numeric-ids', '--noacls', '--noxattrs', '--noflags', '--strip-components', String(stripComponents), `${access.repo}::${archive}`, '--', itemPath];
    const { done, abort } = this.spawnBorg('extract', access, archive, args, dir, o);
    return { done, abort };
  }

  private spawnBorg(sub: 'extract' | 'export-tar', access: RepoAccess, archive: string, args: string[], cwd: string | null, o: { signal?: AbortSignal; onEvent?: (e: BorgEvent) => void }) {
    const child = spawn(this.command, this.argv(sub, args), {
      env: baseEnv(borgEnv(this.opts.baseDir, access)),
      stdio: ['ignore', cwd === null ? 'pipe' : 'ignore', 'pipe'],
      shell: false,
      ...(cwd !== null ? { cwd } : {}),
    });
    const events: BorgEvent[] = [];
    let stderrTail = '';
    let pending = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderrTail = (stderrTail + d).slice(-16 * 1024);
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) {
        const e = parseBorgLine(l);
        if (!e) continue;
        events.push(e);
        if (events.length > 200) events.shift();
        o.onEvent?.(e);
      }
    });
    let aborted = false;
    const abort = () => {
      if (child.exitCode !== null || child.signalCode !== null || aborted) return;
      aborted = true;
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 5000).unref();
    };
    const onAbort = () => abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const done = new Promise<void>((resolve, reject) => {
      child.on('error', (err: NodeJS.ErrnoException) => {
        o.signal?.removeEventListener('abort', onAbort);
        reject(err.code === 'ENOENT' ? borgError(BorgErrorCode.NOT_INSTALLED, `borg is not installed on this worker (${this.command}): install borgbackup`) : err);
      });
      child.on('close', (code) => {
        o.signal?.removeEventListener('abort', onAbort);
        if (aborted) return reject(borgError(BorgErrorCode.CANCELED, `borg ${sub} of ${archive} was stopped`, { repository: access.repo }));
        // Exit 1 is "warning": the data is complete.
        if (code === 0 || code === 1) return resolve();
        reject(classifyBorgFailure({ code, stderr: stderrTail }, events, { command: sub, repo: access.repo }));
      });
    });
    done.catch(() => {});
    if (o.signal?.aborted) abort();
    return { child, done, abort };
  }

  private async call(access: RepoAccess, sub: string, rest: string[], signal?: AbortSignal): Promise<string> {
    const events: BorgEvent[] = [];
    let r;
    try {
      r = await this.runner.run(this.command, this.argv(sub, rest), {
        env: borgEnv(this.opts.baseDir, access),
        signal,
        killGraceMs: 5000,
        onStderrLine: (line) => {
          const e = parseBorgLine(line);
          if (e) events.push(e);
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw borgError(BorgErrorCode.NOT_INSTALLED, `borg is not installed on this worker (${this.command}): install borgbackup`);
      throw err;
    }
    if (r.aborted) throw borgError(BorgErrorCode.CANCELED, `borg ${sub} was stopped (canceled)`, { repository: access.repo });
    if (r.code !== 0 && r.code !== 1) throw classifyBorgFailure(r, events, { command: sub, repo: access.repo }) as AppError;
    return r.stdout;
  }
}
