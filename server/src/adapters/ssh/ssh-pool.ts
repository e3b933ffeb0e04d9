/**
 * One SSH connection per host, shared by all commands for that host.
 *
 * - At most `maxChannelsPerConnection` commands run at once per host (OpenSSH's MaxSessions
 *   defaults to 10); further commands wait in FIFO order.
 * - A connection with no command for `idleTimeoutMs` is closed.
 * - A connection that drops is forgotten and the next command reconnects. A command whose channel
 *   could not even be opened because the connection had just died is retried once, on a fresh
 *   connection (it never started, so this is safe).
 * - Trust on first use: when a host has no pinned key, the key seen is handed to
 *   `onHostKeyTrusted` (awaited before any command runs) and kept in memory, so a later
 *   reconnect to a different key fails with HOST.KEY_CHANGED even before the caller stored it.
 *   After an admin re-trusts a host, call `reset(hostId)`.
 */
import type { Duplex } from 'node:stream';
import { AppError } from '../../errors.js';
import type { HostKey } from './fingerprint.js';
import {
  SshConnection,
  type ExecOptions,
  type ExecResult,
  type ExecStream,
  type ExecStreamOptions,
  type SshConnectOptions,
  type SshExecutor,
} from './ssh-client.js';
import { SshErrorCode, sshError } from './ssh-errors.js';

export interface PooledConnection extends SshExecutor {
  readonly isOpen: boolean;
  readonly hostKey: HostKey;
  readonly trustedOnFirstUse: boolean;
  onClose(listener: () => void): () => void;
  close(): void;
}

export interface SshPoolOptions {
  /** Connection settings of a host, read at each (re)connect so edited settings apply. */
  resolveHost(hostId: string): SshConnectOptions | Promise<SshConnectOptions>;
  /** A host without a pinned key was trusted on first use: persist `key.fingerprint`. */
  onHostKeyTrusted?(hostId: string, key: HostKey): void | Promise<void>;
  /** Default 8. */
  maxChannelsPerConnection?: number;
  /** Default 60 s. */
  idleTimeoutMs?: number;
  /** Injectable for unit tests. Default: SshConnection.connect. */
  connect?(opts: SshConnectOptions): Promise<PooledConnection>;
}

export interface SshPoolHostStats {
  connected: boolean;
  activeChannels: number;
  queued: number;
  /** Connections opened to this host since the pool (or `reset`) started. */
  connectionsOpened: number;
}

class HostEntry {
  conn: PooledConnection | null = null;
  connecting: Promise<PooledConnection> | null = null;
  active = 0;
  readonly waiters: Array<() => void> = [];
  idleTimer: NodeJS.Timeout | undefined;
  learnedFingerprint: string | null = null;
  connectionsOpened = 0;
}

export class SshPool {
  private readonly hosts = new Map<string, HostEntry>();
  private readonly maxChannels: number;
  private readonly idleTimeoutMs: number;
  private readonly connectFn: (opts: SshConnectOptions) => Promise<PooledConnection>;
  private closed = false;

  constructor(private readonly opts: SshPoolOptions) {
    this.maxChannels = opts.maxChannelsPerConnection ?? 8;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.connectFn = opts.connect ?? ((o) => SshConnection.connect(o));
    if (!(this.maxChannels >= 1)) throw new RangeError('maxChannelsPerConnection must be >= 1');
  }

  exec(hostId: string, argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    return this.withChannel(hostId, (c) => c.exec(argv, opts), null);
  }

  /** The channel slot is held until `result` settles. */
  execStream(hostId: string, argv: readonly string[], opts?: ExecStreamOptions): Promise<ExecStream> {
    return this.withChannel(hostId, (c) => c.execStream(argv, opts), (s) => s.result);
  }

  /** The channel slot is held until the stream closes. */
  openUnixStream(hostId: string, remotePath: string, opts?: { openTimeoutMs?: number }): Promise<Duplex> {
    return this.withChannel(
      hostId,
      (c) => {
        if (!c.openUnixStream) throw sshError(SshErrorCode.SSH_FAILED, 'this connection cannot open unix socket streams', { hostId });
        return c.openUnixStream(remotePath, opts);
      },
      (s) => new Promise<void>((resolve) => {
        // The slot is free once the channel is closed (or failed); `finished` alone can wait for ever on a destroyed channel.
        if (s.destroyed) return resolve();
        for (const ev of ['close', 'end', 'finish', 'error']) s.once(ev, () => resolve());
      }),
    );
  }

