/**
 * The one place that starts local programs: `spawn(command, argv)`, never a shell.
 * The child gets a small explicit environment (PATH, HOME, LANG + what the caller
 * passes), so secrets of this process never leak into it and the caller's secrets
 * (BORG_PASSPHRASE) reach only the child, never argv or logs.
 */
import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Added to the base environment (PATH, HOME, LANG=C.UTF-8). */
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string | Buffer;
  /**
   * Keeps stdin open after `stdin` was written and hands the caller a writer for later lines
   * (a conversation: the child asks on stdout, the caller answers). The caller ends it; the
   * process is killed as usual on abort or timeout.
   */
  openStdin?: (stdin: { write(data: string): void; end(): void }) => void;
  /** On abort: SIGINT, then SIGTERM after `killGraceMs`, then SIGKILL after as long again. */
  signal?: AbortSignal;
  killGraceMs?: number;
  /** Kills the process (as on abort) after this long. */
  timeoutMs?: number;
  /** Called for every complete stderr/stdout line as it arrives (stdout is still collected). */
  onStderrLine?: (line: string) => void;
  onStdoutLine?: (line: string) => void;
  /** Bytes of stdout/stderr kept (the end is kept). Default 32 MiB / 1 MiB. */
  maxStdoutBytes?: number;
  maxStderrBytes?: number;
}

export interface RunResult {
  /** Exit code; null when ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run was stopped by `signal` or `timeoutMs`. */
  aborted: boolean;
  timedOut: boolean;
}

export interface ProcessRunner {
  run(command: string, argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? BASE_PATH, HOME: process.env.HOME ?? '/', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...extra };
}

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

function lineSplitter(onLine: (l: string) => void): { push(b: Buffer): void; end(): void } {
  let rest = '';
  return {
    push(b) {
      const text = rest + b.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) onLine(l.endsWith('\r') ? l.slice(0, -1) : l);
    },
    end() {
      if (rest.length > 0) onLine(rest);
      rest = '';
    },
  };
}

export const nodeProcessRunner: ProcessRunner = {
  run(command, argv, opts = {}) {
    return new Promise<RunResult>((resolve, reject) => {
      if (opts.signal?.aborted) {
        resolve({ code: null, signal: null, stdout: '', stderr: '', aborted: true, timedOut: false });
        return;
      }
      const child = spawn(command, [...argv], {
        cwd: opts.cwd,
        env: baseEnv(opts.env),
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
      });
      const out = new Tail(opts.maxStdoutBytes ?? 32 * 1024 * 1024);
      const err = new Tail(opts.maxStderrBytes ?? 1024 * 1024);
      const outLines = opts.onStdoutLine ? lineSplitter(opts.onStdoutLine) : null;
      const errLines = opts.onStderrLine ? lineSplitter(opts.onStderrLine) : null;
      let aborted = false;
      let timedOut = false;
      const timers: NodeJS.Timeout[] = [];
      const grace = opts.killGraceMs ?? 10_000;
      const stop = () => {
        if (aborted || child.exitCode !== null) return;
        aborted = true;
        child.kill('SIGINT');
        timers.push(setTimeout(() => child.kill('SIGTERM'), grace));
        timers.push(setTimeout(() => child.kill('SIGKILL'), 2 * grace));
      };
      const onAbort = () => stop();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.timeoutMs !== undefined) {
        timers.push(
          setTimeout(() => {
            timedOut = true;
            stop();
          }, opts.timeoutMs),
        );
      }
      child.stdout.on('data', (b: Buffer) => {
        out.push(b);
        outLines?.push(b);
      });
      child.stderr.on('data', (b: Buffer) => {
        err.push(b);
        errLines?.push(b);
      });
      child.stdin.on('error', () => {});
      if (opts.openStdin) {
        if (opts.stdin !== undefined) child.stdin.write(opts.stdin);
        opts.openStdin({ write: (d) => void child.stdin.write(d), end: () => child.stdin.end() });
      } else child.stdin.end(opts.stdin ?? '');
      child.on('error', (e) => {
        opts.signal?.removeEventListener('abort', onAbort);
        for (const t of timers) clearTimeout(t);
        reject(e);
      });
      child.on('close', (code, signal) => {
        opts.signal?.removeEventListener('abort', onAbort);
        for (const t of timers) clearTimeout(t);
        outLines?.end();
        errLines?.end();
        resolve({ code, signal, stdout: out.toString(), stderr: err.toString(), aborted, timedOut });
      });
    });
  },
};
