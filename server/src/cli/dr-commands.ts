/**
 * `backroll dr export --out FILE` and `backroll dr import FILE`: Backroll's own disaster
 * recovery (server/src/dr/). The passphrase comes from `--passphrase-file` or the
 * environment variable BACKROLL_DR_PASSPHRASE, never from the command line (argv is
 * visible to every user of the machine).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { ensureDataDir } from '../config/data-dir.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { DrService, readDrFile } from '../dr/dr.service.js';
import { AppError } from '../errors.js';
import { VERSION } from '../version.js';

const PASSPHRASE_ENV = 'BACKROLL_DR_PASSPHRASE';

function passphrase(opts: { passphraseFile?: string }): string {
  if (opts.passphraseFile) return fs.readFileSync(opts.passphraseFile, 'utf8').replace(/\r?\n$/, '');
  const env = process.env[PASSPHRASE_ENV];
  if (env) return env;
  throw new AppError('invalid', 'DR.PASSPHRASE_MISSING', `give the passphrase with --passphrase-file FILE or the environment variable ${PASSPHRASE_ENV}`);
}

async function withDr<T>(cfg: Config, fn: (dr: DrService) => Promise<T>): Promise<T> {
  ensureDataDir(cfg.dataDir);
  const db = openDatabase(cfg.database);
  try {
    await migrateToLatest(db, cfg.database.dialect);
    return await fn(new DrService(db, cfg.dataDir, VERSION));
  } finally {
    await db.destroy();
  }
}

function fail(err: unknown): never {
  const code = err instanceof AppError ? `${err.code}: ` : '';
  process.stderr.write(`backroll: ${code}${(err as Error).message}\n`);
  process.exit(1);
}

export function registerDrCommands(program: Command, config: () => Config): void {
  const dr = program.command('dr').description("disaster recovery of Backroll itself: its database and keys in one encrypted file");
  dr.command('export')
    .description(`write the database resources, SSH keys, secret.key and repository passphrases, encrypted (passphrase: --passphrase-file or ${PASSPHRASE_ENV})`)
    .requiredOption('--out <file>', 'file to write (created 0600; an existing file is not overwritten)')
    .option('--passphrase-file <file>', 'file holding the passphrase (at least 12 characters)')
    .action(async (opts: { out: string; passphraseFile?: string }) => {
      try {
        const { file, summary } = await withDr(config(), (s) => s.export(passphrase(opts)));
        fs.writeFileSync(opts.out, file, { mode: 0o600, flag: 'wx' });
        process.stdout.write(`wrote ${opts.out}: ${Object.entries(summary.rows).map(([t, n]) => `${n} ${t}`).join(', ')}; ${summary.files.length} key files\n`);
        process.stderr.write('Keep this file and its passphrase apart, both outside this server: together they restore every backup.\n');
      } catch (err) {
        fail(err);
      }
    });
  dr.command('import <file>')
    .description('restore an export on a fresh install (empty database); refuses a wrong passphrase or a modified file without writing anything')
    .option('--passphrase-file <file>', 'file holding the passphrase')
    .action(async (file: string, opts: { passphraseFile?: string }) => {
      try {
        // Decrypted and checked before the database or the data dir is touched.
        const payload = await readDrFile(fs.readFileSync(file), passphrase(opts));
        const summary = await withDr(config(), (s) => s.import(payload));
        process.stdout.write(
          `imported the export of ${summary.createdAt} (Backroll ${summary.backrollVersion}): ${Object.entries(summary.rows).map(([t, n]) => `${n} ${t}`).join(', ')}; ${summary.files.length} key files\n`,
        );
      } catch (err) {
        fail(err);
      }
    });
}
