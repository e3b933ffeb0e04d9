/**
 * Backroll's own SSH client keys, in `<dataDir>/ssh/` (0700): `id_ed25519` first, and
 * `id_rsa` (4096 bits) for hosts whose sshd predates ed25519. Private keys are OpenSSH
 * format, 0600; `*.pub` copies sit beside them for operators.
 *
 * Generated on first start. A key file that exists is never replaced (hosts trust it), even
 * when it cannot be read: the start then fails with the file named. Two processes starting
 * at once on one data dir agree on one key: each is created with link(2), which fails when
 * the other process got there first, and the loser loads the winner's key.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';
import { fingerprintSha256 } from './fingerprint.js';

const { utils } = ssh2;

export interface BackrollPublicKey {
  /** `ssh-ed25519`, `ssh-rsa` */
  algorithm: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** `<algorithm> <base64> backroll@<hostname>`: one line of `~/.ssh/authorized_keys`. */
  authorizedKeysLine: string;
}

export interface KeySpec {
  file: string;
  type: 'ed25519' | 'rsa';
  bits?: number;
}

const KEYS: KeySpec[] = [
  { file: 'id_ed25519', type: 'ed25519' },
  { file: 'id_rsa', type: 'rsa', bits: 4096 },
];

export const SSH_KEY_DIR = 'ssh';

function generateOnce(spec: KeySpec, comment: string): Promise<{ private: string; public: string }> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | null, pair: { private: string; public: string }) => (err ? reject(err) : resolve(pair));
    if (spec.type === 'rsa') utils.generateKeyPair('rsa', { bits: spec.bits ?? 4096, comment }, cb);
    else utils.generateKeyPair('ed25519', { comment }, cb);
  });
}

const usable = (text: string, priv: boolean): boolean => {
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return !!key && !(key instanceof Error) && key.isPrivateKey() === priv;
};

/**
 * A key pair that ssh2 itself can read back. ssh2 1.17's ed25519 generator strips the
 * public key's leading zero bytes, so about 1 key in 256 comes out malformed (mscdex/ssh2
 * #1390, #1513) and would make every later start fail: such a pair is never written, a
 * new one is drawn instead.
 */
export async function generateKeyPair(spec: KeySpec, comment: string): Promise<{ private: string; public: string }> {
  for (let attempt = 1; ; attempt++) {
    const pair = await generateOnce(spec, comment);
    if (usable(pair.private, true) && usable(pair.public, false)) return pair;
    if (attempt >= 32) throw new Error(`could not generate a readable ${spec.type} SSH key (ssh2 produced ${attempt} malformed keys)`);
  }
}

function tighten(p: string, mode: number): void {
  if ((fs.statSync(p).mode & 0o777 & ~mode) !== 0) fs.chmodSync(p, mode);
}

/** Creates `file` with `content` unless it exists; false when another writer was first. */
function createExclusive(file: string, content: string, mode: number): boolean {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, content, { mode, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function parsePrivate(file: string): ParsedKey {
  const parsed = utils.parseKey(fs.readFileSync(file));
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || !key.isPrivateKey()) {
    const why = key instanceof Error ? `: ${key.message}` : '';
    throw new Error(`SSH private key ${file} cannot be read${why}. Restore it from a backup, or move it away to generate a new one (hosts must then authorise the new public key)`);
  }
  return key;
}

export class SshKeyStore {
  private constructor(
    readonly dir: string,
    private readonly keys: Array<{ file: string; privateKey: Buffer; publicKey: BackrollPublicKey }>,
  ) {}

  /** Loads the keys, generating the missing ones. `comment` defaults to `backroll@<hostname>`. */
  static async open(dataDir: string, comment = `backroll@${os.hostname()}`): Promise<SshKeyStore> {
    const dir = path.join(dataDir, SSH_KEY_DIR);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
    tighten(dir, 0o700);
    const keys = [];
    for (const spec of KEYS) {
      const file = path.join(dir, spec.file);
      if (!fs.existsSync(file)) {
        const pair = await generateKeyPair(spec, comment);
        createExclusive(file, pair.private, 0o600);
      }
      tighten(file, 0o600);
      const key = parsePrivate(file);
      const blob = key.getPublicSSH();
      const line = `${key.type} ${blob.toString('base64')} ${key.comment || comment}`;
      // The .pub copy is for operators only; the line is always derived from the private key.
      if (!fs.existsSync(`${file}.pub`)) createExclusive(`${file}.pub`, `${line}\n`, 0o644);
      keys.push({
        file,
        privateKey: fs.readFileSync(file),
        publicKey: { algorithm: key.type, fingerprint: fingerprintSha256(blob), authorizedKeysLine: line },
      });
    }
    return new SshKeyStore(dir, keys);
  }

  /** In the order SSH offers them: ed25519, then RSA. */
  get privateKeys(): Buffer[] {
    return this.keys.map((k) => k.privateKey);
  }

  get publicKeys(): BackrollPublicKey[] {
    return this.keys.map((k) => ({ ...k.publicKey }));
  }
}
