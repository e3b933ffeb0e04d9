/** `borg delete REPO -- ARCHIVE…` against a real borg: a name starting with `-` is an archive, never an option. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWhenAvailable } from '../../../test/support/unavailable.js';
import { Borg, type RepoAccess } from './borg.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;

describeWhenAvailable('borg delete with hostile archive names', borgMissing ? 'borg is not installed' : null, () => {
  let tmp: string;
  let borg: Borg;
  let access: RepoAccess;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-borg-delete-'));
    borg = new Borg({ baseDir: tmp });
    access = { repo: path.join(tmp, 'vm'), unencrypted: true };
    await borg.init(access, 'none');
    fs.writeFileSync(path.join(tmp, 'disk.img'), 'x');
    for (const archive of ['--stats', '-a_1', 'keep_1']) {
      await borg.create(access, { archive, paths: ['disk.img'], cwd: tmp, compression: 'none' });
    }
  }, 60_000);
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('deletes archives named "-a_1" and "--stats" and nothing else', async () => {
    expect((await borg.list(access)).map((a) => a.name).sort()).toEqual(['--stats', '-a_1', 'keep_1']);
    await borg.deleteArchives(access, ['-a_1', '--stats']);
    expect((await borg.list(access)).map((a) => a.name)).toEqual(['keep_1']);
  }, 60_000);
});
