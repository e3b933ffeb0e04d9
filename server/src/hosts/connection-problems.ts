/**
 * Turns what went wrong while reaching a host into an error a person can act on (pure):
 * the adapter's code and details are kept, the message gains what to check or do.
 *
 * HTTP statuses follow the error kinds of the adapters, the same on every route that
 * touches a host: 409 when an administrator must act (HOST.AUTH_FAILED, HOST.KEY_CHANGED),
 * 503 when the host is not answering properly (HOST.UNREACHABLE, HOST.TIMEOUT,
 * HOST.LIBVIRT_DOWN, HOST.CONNECTION_LOST, HOST.SSH_FAILED); retrying later may work.
 */
import { SshErrorCode } from '../adapters/ssh/ssh-errors.js';
import { LibvirtErrorCode } from '../adapters/libvirt/libvirt-errors.js';
import { AppError } from '../errors.js';

export interface HostAddress {
  id: string;
  name: string;
  address: string;
  sshPort: number;
  username: string;
  libvirtUri: string;
}

export interface PublicKeyHelp {
  /** authorized_keys lines of Backroll's keys. */
  publicKeys: string[];
  installCommand: string;
}

export function explainHostError(err: unknown, host: HostAddress, keys: PublicKeyHelp | null): AppError {
  if (!(err instanceof AppError)) {
    return new AppError('internal', 'HOST.UNEXPECTED', `unexpected error while contacting host "${host.name}"; the server log has the details`, { hostId: host.id }, { cause: err });
  }
  const target = `${host.username}@${host.address}:${host.sshPort}`;
  let hint: string;
  let extra: Record<string, unknown> = {};
  switch (err.code) {
    case SshErrorCode.UNREACHABLE:
      hint = `Check that the host is up, that its sshd listens on ${host.address} port ${host.sshPort}, and that no firewall blocks Backroll.`;
      break;
    case SshErrorCode.AUTH_FAILED:
      hint =
        `Either user "${host.username}" does not exist on the host, or Backroll's public key is not in ~${host.username}/.ssh/authorized_keys: ` +
        `run the installCommand of this problem on the host as ${host.username} (GET /api/v2/ssh/public-keys gives it too), then connect again.`;
      extra = keys ? { publicKeys: keys.publicKeys, installCommand: keys.installCommand } : {};
      break;
    case SshErrorCode.KEY_CHANGED: {
      const presented = typeof err.details?.presentedFingerprint === 'string' ? err.details.presentedFingerprint : '<fingerprint>';
      hint =
        `Check the key on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); if the change is expected, ` +
        `re-trust it: POST /api/v2/hosts/${host.id}/trust-host-key {"fingerprint": "${presented}"}.`;
      break;
    }
    case SshErrorCode.TIMEOUT:
      hint = `The host accepted the connection but did not answer in time: check its load, its sshd and its storage.`;
      break;
    case LibvirtErrorCode.LIBVIRT_DOWN:
      hint =
        `Check that libvirtd runs on the host and that user "${host.username}" may use ${host.libvirtUri}` +
        (host.libvirtUri === 'qemu:///system' ? ' (root, or a member of the libvirt group)' : '') +
        `, or change the host's libvirtUri.`;
      break;
    case SshErrorCode.CONNECTION_LOST:
    case SshErrorCode.SSH_FAILED:
      hint = `Try again; if it persists, check sshd on ${target} (MaxSessions, MaxStartups) and its logs.`;
      break;
    default:
      return err;
  }
  return new AppError(err.kind, err.code, `host "${host.name}": ${err.message.replace(/\.\s*$/, '')}. ${hint}`, { ...err.details, hostId: host.id, ...extra }, { cause: err });
}
