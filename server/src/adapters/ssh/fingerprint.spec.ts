import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { fingerprintSha256, hostKeyFromOpenSshLine, keyAlgorithmOf, normalizeFingerprint } from './fingerprint.js';

// A fixed vector, checked with `ssh-keygen -lf` (OpenSSH 9.2).
const PUB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINDYq1HvpO3aswdhnoHWWJotLUqFYn1nE45FPgHV1bI2 backroll-lab-host';
const FP = 'SHA256:MnNZqfsSydo/oUbsolrTa6lCvpCWLNojS6amGP8TQhk';

describe('fingerprints', () => {
  it('computes OpenSSH SHA256 fingerprints (unpadded base64)', () => {
    const key = hostKeyFromOpenSshLine(PUB);
    expect(key).toEqual({ algorithm: 'ssh-ed25519', publicKey: PUB.split(' ')[1], fingerprint: FP });
    expect(fingerprintSha256(Buffer.from(PUB.split(' ')[1]!, 'base64'))).toBe(FP);
    expect(FP.endsWith('=')).toBe(false);
  });

  it('reads known_hosts lines too', () => {
    expect(hostKeyFromOpenSshLine(`[127.0.0.1]:2222 ${PUB}`).fingerprint).toBe(FP);
    expect(() => hostKeyFromOpenSshLine('garbage')).toThrow(/not an OpenSSH public key/);
  });

  it('reads the algorithm from the blob', () => {
    expect(keyAlgorithmOf(Buffer.from(PUB.split(' ')[1]!, 'base64'))).toBe('ssh-ed25519');
    expect(keyAlgorithmOf(Buffer.alloc(2))).toBe('unknown');
  });

  it('normalizes pins and refuses other formats', () => {
    expect(normalizeFingerprint(FP)).toBe(FP);
    expect(normalizeFingerprint(`${FP}=`)).toBe(FP);
    expect(normalizeFingerprint(`  ${FP}\n`)).toBe(FP);
    expect(() => normalizeFingerprint('MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48')).toThrow(/SHA256/);
    expect(() => normalizeFingerprint(FP.slice(7))).toThrow();
  });

  it.each(['ed25519', 'ecdsa', 'rsa'] as const)('matches ssh-keygen -lf for a fresh %s key', (type) => {
    const pair =
      type === 'ecdsa'
        ? ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 })
        : type === 'rsa'
          ? ssh2.utils.generateKeyPairSync('rsa', { bits: 2048 })
          : ssh2.utils.generateKeyPairSync('ed25519');
    const dir = mkdtempSync(path.join(tmpdir(), 'backroll-fp-'));
    try {
      const file = path.join(dir, 'k.pub');
      writeFileSync(file, pair.public);
      const r = spawnSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' });
      // ssh-keygen (openssh-client) is a test requirement: a missing one fails here, it does not pass.
      expect(r.error, 'ssh-keygen must be installed (openssh-client)').toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.split(' ')[1]).toBe(hostKeyFromOpenSshLine(pair.public).fingerprint);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
