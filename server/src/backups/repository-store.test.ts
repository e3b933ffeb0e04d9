/**
 * Temporary files in the backup storage (shared, possibly writable by other machines) are
 * created exclusively and never through a symbolic link planted at their path.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Borg } from '../adapters/borg/borg.js';
import { OWNER_FILE, RepositoryStore, openTempFile } from './repository-store.js';

describe('temporary files in the backup storage', () => {
  const dirs: string[] = [];
  const tmpDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-store-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const store = (dataDir: string) => new RepositoryStore(dataDir, new Borg({ baseDir: dataDir, command: '/nonexistent/borg' }));
  const uuid = '5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f';

  it('writes the owner record without following a symlink planted at its temp path', async () => {
    const root = tmpDir();
    const repo = path.join(root, 'vm1');
    fs.mkdirSync(repo);
    fs.writeFileSync(path.join(repo, 'config'), '[repository]\nversion = 1\nid = abcd\n'); // an existing unencrypted repository
    const victim = path.join(root, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    fs.symlinkSync(victim, path.join(repo, `${OWNER_FILE}.tmp`));

    await store(tmpDir()).ensure(repo, { uuid, name: 'vm1' }, 'none', async () => undefined);

    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    const owner = path.join(repo, OWNER_FILE);
    expect(fs.lstatSync(owner).isSymbolicLink()).toBe(false);
    expect(JSON.parse(fs.readFileSync(owner, 'utf8'))).toMatchObject({ vmUuid: uuid, vmName: 'vm1', adopted: true });
    expect(fs.statSync(owner).mode & 0o777).toBe(0o600);
  });

  it('stores a template without following symlinks planted at its temp paths', async () => {
    const storage = tmpDir();
    const source = path.join(tmpDir(), 'base.qcow2');
    fs.writeFileSync(source, 'template bytes');
    fs.mkdirSync(path.join(storage, 'template'));
    const victim = path.join(storage, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    const dest = path.join(storage, 'template', 'base.qcow2');
    fs.symlinkSync(victim, `${dest}.tmp`);
    fs.symlinkSync(victim, `${dest}.sha256.tmp`);

    const res = await store(tmpDir()).storeTemplate(storage, source);

    expect(res).toMatchObject({ path: dest, copied: true });
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(fs.readFileSync(dest, 'utf8')).toBe('template bytes');
    expect(fs.lstatSync(dest).isSymbolicLink()).toBe(false);
    expect(fs.readFileSync(`${dest}.sha256`, 'utf8')).toMatch(/^[0-9a-f]{64}  base\.qcow2\n$/);
  });

  it('opens a temp file exclusively: never through a dangling link, mode 0600', async () => {
    const d = tmpDir();
    const target = path.join(d, 'would-be-created');
    fs.symlinkSync(target, path.join(d, 'x.tmp'));
    const h = await openTempFile(path.join(d, 'x.tmp'));
    await h.writeFile('ok');
    await h.close();
    expect(fs.existsSync(target)).toBe(false);
    expect(fs.lstatSync(path.join(d, 'x.tmp')).isFile()).toBe(true);
    expect(fs.statSync(path.join(d, 'x.tmp')).mode & 0o777).toBe(0o600);
  });
});
