import { describe, expect, it } from 'vitest';
import { drArchiveCreatedAt, openDrArchive, sealDrArchive } from './dr-archive.js';

const PASS = 'correct horse battery staple';
const payload = { tables: { storages: [{ id: 's1', path: '/mnt/b' }] }, files: { 'secret.key': { mode: 0o600, data: 'c2VjcmV0' } } };

describe('DR archive', () => {
  it('round-trips a payload and tells when it was written', async () => {
    const at = new Date('2026-12-02T10:00:00.000Z');
    const file = await sealDrArchive(payload, PASS, at);
    expect(file.subarray(0, 14).toString()).toBe('BACKROLL-DR 1\n');
    expect(file.includes(Buffer.from('secret.key'))).toBe(false); // encrypted, not merely encoded
    expect(await openDrArchive(file, PASS)).toEqual(payload);
    expect(drArchiveCreatedAt(file)).toBe(at.toISOString());
  });

  it('refuses a wrong passphrase', async () => {
    const file = await sealDrArchive(payload, PASS);
    await expect(openDrArchive(file, `${PASS}!`)).rejects.toMatchObject({ code: 'DR.DECRYPT_FAILED' });
  });

  it('refuses a change of any part: ciphertext, tag, authenticated header', async () => {
    const file = await sealDrArchive(payload, PASS);
    const headerEnd = file.indexOf(0x0a, 14);
    for (const at of [headerEnd + 5, file.length - 1]) {
      const bad = Buffer.from(file);
      bad[at] = bad[at]! ^ 0x01;
      await expect(openDrArchive(bad, PASS)).rejects.toMatchObject({ code: 'DR.DECRYPT_FAILED' });
    }
    // The creation time is in the header: authenticated as GCM additional data.
    const forged = Buffer.from(file.toString('latin1').replace(/"createdAt":"(\d{4})/, '"createdAt":"1999'), 'latin1');
    expect(forged.equals(file)).toBe(false);
    await expect(openDrArchive(forged, PASS)).rejects.toMatchObject({ code: 'DR.DECRYPT_FAILED' });
  });

  it('refuses a header asking for absurd key-derivation work before doing any', async () => {
    const file = await sealDrArchive(payload, PASS);
    const bad = Buffer.from(file.toString('latin1').replace('"N":32768', '"N":1073741824'), 'latin1');
    await expect(openDrArchive(bad, PASS)).rejects.toMatchObject({ code: 'DR.FILE_TAMPERED' });
  });

  it('refuses what is not a DR file, or a truncated one', async () => {
    await expect(openDrArchive(Buffer.from('hello'), PASS)).rejects.toMatchObject({ code: 'DR.FILE_INVALID' });
    const file = await sealDrArchive(payload, PASS);
    await expect(openDrArchive(file.subarray(0, file.indexOf(0x0a, 14) + 4), PASS)).rejects.toMatchObject({ code: 'DR.FILE_INVALID' });
  });

  it('refuses a passphrase shorter than 12 characters', async () => {
    await expect(sealDrArchive(payload, 'short')).rejects.toMatchObject({ code: 'DR.PASSPHRASE_WEAK' });
  });
});
