/** Host key fingerprints in OpenSSH's format: `SHA256:` + unpadded base64 of the key blob's SHA-256. */
import { createHash } from 'node:crypto';
import { SshErrorCode, sshError } from './ssh-errors.js';

export interface HostKey {
  /** Key type from the blob, e.g. `ssh-ed25519`. */
  algorithm: string;
  /** Base64 of the public key blob: `${algorithm} ${publicKey}` is an OpenSSH public key line. */
  publicKey: string;
  /** `SHA256:…` exactly as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name is the first SSH "string" (uint32 length + bytes) of a key blob. */
export function keyAlgorithmOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || blob.length < 4 + len) return 'unknown';
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function hostKeyFromBlob(blob: Buffer): HostKey {
  return { algorithm: keyAlgorithmOf(blob), publicKey: blob.toString('base64'), fingerprint: fingerprintSha256(blob) };
}

/** Parse an OpenSSH public key line (`ssh-ed25519 AAAA… comment`, as in a .pub or known_hosts file). */
export function hostKeyFromOpenSshLine(line: string): HostKey {
  const fields = line.trim().split(/\s+/);
  // known_hosts lines start with the host pattern(s): find the field that decodes as a key blob.
  for (let i = 0; i + 1 < fields.length; i++) {
    const algorithm = fields[i]!;
    const blob = Buffer.from(fields[i + 1]!, 'base64');
    if (blob.length > 4 && keyAlgorithmOf(blob) === algorithm) return hostKeyFromBlob(blob);
  }
  throw sshError(SshErrorCode.INVALID_CREDENTIALS, 'not an OpenSSH public key line');
}

/**
 * Canonical form of a pinned fingerprint: accepts `SHA256:xxx`, with or without base64 padding.
 * Anything else (MD5 `aa:bb:…`, garbage) is refused rather than silently never matching.
 */
export function normalizeFingerprint(fingerprint: string): string {
  const m = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(fingerprint.trim());
  if (!m) {
    throw sshError(SshErrorCode.INVALID_CREDENTIALS, `pinned host key fingerprint is not in SHA256:base64 form`, {
      fingerprint,
    });
  }
  return `SHA256:${m[1]}`;
}
