/**
 * One SSH connection to a hypervisor host (ssh2), with host key pinning and typed errors.
 *
 * Commands are argv arrays; the only string ever sent is `buildCommand(argv)`.
 *
 * Environment: `env` is sent as SSH "env" requests, which OpenSSH silently DROPS unless the
 * server's `AcceptEnv` lists the name (Debian default: LANG LC_*). Use it only for harmless
 * settings. Secrets go in `secretEnv`: delivered on stdin (see stdin-env.ts), never in argv.
 */
import type { Duplex, Readable } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, ParsedKey } from 'ssh2';
import type { AppError } from '../../errors.js';
import { keyChangedError, mapConnectError, type ConnectAttempt } from './connect-error.js';
import { hostKeyFromBlob, normalizeFingerprint, type HostKey } from './fingerprint.js';
import { exitOf, recordExit } from './channel-exit.js';
import { wireExecStream } from './exec-stream.js';
import { buildCommand } from './quote.js';
import { SshErrorCode, sshError } from './ssh-errors.js';
import { wrapWithStdinEnv } from './stdin-env.js';

const { Client, utils } = ssh2;

export type PrivateKeyInput = string | Buffer | { key: string | Buffer; passphrase?: string };

export interface SshConnectOptions {
  host: string;
  port?: number;
  username: string;
  /** Tried in order; the connection fails with HOST.AUTH_FAILED when all are refused. */
  privateKeys: PrivateKeyInput[];
  /** `SHA256:…` of the host key. null/undefined: trust on first use (see `SshConnection.trustedOnFirstUse`). */
  pinnedFingerprint?: string | null;
  /** TCP connect + handshake + authentication. Default 15 s. */
  connectTimeoutMs?: number;
  /** SSH keepalive; a connection is declared dead after 3 missed answers. Default 15 s. */
  keepaliveIntervalMs?: number;
}

export interface ExecOptions {
  /** The command is killed (SIGKILL request + channel close) and HOST.TIMEOUT raised after this. */
  timeoutMs: number;
  stdin?: string | Buffer;
  /** Best effort: dropped by sshd unless allowed by AcceptEnv. Never put secrets here. */
  env?: Record<string, string>;
  /** Delivered on stdin before `stdin`; only the names appear in the remote argv. */
  secretEnv?: Record<string, string>;
  /** Per stream (stdout, stderr). Default 16 MiB; more → HOST.OUTPUT_TOO_LARGE. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  /** Exit status; null when the command was ended by a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecStreamOptions {
  /** Total time limit, if any. */
  timeoutMs?: number;
  /** Limit on time without any byte from the command. A consumer pausing longer trips it too. */
  idleTimeoutMs?: number;
  /** Time allowed to open the channel. Default 30 s. */
  openTimeoutMs?: number;
  stdin?: string | Buffer | Readable;
  env?: Record<string, string>;
  secretEnv?: Record<string, string>;
  /** stderr is kept up to this many bytes (the end is kept). Default 64 KiB. */
  maxStderrBytes?: number;
}

export interface StreamResult {
  code: number | null;
  signal: string | null;
  stderr: string;
}

export interface ExecStream {
  /** The command's stdout, with backpressure. Errors (timeout, lost connection) are emitted on it too. */
  stdout: Readable;
  /**
   * Settles when the command ends. A non-zero exit is NOT a rejection: check `code` before trusting
   * stdout. Rejects with HOST.TIMEOUT / HOST.CONNECTION_LOST. Already has a catch handler attached,
   * so ignoring it does not crash the process.
   */
  result: Promise<StreamResult>;
  /** Kill the command and close the channel. */
  abort(): void;
}

