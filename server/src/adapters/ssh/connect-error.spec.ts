import { describe, expect, it } from 'vitest';
import { mapConnectError, type ConnectAttempt } from './connect-error.js';

const base: ConnectAttempt = {
  address: 'kvmhost1@10.0.0.5:22',
  host: '10.0.0.5',
  port: 22,
  username: 'kvmhost1',
  timeoutMs: 5000,
  keyCount: 2,
  socketConnected: true,
  pinnedFingerprint: null,
  seenKey: null,
  keyMismatch: false,
};
const err = (message: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), extra);

describe('mapConnectError', () => {
  it('key mismatch wins over the handshake error it causes', () => {
    const e = mapConnectError(err('Host denied (verification failed)', { level: 'handshake' }), {
      ...base,
      keyMismatch: true,
      pinnedFingerprint: 'SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
      seenKey: { algorithm: 'ssh-ed25519', publicKey: 'AAAA', fingerprint: 'SHA256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' },
    });
    expect(e.code).toBe('HOST.KEY_CHANGED');
    expect(e.kind).toBe('conflict');
    expect(e.message).toContain('SHA256:aaaa');
    expect(e.message).toContain('SHA256:bbbb');
    expect(e.message).toMatch(/administrator must verify/);
    expect(e.details).toMatchObject({ presentedKey: 'ssh-ed25519 AAAA' });
  });

  it('authentication failure', () => {
    const e = mapConnectError(err('All configured authentication methods failed', { level: 'client-authentication' }), base);
    expect(e.code).toBe('HOST.AUTH_FAILED');
    expect(e.message).toContain('kvmhost1');
    expect(e.message).toContain('2 configured key(s)');
  });

  it.each(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])('%s is unreachable, with the address', (code) => {
    const e = mapConnectError(err(`connect ${code} 10.0.0.5:22`, { level: 'client-socket', code }), { ...base, socketConnected: false });
    expect(e.code).toBe('HOST.UNREACHABLE');
    expect(e.kind).toBe('unavailable');
    expect(e.message).toContain('10.0.0.5:22');
    expect(e.message).toContain(code);
  });

  it('a timeout before the TCP connection is unreachable, after it a handshake timeout', () => {
    const t = err('Timed out while waiting for handshake', { level: 'client-timeout' });
    expect(mapConnectError(t, { ...base, socketConnected: false }).code).toBe('HOST.UNREACHABLE');
    const e = mapConnectError(t, base);
    expect(e.code).toBe('HOST.TIMEOUT');
    expect(e.message).toContain('5000 ms');
  });

  it('closed without error', () => {
    expect(mapConnectError(null, { ...base, socketConnected: false }).code).toBe('HOST.UNREACHABLE');
    expect(mapConnectError(null, base).code).toBe('HOST.SSH_FAILED');
  });

  it('other protocol errors', () => {
    const e = mapConnectError(err('Handshake failed: no matching key exchange algorithm', { level: 'handshake' }), base);
    expect(e.code).toBe('HOST.SSH_FAILED');
    expect(e.cause).toBeInstanceOf(Error);
  });
});
