/**
 * Child process of the kill -9 lab test: backs up one VM with the real engine; right before
 * the first disk's `borg create` it writes a marker file and waits, so the parent can
 * `kill -9` the whole process group mid-backup (VM on its overlay, VM lock held).
 */
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'vitest';
import { nodeProcessRunner, type ProcessRunner } from '../../adapters/process/process-runner.js';
import { openDatabase } from '../../db/database.js';
import { BackupLookup } from '../backup.lookup.js';
import { sshHostAccess } from '../host-access.js';
import { createBackupModule } from '../index.js';
import { fakeContext } from '../lab-fixtures.js';

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

it('runs a backup until killed', async () => {
  const marker = env('BACKROLL_CHILD_MARKER');
  const db = openDatabase({ dialect: 'sqlite', url: env('BACKROLL_CHILD_DB') });
  const runner: ProcessRunner = {
    async run(cmd, argv, opts) {
      if (cmd === 'borg' && argv[0] === 'create' && !argv.some((a) => a.includes('::config_'))) {
        fs.writeFileSync(marker, String(process.pid));
        await new Promise((r) => setTimeout(r, 120_000));
      }
      return nodeProcessRunner.run(cmd, argv, opts);
    },
  };
  const mod = createBackupModule({ db, dataDir: env('BACKROLL_CHILD_DATA'), runner, hosts: sshHostAccess(new BackupLookup(db), env('BACKROLL_CHILD_KEY')), lockLeaseMs: 3000 });
  await mod.engine.backupVm({ vmId: env('BACKROLL_CHILD_VM') }, fakeContext());
  fs.writeFileSync(path.join(path.dirname(marker), 'child-finished'), 'unexpected');
});
