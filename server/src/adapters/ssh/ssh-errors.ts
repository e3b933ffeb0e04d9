import { AppError } from '../../errors.js';

/**
 * Stable error codes of the SSH adapter. Clients match on these, so they never change meaning.
 *
 * Kinds: transient host problems are `unavailable` (retrying later may work); problems that need
 * an admin to change the host's settings (key changed, credentials refused) are `conflict`.
 */
export const SshErrorCode = {
  /** TCP connection refused / no route / DNS failure / connect timeout. */
  UNREACHABLE: 'HOST.UNREACHABLE',
  /** The server refused every configured key. */
  AUTH_FAILED: 'HOST.AUTH_FAILED',
  /** Handshake did not complete in time, or a command exceeded its timeout (and was killed). */
  TIMEOUT: 'HOST.TIMEOUT',
  /** The server's host key is not the pinned one: possible MITM or reinstalled host. */
  KEY_CHANGED: 'HOST.KEY_CHANGED',
  /** The connection dropped while a command was running: its outcome is unknown. */
  CONNECTION_LOST: 'HOST.CONNECTION_LOST',
  /** Any other SSH-level failure (channel refused, protocol error). */
  SSH_FAILED: 'HOST.SSH_FAILED',
  /** A command produced more output than the caller allowed to buffer. */
  OUTPUT_TOO_LARGE: 'HOST.OUTPUT_TOO_LARGE',
  /** A configured private key or pinned fingerprint cannot be used. */
  INVALID_CREDENTIALS: 'HOST.INVALID_CREDENTIALS',
  /** An argument cannot be passed safely to a remote command (NUL, lone surrogate, empty argv). */
  UNSAFE_ARGUMENT: 'SSH.UNSAFE_ARGUMENT',
} as const;
export type SshErrorCode = (typeof SshErrorCode)[keyof typeof SshErrorCode];

export function sshError(
  code: SshErrorCode,
  message: string,
  details?: Record<string, unknown>,
  cause?: unknown,
): AppError {
  const kind =
    code === SshErrorCode.KEY_CHANGED || code === SshErrorCode.AUTH_FAILED
      ? 'conflict'
      : code === SshErrorCode.UNSAFE_ARGUMENT || code === SshErrorCode.INVALID_CREDENTIALS
        ? 'invalid'
        : code === SshErrorCode.OUTPUT_TOO_LARGE
          ? 'internal'
          : 'unavailable';
  return new AppError(kind, code, message, details, cause === undefined ? undefined : { cause });
}
