/**
 * Reaching the hypervisor hosts: one shared SshPool (a connection per host, reused, closed
 * when idle), host keys pinned on first use, explicit re-trust of a changed key, and the
 * outcome of every contact recorded on the host (state, error code, message, last seen).
 */
import { keyChangedError } from '../adapters/ssh/connect-error.js';
import { normalizeFingerprint, type HostKey } from '../adapters/ssh/fingerprint.js';
import type { BackrollPublicKey } from '../adapters/ssh/key-store.js';
import { SshConnection, type SshConnectOptions } from '../adapters/ssh/ssh-client.js';
import { SshErrorCode } from '../adapters/ssh/ssh-errors.js';
import { SshPool, type PooledConnection } from '../adapters/ssh/ssh-pool.js';
import { Virsh } from '../adapters/libvirt/virsh.js';
import { QemuImg } from '../adapters/qemu-img/qemu-img.js';
import { isoNow, type Clock } from '../clock.js';
import type { SshConfig } from '../config/config.js';
import { AppError, conflict, invalid } from '../errors.js';
import { found } from '../shared/service-helpers.js';
import { authorizeCommand } from './authorize-command.js';
import { explainHostError, type PublicKeyHelp } from './connection-problems.js';
import type { HostRecord, HostRepository } from './host.repository.js';

/** Backroll's SSH client keys (SshKeyStore in production). */
export interface ClientKeys {
  readonly privateKeys: Buffer[];
  readonly publicKeys: BackrollPublicKey[];
}

export interface PublicKeysView {
  keys: BackrollPublicKey[];
  /** The lines to append to `~/.ssh/authorized_keys`, newline-terminated. */
  authorizedKeys: string;
  /** One line to run on a host as the SSH user Backroll uses. */
  installCommand: string;
}

export interface HostConnectionDeps {
  hosts: HostRepository;
  /** Null when the server started without keys (then every connection fails with HOST.NO_CLIENT_KEYS). */
  keys: ClientKeys | null;
  clock: Clock;
  ssh: SshConfig;
  /** Inventory reads at once per host (the Virsh concurrency). */
  concurrencyPerHost?: number;
  /** Injectable for tests. Default: SshConnection.connect. */
  connect?: (opts: SshConnectOptions) => Promise<PooledConnection>;
}

/** Host keys as stored in `hosts.host_key`: an OpenSSH public key without comment. */
const keyLine = (k: HostKey) => `${k.algorithm} ${k.publicKey}`;

export class HostConnections {
  readonly pool: SshPool;
  private readonly connectFn: (opts: SshConnectOptions) => Promise<PooledConnection>;

  constructor(private readonly deps: HostConnectionDeps) {
    this.connectFn = deps.connect ?? ((o) => SshConnection.connect(o));
    this.pool = new SshPool({
      resolveHost: async (id) => this.connectOptions(found(await deps.hosts.findById(id), 'host', id)),
      onHostKeyTrusted: (id, key) => this.pinOnFirstUse(id, key),
      idleTimeoutMs: deps.ssh.idleTimeoutMs,
      connect: deps.connect,
    });
  }

  publicKeys(): PublicKeysView {
    const keys = this.clientKeys().publicKeys;
    const lines = keys.map((k) => k.authorizedKeysLine);
    return { keys, authorizedKeys: lines.map((l) => `${l}\n`).join(''), installCommand: authorizeCommand(lines) };
  }

  /** virsh on the host, through the pool. */
  virsh(host: Pick<HostRecord, 'id' | 'libvirtUri'>): Virsh {
    return Virsh.overSsh(this.pool.executor(host.id), host.libvirtUri, {
      timeoutMs: this.deps.ssh.commandTimeoutMs,
      concurrency: this.deps.concurrencyPerHost,
    });
  }

  qemuImg(hostId: string): QemuImg {
    return QemuImg.overSsh(this.pool.executor(hostId), { timeoutMs: this.deps.ssh.commandTimeoutMs });
  }

  /**
   * Checks the host now: SSH (a fresh handshake when nothing runs on the host, so the answer
   * is about the host as it is now) and libvirt at its URI (`virsh version`). Records the
   * outcome; returns the host, or throws the explained failure.
   */
  async connect(id: string): Promise<HostRecord> {
    const host = found(await this.deps.hosts.findById(id), 'host', id);
    // Never cut a running command (a backup): a busy host keeps its verified connection.
    if ((this.pool.stats(id)?.activeChannels ?? 0) === 0) this.pool.reset(id);
    try {
      const v = await this.virsh(host).version();
      const parts = [v.library && `libvirt ${v.library}`, v.daemon && `daemon ${v.daemon}`, v.hypervisor].filter(Boolean);
      await this.recordSuccess(id, `connected: ${parts.join(', ')}`);
    } catch (err) {
      throw await this.recordFailure(host, err);
    }
    return found(await this.deps.hosts.findById(id), 'host', id);
  }

