import { describe, expect, it } from 'vitest';
import { libvirtError, LibvirtErrorCode } from '../adapters/libvirt/libvirt-errors.js';
import { sshError, SshErrorCode } from '../adapters/ssh/ssh-errors.js';
import { AppError, httpStatusOf } from '../errors.js';
import { explainHostError } from './connection-problems.js';

const host = { id: 'h1', name: 'kvm-a', address: '10.0.0.5', sshPort: 22, username: 'backroll', libvirtUri: 'qemu:///system' };
const keys = { publicKeys: ['ssh-ed25519 AAAA backroll@x'], installCommand: 'umask 077 && …' };

describe('explainHostError', () => {
  it('keeps code and kind, names the host, says what to do; statuses are 409 for admin action, 503 for host trouble', () => {
    const cases: Array<[AppError, number, RegExp]> = [
      [sshError(SshErrorCode.UNREACHABLE, 'cannot reach 10.0.0.5:22: ECONNREFUSED'), 503, /sshd listens on 10\.0\.0\.5 port 22/],
      [sshError(SshErrorCode.TIMEOUT, 'SSH handshake with x did not complete within 15000 ms'), 503, /did not answer in time/],
      [libvirtError(LibvirtErrorCode.LIBVIRT_DOWN, 'libvirt does not answer at qemu:///system: failed to connect'), 503, /user "backroll" may use qemu:\/\/\/system \(root, or a member of the libvirt group\)/],
      [sshError(SshErrorCode.AUTH_FAILED, 'authentication as backroll on 10.0.0.5:22 failed'), 409, /user "backroll" does not exist.*installCommand/],
      [sshError(SshErrorCode.KEY_CHANGED, 'host key changed. re-trust the host.', { presentedFingerprint: 'SHA256:new' }), 409, /trust-host-key \{"fingerprint": "SHA256:new"\}/],
      [sshError(SshErrorCode.CONNECTION_LOST, 'connection lost'), 503, /Try again/],
    ];
    for (const [err, status, hint] of cases) {
      const e = explainHostError(err, host, keys);
      expect(e.code).toBe(err.code);
      expect(httpStatusOf[e.kind]).toBe(status);
      expect(e.message).toMatch(/^host "kvm-a": /);
      expect(e.message).toMatch(hint);
      expect(e.message).not.toContain('..');
      expect(e.details).toMatchObject({ hostId: 'h1' });
    }
  });

  it('an authentication failure carries the keys to install', () => {
    const e = explainHostError(sshError(SshErrorCode.AUTH_FAILED, 'refused'), host, keys);
    expect(e.details).toMatchObject({ publicKeys: keys.publicKeys, installCommand: keys.installCommand });
    expect(explainHostError(sshError(SshErrorCode.UNREACHABLE, 'x'), host, keys).details).not.toHaveProperty('publicKeys');
  });

  it('other typed errors pass unchanged; unknown ones become HOST.UNEXPECTED without their message', () => {
    const other = new AppError('invalid', 'SSH.UNSAFE_ARGUMENT', 'nul byte');
    expect(explainHostError(other, host, keys)).toBe(other);
    const e = explainHostError(new TypeError('secret internals'), host, keys);
    expect(e).toMatchObject({ code: 'HOST.UNEXPECTED', kind: 'internal' });
    expect(e.message).not.toContain('secret internals');
  });
});
