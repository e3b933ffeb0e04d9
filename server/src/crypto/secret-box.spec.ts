import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SecretBox } from './secret-box.js';

describe('SecretBox', () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-box-'));

  it('creates a 0600 key once and round-trips secrets with a fresh IV each time', () => {
    const d = dir();
    const box = SecretBox.openInDir(d);
    expect(fs.statSync(path.join(d, 'secret.key')).mode & 0o777).toBe(0o600);
    const a = box.encrypt('api-key');
    const b = box.encrypt('api-key');
    expect(a).not.toBe(b);
    expect(a).not.toContain('api-key');
    expect(SecretBox.openInDir(d).decrypt(a)).toBe('api-key');
  });

  it('detects tampering and a foreign key with a stable code', () => {
    const box = SecretBox.openInDir(dir());
    const sealed = box.encrypt('secret');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 1;
    expect(() => box.decrypt(`v1:${raw.toString('base64')}`)).toThrow(expect.objectContaining({ code: 'SECRET.UNREADABLE' }));
    expect(() => SecretBox.openInDir(dir()).decrypt(sealed)).toThrow(expect.objectContaining({ code: 'SECRET.UNREADABLE' }));
    expect(() => box.decrypt('plaintext')).toThrow(expect.objectContaining({ code: 'SECRET.UNREADABLE' }));
  });
});
