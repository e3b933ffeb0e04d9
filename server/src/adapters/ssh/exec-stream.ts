/** Wiring of a streaming command's SSH channel: stdout with backpressure, timeouts, exit status. */
import { PassThrough, type Readable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import type { AppError } from '../../errors.js';
import { exitOf } from './channel-exit.js';
import type { ExecStream, ExecStreamOptions, StreamResult } from './ssh-client.js';
import { SshErrorCode, sshError } from './ssh-errors.js';

const DEFAULT_MAX_STDERR = 64 * 1024;

export interface ChannelControl {
  /** `user@host:port`, for messages. */
  address: string;
  kill(channel: ClientChannel): void;
  /** The error for a channel that closed without an exit status. */
  lostError(): AppError;
}

export function wireExecStream(
  channel: ClientChannel,
  argv: readonly string[],
  opts: ExecStreamOptions,
  /** Bytes for stdin (secretEnv prefix and/or a Buffer stdin), written before a Readable stdin. */
  stdinBytes: Buffer | null,
  ctl: ChannelControl,
): ExecStream {
  const program = argv[0]!;
  const address = ctl.address;
  const stdout = new PassThrough();
  const maxStderr = opts.maxStderrBytes ?? DEFAULT_MAX_STDERR;
  let stderr = Buffer.alloc(0);
  let exitCode: number | null | undefined;
  let exitSignal: string | null = null;
  let settled = false;
  let total: NodeJS.Timeout | undefined;
  let idle: NodeJS.Timeout | undefined;
  let resolveResult!: (r: StreamResult) => void;
  let rejectResult!: (e: unknown) => void;
  const result = new Promise<StreamResult>((res, rej) => {
    resolveResult = res;
    rejectResult = rej;
  });
  result.catch(() => {});

  const stopTimers = () => {
    clearTimeout(total);
    clearTimeout(idle);
  };
  const fail = (e: AppError) => {
    if (settled) return;
    settled = true;
    stopTimers();
    ctl.kill(channel);
    channel.unpipe(stdout);
    // Only emit 'error' when someone listens: an unobserved stream must not crash the process
    // (the error is in `result` anyway).
    if (stdout.listenerCount('error') > 0) stdout.destroy(e);
    else stdout.destroy();
    rejectResult(e);
  };
  const timeoutError = (what: string, ms: number) =>
    sshError(SshErrorCode.TIMEOUT, `command ${program} on ${address} ${what} ${ms} ms and was killed`, {
      address,
      argv: [...argv],
      timeoutMs: ms,
    });
  const armIdle = () => {
    if (opts.idleTimeoutMs === undefined) return;
    clearTimeout(idle);
    idle = setTimeout(() => fail(timeoutError('sent nothing for', opts.idleTimeoutMs!)), opts.idleTimeoutMs);
  };
  if (opts.timeoutMs !== undefined) {
    total = setTimeout(() => fail(timeoutError('did not finish within', opts.timeoutMs!)), opts.timeoutMs);
  }
  armIdle();

  channel.on('data', armIdle);
  channel.stderr.on('data', (d: Buffer) => {
    armIdle();
    stderr = Buffer.concat([stderr, d]);
    if (stderr.length > maxStderr) stderr = stderr.subarray(stderr.length - maxStderr);
  });
  channel.on('exit', (code: number | null, signal?: string) => {
    exitCode = code;
    exitSignal = signal ?? null;
  });
  channel.on('error', () => {});
  channel.pipe(stdout);
  channel.on('close', () => {
    if (settled) return;
    if (exitCode === undefined) ({ code: exitCode, signal: exitSignal } = exitOf(channel) ?? { code: undefined, signal: null });
    if (exitCode === undefined) return fail(ctl.lostError());
    settled = true;
    stopTimers();
    resolveResult({ code: exitCode, signal: exitSignal, stderr: stderr.toString('utf8') });
  });
  stdout.on('close', () => {
    // The consumer destroyed stdout early: nobody reads any more, stop the remote command.
    if (!settled && !stdout.readableEnded) {
      fail(sshError(SshErrorCode.SSH_FAILED, `stdout of ${program} on ${address} was closed by the reader`, { address }));
    }
  });

  const src = opts.stdin;
  if (src !== undefined && typeof src !== 'string' && !Buffer.isBuffer(src)) {
    if (stdinBytes) channel.write(stdinBytes);
    (src as Readable).on('error', (e) =>
      fail(sshError(SshErrorCode.SSH_FAILED, `stdin source for ${program} failed: ${e.message}`, { address }, e)),
    );
    (src as Readable).pipe(channel);
  } else if (stdinBytes && stdinBytes.length > 0) {
    channel.end(stdinBytes);
  } else {
    channel.end();
  }

  return {
    stdout,
    result,
    abort: () => fail(sshError(SshErrorCode.SSH_FAILED, `command ${program} on ${address} was aborted`, { address })),
  };
}