/** What the libvirt (and later borg) adapters need: run argv on a host. */
export interface SshExecutor {
  exec(argv: readonly string[], opts: ExecOptions): Promise<ExecResult>;
  execStream(argv: readonly string[], opts?: ExecStreamOptions): Promise<ExecStream>;
  /**
   * A byte stream to a unix socket on the host (OpenSSH `direct-streamlocal`, as `ssh -L
   * local:remote.sock`), on the same pinned connection. The socket path is sent as data in the
   * channel request, never through a shell. Optional: executors that are not SSH lack it.
   */
  openUnixStream?(remotePath: string, opts?: { openTimeoutMs?: number }): Promise<Duplex>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_KEEPALIVE_MS = 15_000;
const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;
const DEFAULT_OPEN_TIMEOUT_MS = 30_000;

type Ssh2Client = InstanceType<typeof Client>;

function parsePrivateKeys(keys: PrivateKeyInput[]): ParsedKey[] {
  if (keys.length === 0) throw sshError(SshErrorCode.INVALID_CREDENTIALS, 'no private key configured');
  return keys.map((input, i) => {
    const { key, passphrase } = typeof input === 'string' || Buffer.isBuffer(input) ? { key: input } : input;
    const parsed = utils.parseKey(key, passphrase);
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    // Never include the key material in the message.
    if (!first || first instanceof Error) {
      throw sshError(SshErrorCode.INVALID_CREDENTIALS, `private key #${i + 1} cannot be parsed${passphrase ? ' (wrong passphrase?)' : ''}`);
    }
    if (!first.isPrivateKey()) throw sshError(SshErrorCode.INVALID_CREDENTIALS, `key #${i + 1} is not a private key`);
    return first;
  });
}

export class SshConnection implements SshExecutor {
  private closed = false;
  private readonly closeListeners = new Set<() => void>();

  private constructor(
    private readonly client: Ssh2Client,
    /** `user@host:port` */
    readonly address: string,
    /** The server's host key (verified against the pin, or seen for the first time). */
    readonly hostKey: HostKey,
    /** No pin was given: the caller must store `hostKey.fingerprint` to pin it from now on. */
    readonly trustedOnFirstUse: boolean,
  ) {
    client.on('close', () => {
      this.closed = true;
      for (const l of [...this.closeListeners]) l();
      this.closeListeners.clear();
    });
    // After 'ready' errors are followed by 'close'; the listener only keeps them from crashing us.
    client.on('error', () => {});
  }

