/** BorgReader.readSmallFiles against a real borg: one `borg export-tar` gives every file of a config archive, byte-exact. */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Borg, type RepoAccess } from './borg.js';
import { BorgReader } from './extract.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;

describe.skipIf(borgMissing)(`borg export-tar of a config archive${borgMissing ? ' (SKIPPED: borg is not installed)' : ''}`, () => {
  let tmp: string;
  let access: RepoAccess;
  let reader: BorgReader;
  const files: Record<string, Buffer> = {
    'domain.xml': Buffer.from(`<domain type='kvm'><name>vm-ü</name>${'<!-- pad -->'.repeat(300)}</domain>`),
    'backroll.json': Buffer.from('{"epoch":1796272200,"disks":[{"target":"vda"}]}\n'),
    'checkpoint.xml': Buffer.from("<domaincheckpoint><name>backroll-1796272200</name></domaincheckpoint>"),
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-exporttar-'));
    const borg = new Borg({ baseDir: tmp });
    access = { repo: path.join(tmp, 'vm'), unencrypted: false, passphrase: 'a passphrase' };
    await borg.init(access, 'repokey-blake2');
    const dir = path.join(tmp, 'cfg');
    fs.mkdirSync(dir);
    for (const [n, b] of Object.entries(files)) fs.writeFileSync(path.join(dir, n), b, { mode: 0o600 });
    await borg.create(access, { archive: 'config_1796272200', paths: Object.keys(files), cwd: dir, compression: 'lz4', timestamp: new Date(1796272200 * 1000) });
    fs.writeFileSync(path.join(dir, 'big.bin'), randomBytes(2 * 1024 * 1024));
    await borg.create(access, { archive: 'config_1796272201', paths: ['big.bin', 'backroll.json'], cwd: dir, compression: 'lz4', timestamp: new Date(1796272201 * 1000) });
    reader = new BorgReader({ baseDir: tmp });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('gives every regular file with its exact bytes, in one borg process', async () => {
    const got = await reader.readSmallFiles(access, 'config_1796272200');
    expect(got.map((f) => f.path).sort()).toEqual(Object.keys(files).sort());
    for (const f of got) expect(f.data.equals(files[f.path]!)).toBe(true);
  });

  it('refuses an archive beyond the cap (BORG.ARCHIVE_TOO_LARGE) and a missing one (borg error)', async () => {
    await expect(reader.readSmallFiles(access, 'config_1796272201', { maxBytes: 1024 * 1024 })).rejects.toMatchObject({ code: 'BORG.ARCHIVE_TOO_LARGE' });
    await expect(reader.readSmallFiles(access, 'config_1')).rejects.toMatchObject({ code: expect.stringMatching(/^BORG\./) });
  });
});