  /** An executor bound to one host, e.g. for `new Virsh(pool.executor(id), uri)`. */
  executor(hostId: string): SshExecutor {
    return {
      exec: (argv, o) => this.exec(hostId, argv, o),
      execStream: (argv, o) => this.execStream(hostId, argv, o),
      openUnixStream: (p, o) => this.openUnixStream(hostId, p, o),
    };
  }

  stats(hostId: string): SshPoolHostStats | undefined {
    const e = this.hosts.get(hostId);
    if (!e) return undefined;
    return {
      connected: e.conn?.isOpen ?? false,
      activeChannels: e.active,
      queued: e.waiters.length,
      connectionsOpened: e.connectionsOpened,
    };
  }

  /** Close the host's connection and forget what was learned (TOFU key). Running commands fail. */
  reset(hostId: string): void {
    const e = this.hosts.get(hostId);
    if (!e) return;
    clearTimeout(e.idleTimer);
    e.conn?.close();
    e.conn = null;
    e.learnedFingerprint = null;
    e.connectionsOpened = 0;
    if (e.active === 0 && e.waiters.length === 0) this.hosts.delete(hostId);
  }

  closeAll(): void {
    this.closed = true;
    for (const id of [...this.hosts.keys()]) this.reset(id);
  }

  private entry(hostId: string): HostEntry {
    let e = this.hosts.get(hostId);
    if (!e) {
      e = new HostEntry();
      this.hosts.set(hostId, e);
    }
    return e;
  }

  private async withChannel<T>(
    hostId: string,
    fn: (c: PooledConnection) => Promise<T>,
    holdUntil: ((t: T) => Promise<unknown>) | null,
  ): Promise<T> {
    if (this.closed) throw sshError(SshErrorCode.SSH_FAILED, 'SSH pool is closed', { hostId });
    const e = this.entry(hostId);
    await this.acquire(e);
    let handedOff = false;
    try {
      for (let attempt = 0; ; attempt++) {
        const conn = await this.connection(hostId, e);
        try {
          const t = await fn(conn);
          if (holdUntil) {
            handedOff = true;
            holdUntil(t).then(
              () => this.release(hostId, e),
              () => this.release(hostId, e),
            );
          }
          return t;
        } catch (err) {
          if (attempt === 0 && neverStarted(err)) {
            this.drop(e, conn);
            continue;
          }
          throw err;
        }
      }
    } finally {
      if (!handedOff) this.release(hostId, e);
    }
  }

  private acquire(e: HostEntry): Promise<void> {
    clearTimeout(e.idleTimer);
    e.idleTimer = undefined;
    if (e.active < this.maxChannels) {
      e.active++;
      return Promise.resolve();
    }
    // The slot is handed over by release() without decrementing `active`.
    return new Promise((resolve) => e.waiters.push(resolve));
  }

  private release(hostId: string, e: HostEntry): void {
    const next = e.waiters.shift();
    if (next) return next();
    e.active--;
    if (e.active === 0 && e.conn) {
      const conn = e.conn;
      e.idleTimer = setTimeout(() => {
        if (e.active === 0 && e.conn === conn) this.drop(e, conn);
      }, this.idleTimeoutMs);
      e.idleTimer.unref();
    }
    if (e.active === 0 && !e.conn && !e.connecting && e.learnedFingerprint === null) this.hosts.delete(hostId);
  }

  private drop(e: HostEntry, conn: PooledConnection): void {
    if (e.conn === conn) e.conn = null;
    conn.close();
  }

  private connection(hostId: string, e: HostEntry): Promise<PooledConnection> {
    if (e.conn?.isOpen) return Promise.resolve(e.conn);
    e.conn = null;
    if (!e.connecting) {
      e.connecting = this.open(hostId, e).finally(() => {
        e.connecting = null;
      });
    }
    return e.connecting;
  }

  private async open(hostId: string, e: HostEntry): Promise<PooledConnection> {
    const cfg = await this.opts.resolveHost(hostId);
    const pinned = cfg.pinnedFingerprint ?? e.learnedFingerprint;
    const conn = await this.connectFn({ ...cfg, pinnedFingerprint: pinned });
    if (conn.trustedOnFirstUse) {
      try {
        await this.opts.onHostKeyTrusted?.(hostId, conn.hostKey);
      } catch (err) {
        conn.close();
        throw err;
      }
      e.learnedFingerprint = conn.hostKey.fingerprint;
    }
    e.connectionsOpened++;
    conn.onClose(() => {
      if (e.conn === conn) e.conn = null;
    });
    e.conn = conn;
    return conn;
  }
}

function neverStarted(err: unknown): boolean {
  return (
    err instanceof AppError && err.code === SshErrorCode.CONNECTION_LOST && err.details?.commandStarted === false
  );
}