  /**
   * An administrator confirms the key the host presents now: `fingerprint` must be exactly
   * that key's. Pins it, forgets the pool's connection and memory for the host, and connects.
   */
  async trustHostKey(id: string, fingerprint: string): Promise<HostRecord> {
    const host = found(await this.deps.hosts.findById(id), 'host', id);
    let wanted: string;
    try {
      wanted = normalizeFingerprint(fingerprint);
    } catch {
      throw invalid('HOST.FINGERPRINT_INVALID', `"${fingerprint}" is not a SHA256 host key fingerprint such as ssh-keygen -lf prints (SHA256: followed by 43 base64 characters)`, { fingerprint });
    }
    let presented: HostKey | null = null;
    try {
      const conn = await this.connectFn({ ...this.connectOptions(host), pinnedFingerprint: wanted });
      presented = conn.hostKey;
      conn.close();
    } catch (err) {
      const e = err as AppError;
      if (e.code === SshErrorCode.KEY_CHANGED) {
        const now = typeof e.details?.presentedFingerprint === 'string' ? e.details.presentedFingerprint : 'another key';
        throw conflict(
          'HOST.FINGERPRINT_MISMATCH',
          `host "${host.name}" presents ${now}, not ${wanted}: nothing was changed. Compare with the key on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before trusting it.`,
          { hostId: id, expectedFingerprint: wanted, presentedFingerprint: e.details?.presentedFingerprint ?? null, pinnedFingerprint: host.hostKeyFingerprint },
        );
      }
      // Authentication comes after the host key check: a refused login still proves the key.
      if (e.code !== SshErrorCode.AUTH_FAILED) throw await this.recordFailure(host, err);
    }
    await this.deps.hosts.pinHostKey(id, { publicKey: presented ? keyLine(presented) : null, fingerprint: wanted }, false);
    if (host.hostKeyFingerprint !== wanted) this.pool.reset(id);
    return this.connect(id);
  }

  /** The host's address, port or user changed, or it was deleted: drop its connection and what the pool learned. */
  forget(id: string): void {
    this.pool.reset(id);
  }

  async recordSuccess(id: string, message?: string): Promise<void> {
    const host = await this.deps.hosts.findById(id);
    if (!host) return;
    await this.deps.hosts.recordConnection(id, {
      state: 'connected',
      errorCode: null,
      // A refresh keeps the message of the last explicit connect unless it described a failure.
      message: message ?? (host.connection.state === 'connected' ? host.connection.message : null),
      lastSeenAt: isoNow(this.deps.clock),
    });
  }

  /** Records the failure on the host and returns the error to throw, explained. */
  async recordFailure(host: HostRecord, err: unknown): Promise<AppError> {
    const e = explainHostError(err, host, this.keyHelp());
    await this.deps.hosts.recordConnection(host.id, { state: 'failed', errorCode: e.code, message: e.message });
    return e;
  }

  close(): void {
    this.pool.closeAll();
  }

  private keyHelp(): PublicKeyHelp | null {
    if (!this.deps.keys) return null;
    const v = this.publicKeys();
    return { publicKeys: v.keys.map((k) => k.authorizedKeysLine), installCommand: v.installCommand };
  }

  private clientKeys(): ClientKeys {
    if (!this.deps.keys) throw new AppError('unavailable', 'HOST.NO_CLIENT_KEYS', 'this process has no SSH client keys (they are created in <data dir>/ssh at start)');
    return this.deps.keys;
  }

  private connectOptions(host: HostRecord): SshConnectOptions {
    return {
      host: host.address,
      port: host.sshPort,
      username: host.username,
      privateKeys: this.clientKeys().privateKeys,
      pinnedFingerprint: host.hostKeyFingerprint,
      connectTimeoutMs: this.deps.ssh.connectTimeoutMs,
    };
  }

  /** Trust on first use: pin the key unless someone pinned one meanwhile; a different one is refused. */
  private async pinOnFirstUse(id: string, key: HostKey): Promise<void> {
    if (await this.deps.hosts.pinHostKey(id, { publicKey: keyLine(key), fingerprint: key.fingerprint }, true)) return;
    const host = await this.deps.hosts.findById(id);
    if (host?.hostKeyFingerprint && host.hostKeyFingerprint !== key.fingerprint) {
      throw keyChangedError({ address: `${host.username}@${host.address}:${host.sshPort}`, pinnedFingerprint: host.hostKeyFingerprint, seenKey: key });
    }
  }
}