  static connect(opts: SshConnectOptions): Promise<SshConnection> {
    let keys: ParsedKey[];
    let pinned: string | null;
    try {
      keys = parsePrivateKeys(opts.privateKeys);
      pinned = opts.pinnedFingerprint ? normalizeFingerprint(opts.pinnedFingerprint) : null;
    } catch (err) {
      return Promise.reject(err);
    }
    const port = opts.port ?? 22;
    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const attempt: ConnectAttempt = {
      address: `${opts.username}@${opts.host}:${port}`,
      host: opts.host,
      port,
      username: opts.username,
      timeoutMs,
      keyCount: keys.length,
      socketConnected: false,
      pinnedFingerprint: pinned,
      seenKey: null,
      keyMismatch: false,
    };

    return new Promise<SshConnection>((resolve, reject) => {
      const client = new Client();
      let settled = false;
      let lastError: Error | null = null;
      const finish = (err: AppError | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        if (err) {
          client.removeAllListeners('ready');
          client.on('error', () => {});
          client.destroy();
          reject(err);
          return;
        }
        resolve(new SshConnection(client, attempt.address, attempt.seenKey!, pinned === null));
      };
      // ssh2's readyTimeout covers this already; the guard makes sure the caller is never left hanging.
      const guard = setTimeout(() => {
        finish(mapConnectError(Object.assign(new Error('connect timeout'), { level: 'client-timeout' }), attempt));
      }, timeoutMs + 2_000);

      const hostVerifier = (blob: Buffer): boolean => {
        const seen = hostKeyFromBlob(blob);
        attempt.seenKey = seen;
        if (pinned !== null && seen.fingerprint !== pinned) {
          attempt.keyMismatch = true;
          return false;
        }
        return true;
      };

      client.on('connect', () => {
        attempt.socketConnected = true;
        // Many small request/answer exchanges (virsh, ls, tee): Nagle would hold each last segment for the peer's delayed ACK.
        client.setNoDelay(true);
      });
      client.on('ready', () => {
        if (!attempt.seenKey) {
          // Cannot happen with ssh2 (verification precedes auth); refuse rather than trust blindly.
          finish(keyChangedError(attempt));
          return;
        }
        finish(null);
      });
      client.on('error', (err: Error) => {
        lastError = err;
        finish(mapConnectError(err, attempt));
      });
      client.on('close', () => finish(mapConnectError(lastError, attempt)));

      const config: ConnectConfig = {
        host: opts.host,
        port,
        username: opts.username,
        readyTimeout: timeoutMs,
        keepaliveInterval: opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
        keepaliveCountMax: 3,
        hostVerifier,
        authHandler: keys.map((key) => ({ type: 'publickey' as const, username: opts.username, key })),
      };
      try {
        client.connect(config);
      } catch (err) {
        finish(mapConnectError(err as Error, attempt));
      }
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Called once when the connection closes (or immediately if it already has). Returns an unsubscribe. */
  onClose(listener: () => void): () => void {
    if (this.closed) {
      queueMicrotask(listener);
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    if (this.closed) return;
    this.client.end();
  }

  exec(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    let prepared: { command: string; stdin: Buffer | null };
    try {
      prepared = prepare(argv, opts.secretEnv, typeof opts.stdin === 'string' ? Buffer.from(opts.stdin) : opts.stdin);
    } catch (err) {
      return Promise.reject(err);
    }
    const limit = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    const program = argv[0]!;

    return new Promise<ExecResult>((resolve, reject) => {
      let channel: ClientChannel | null = null;
      let settled = false;
      let exitCode: number | null | undefined;
      let exitSignal: string | null = null;
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;

      const fail = (e: AppError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (channel) this.kill(channel);
        reject(e);
      };
      const timer = setTimeout(() => {
        fail(
          sshError(
            SshErrorCode.TIMEOUT,
            `command ${program} on ${this.address} did not finish within ${opts.timeoutMs} ms and was killed`,
            { address: this.address, argv: [...argv], timeoutMs: opts.timeoutMs },
          ),
        );
      }, opts.timeoutMs);

      this.openChannel(prepared.command, opts.env).then(
        (ch) => {
          if (settled) {
            this.kill(ch);
            return;
          }
          channel = ch;
          ch.on('data', (d: Buffer) => {
            outLen += d.length;
            if (outLen > limit) return fail(this.tooLarge(program, 'stdout', limit));
            out.push(d);
          });
          ch.stderr.on('data', (d: Buffer) => {
            errLen += d.length;
            if (errLen > limit) return fail(this.tooLarge(program, 'stderr', limit));
            err.push(d);
          });
          ch.on('exit', (code: number | null, signal?: string) => {
            exitCode = code;
            exitSignal = signal ?? null;
          });
          ch.on('error', () => {});
          ch.on('close', () => {
            if (settled) return;
            if (exitCode === undefined) ({ code: exitCode, signal: exitSignal } = exitOf(ch) ?? { code: undefined, signal: null });
            if (exitCode === undefined) {
              return fail(this.lostError(program, argv));
            }
            settled = true;
            clearTimeout(timer);
            resolve({
              code: exitCode,
              signal: exitSignal,
              stdout: Buffer.concat(out).toString('utf8'),
              stderr: Buffer.concat(err).toString('utf8'),
            });
          });
          if (prepared.stdin && prepared.stdin.length > 0) ch.end(prepared.stdin);
          else ch.end();
        },
        (e: AppError) => fail(e),
      );
    });
  }

  async execStream(argv: readonly string[], opts: ExecStreamOptions = {}): Promise<ExecStream> {
    const stdinBuf = typeof opts.stdin === 'string' ? Buffer.from(opts.stdin) : Buffer.isBuffer(opts.stdin) ? opts.stdin : undefined;
    const prepared = prepare(argv, opts.secretEnv, stdinBuf);
    const program = argv[0]!;
    const openTimeoutMs = opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;

    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      let done = false;
      const t = setTimeout(() => {
        done = true;
        reject(sshError(SshErrorCode.TIMEOUT, `could not open a channel on ${this.address} within ${openTimeoutMs} ms`, { address: this.address }));
      }, openTimeoutMs);
      this.openChannel(prepared.command, opts.env).then(
        (ch) => {
          clearTimeout(t);
          if (done) this.kill(ch);
          else resolve(ch);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });

    return wireExecStream(channel, argv, opts, prepared.stdin, {
      address: this.address,
      kill: (ch) => this.kill(ch),
      lostError: () => this.lostError(program, argv),
    });
  }

  openUnixStream(remotePath: string, opts: { openTimeoutMs?: number } = {}): Promise<Duplex> {
    const openTimeoutMs = opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    return new Promise<Duplex>((resolve, reject) => {
      let done = false;
      const t = setTimeout(() => {
        done = true;
        reject(sshError(SshErrorCode.TIMEOUT, `could not open a stream to ${remotePath} on ${this.address} within ${openTimeoutMs} ms`, { address: this.address, socket: remotePath }));
      }, openTimeoutMs);
      const fail = (err: unknown) => {
        clearTimeout(t);
        if (done) return;
        done = true;
        const message = (err as Error).message;
        const gone = this.closed || message === 'Not connected' || message === 'No response from server';
        reject(
          gone
            ? sshError(SshErrorCode.CONNECTION_LOST, `connection to ${this.address} is closed`, { address: this.address, commandStarted: false }, err)
            : sshError(SshErrorCode.SSH_FAILED, `the host ${this.address} refused a stream to the unix socket ${remotePath} (${message}): is the socket there, and does sshd allow AllowStreamLocalForwarding?`, { address: this.address, socket: remotePath, commandStarted: false }, err),
        );
      };
      if (this.closed) return fail(new Error('Not connected'));
      try {
        this.client.openssh_forwardOutStreamLocal(remotePath, (err, ch) => {
          if (err) return fail(err);
          clearTimeout(t);
          if (done) {
            ch.close();
            return;
          }
          done = true;
          resolve(ch);
        });
      } catch (err) {
        fail(err);
      }
    });
  }

  /**
   * Errors from here carry `details.commandStarted = false`: nothing ran, so a pool may safely
   * retry on a fresh connection.
   */
  private openChannel(command: string, env: Record<string, string> | undefined): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      const onError = (err: unknown) => {
        const message = (err as Error).message;
        const gone = this.closed || message === 'Not connected' || message === 'No response from server';
        reject(
          gone
            ? sshError(SshErrorCode.CONNECTION_LOST, `connection to ${this.address} is closed`, { address: this.address, commandStarted: false }, err)
            : sshError(SshErrorCode.SSH_FAILED, `cannot open an SSH channel on ${this.address}: ${message}`, { address: this.address, commandStarted: false }, err),
        );
      };
      if (this.closed) return onError(new Error('Not connected'));
      try {
        this.client.exec(command, env ? { env } : {}, (err, ch) => {
          if (err) return onError(err);
          recordExit(ch);
          resolve(ch);
        });
      } catch (err) {
        onError(err);
      }
    });
  }

  /**
   * Best-effort kill: ssh2's `Channel.signal()` does nothing once our stdin is ended (it checks
   * `writable`), which is always the case for exec, so the request is sent through the protocol.
   * OpenSSH delivers it to the session's process (the shell, which `exec`s a simple command).
   * Closing the channel then closes the command's pipes.
   */
  private kill(channel: ClientChannel): void {
    const out = (channel as unknown as { outgoing?: { id?: number; state?: string } }).outgoing;
    const proto = (this.client as unknown as { _protocol?: { signal?: (id: number, sig: string) => void } })._protocol;
    try {
      if (out && typeof out.id === 'number' && (out.state === 'open' || out.state === 'eof')) proto?.signal?.(out.id, 'KILL');
    } catch {
      // signal is optional: the close below still ends the session
    }
    try {
      channel.close();
    } catch {
      // already closed
    }
  }

  /** The channel closed without an exit status: the outcome of the command is unknown. */
  private lostError(program: string, argv: readonly string[]): AppError {
    return this.closed
      ? sshError(
          SshErrorCode.CONNECTION_LOST,
          `connection to ${this.address} was lost while running ${program}: its outcome is unknown`,
          { address: this.address, argv: [...argv] },
        )
      : sshError(SshErrorCode.SSH_FAILED, `${program} on ${this.address} ended without an exit status`, {
          address: this.address,
          argv: [...argv],
        });
  }

  private tooLarge(program: string, stream: string, limit: number): AppError {
    return sshError(SshErrorCode.OUTPUT_TOO_LARGE, `${stream} of ${program} on ${this.address} exceeded ${limit} bytes`, {
      address: this.address,
      limit,
    });
  }
}

function prepare(
  argv: readonly string[],
  secretEnv: Record<string, string> | undefined,
  stdin: Buffer | undefined,
): { command: string; stdin: Buffer | null } {
  if (secretEnv && Object.keys(secretEnv).length > 0) {
    const wrapped = wrapWithStdinEnv(secretEnv, argv);
    buildCommand(argv); // validate the inner argv with its own error first
    return {
      command: buildCommand(wrapped.argv),
      stdin: stdin ? Buffer.concat([wrapped.stdinPrefix, stdin]) : wrapped.stdinPrefix,
    };
  }
  return { command: buildCommand(argv), stdin: stdin ?? null };
}
