import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.js';

const VERSION = 'v1';
const KEY_FILE = 'secret.key';

/**
 * Encrypts secrets at rest with AES-256-GCM. The 32-byte key lives in the data dir
 * (0600) and never in the database, so a leaked database dump reveals no secret.
 * Format: `v1:<base64 iv(12)|tag(16)|ciphertext>`.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== 32) throw new Error('secret key must be 32 bytes');
    return new SecretBox(key);
  }

  /** Loads the key from the data dir, creating it (0600) on first use. */
  static openInDir(dataDir: string): SecretBox {
    const file = path.join(dataDir, KEY_FILE);
    try {
      const raw = fs.readFileSync(file);
      return SecretBox.fromKey(raw);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const key = randomBytes(32);
    // wx: never overwrite a key another process just created.
    try {
      fs.writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return SecretBox.fromKey(fs.readFileSync(file));
      throw err;
    }
    return new SecretBox(key);
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
  }

  decrypt(sealed: string): string {
    const [version, body] = sealed.split(':', 2);
    if (version !== VERSION || !body) {
      throw new AppError('internal', 'SECRET.UNREADABLE', 'a stored secret has an unknown format; re-enter it');
    }
    const raw = Buffer.from(body, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new AppError(
        'internal',
        'SECRET.UNREADABLE',
        'a stored secret cannot be decrypted with the key in the data dir (was secret.key replaced?); re-enter the secret',
        undefined,
        { cause: err },
      );
    }
  }
}
