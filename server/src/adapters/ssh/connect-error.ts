/** Turns what ssh2 reports while connecting into one typed error (pure, unit-tested). */
import type { AppError } from '../../errors.js';
import type { HostKey } from './fingerprint.js';
import { SshErrorCode, sshError } from './ssh-errors.js';

export interface ConnectAttempt {
  /** `user@host:port`, shown in every message. */
  address: string;
  host: string;
  port: number;
  username: string;
  timeoutMs: number;
  keyCount: number;
  /** The TCP connection was established (so a timeout is a handshake/auth timeout). */
  socketConnected: boolean;
  pinnedFingerprint: string | null;
  /** The key the server presented, if the handshake got that far. */
  seenKey: HostKey | null;
  /** Our host verifier refused the key because it differs from the pin. */
  keyMismatch: boolean;
}

type Ssh2Error = Error & { level?: string; code?: string | number };

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'ETIMEDOUT',
  'ECONNRESET',
  'EPIPE',
  'EADDRNOTAVAIL',
]);

export function keyChangedError(a: Pick<ConnectAttempt, 'address' | 'pinnedFingerprint' | 'seenKey'>): AppError {
  const seen = a.seenKey;
  return sshError(
    SshErrorCode.KEY_CHANGED,
    `host key of ${a.address} has changed: pinned ${a.pinnedFingerprint ?? '(none)'}, ` +
      `server presented ${seen ? `${seen.fingerprint} (${seen.algorithm})` : '(unknown)'}. ` +
      'Connection refused: this may be an attack or a reinstalled host; an administrator must verify ' +
      'the new key and re-trust the host.',
    {
      address: a.address,
      pinnedFingerprint: a.pinnedFingerprint,
      presentedFingerprint: seen?.fingerprint ?? null,
      presentedKey: seen ? `${seen.algorithm} ${seen.publicKey}` : null,
    },
  );
}

export function mapConnectError(err: Ssh2Error | null, a: ConnectAttempt): AppError {
  const details = { address: a.address, host: a.host, port: a.port, username: a.username };
  if (a.keyMismatch) return keyChangedError(a);
  if (err === null) {
    // Closed without an error event: e.g. sshd's MaxStartups dropping us before the handshake.
    return sshError(
      a.socketConnected ? SshErrorCode.SSH_FAILED : SshErrorCode.UNREACHABLE,
      `connection to ${a.address} closed before authentication completed`,
      details,
    );
  }
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (err.level === 'client-authentication') {
    return sshError(
      SshErrorCode.AUTH_FAILED,
      `authentication as ${a.username} on ${a.host}:${a.port} failed: the server refused all ${a.keyCount} configured key(s)`,
      details,
      err,
    );
  }
  if (err.level === 'client-timeout' || code === 'ETIMEDOUT') {
    return a.socketConnected
      ? sshError(
          SshErrorCode.TIMEOUT,
          `SSH handshake with ${a.address} did not complete within ${a.timeoutMs} ms`,
          { ...details, timeoutMs: a.timeoutMs },
          err,
        )
      : sshError(
          SshErrorCode.UNREACHABLE,
          `cannot reach ${a.host}:${a.port}: no TCP connection within ${a.timeoutMs} ms`,
          { ...details, timeoutMs: a.timeoutMs },
          err,
        );
  }
  if (err.level === 'client-socket' || err.level === 'client-dns' || (code && NETWORK_CODES.has(code))) {
    return sshError(
      SshErrorCode.UNREACHABLE,
      `cannot reach ${a.host}:${a.port}: ${code ? `${code} ` : ''}${err.message}`.trim(),
      { ...details, errno: code ?? null },
      err,
    );
  }
  return sshError(
    a.socketConnected ? SshErrorCode.SSH_FAILED : SshErrorCode.UNREACHABLE,
    `SSH connection to ${a.address} failed: ${err.message}`,
    { ...details, level: err.level ?? null },
    err,
  );
}
