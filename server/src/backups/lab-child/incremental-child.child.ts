/**
 * Child process of the kill -9 mid-incremental lab test (incremental.lab.test.ts): backs up one
 * VM with the real engine; when the image writer is about to start an incremental read (the
 * pull-mode job runs, its checkpoint exists), it writes a marker file and waits, so the parent
 * can `kill -9` the whole process group.
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

it('runs an incremental backup until killed', async () => {
  const marker = env('BACKROLL_CHILD_MARKER');
  const db = openDatabase({ dialect: 'sqlite', url: env('BACKROLL_CHILD_DB') });
  const runner: ProcessRunner = {
    async run(cmd, argv, opts) {
      if (argv[0]?.endsWith('backroll_image_writer.py') && String(opts?.stdin ?? '').includes('"bitmap":"qemu:dirty-bitmap:')) {
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
