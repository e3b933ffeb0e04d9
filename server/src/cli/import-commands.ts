/**
 * `backroll import backroll --database-url <mysql://…|sqlite:…> [--apply] [--json]`: brings a
 * BackROLL installation's storages, hooks, connectors, policies, pools and hosts into Backroll
 * (server/src/migration/backroll-import/). Dry run by default. The BackROLL database is only
 * read. Its password may come from BACKROLL_IMPORT_DATABASE_PASSWORD instead of the URL, and
 * the whole URL from BACKROLL_IMPORT_DATABASE_URL, so it is not on the command line.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { SSH_KEY_DIR } from '../adapters/ssh/key-store.js';
import type { Config } from '../config/config.js';
import { ensureDataDir } from '../config/data-dir.js';
import { SecretBox } from '../crypto/secret-box.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { AppError } from '../errors.js';
import { authorizeCommand } from '../hosts/authorize-command.js';
import { applyPlan, emptyExisting, loadExisting, type ExistingResources, type ImportReport } from '../migration/backroll-import/applier.js';
import { DEFAULT_TIMEZONE, mapBackroll } from '../migration/backroll-import/mapper.js';
import { formatReport } from '../migration/backroll-import/report.js';
import { parseSourceUrl, readBackrollSource } from '../migration/backroll-import/source.js';

const URL_ENV = 'BACKROLL_IMPORT_DATABASE_URL';
const PASSWORD_ENV = 'BACKROLL_IMPORT_DATABASE_PASSWORD';
const BACKROLL_TABLES = ['storages', 'hooks', 'connectors', 'policies', 'pools', 'hosts'];

interface ImportOptions {
  databaseUrl?: string;
  apply?: boolean;
  json?: boolean;
  timezone: string;
  keepEnabled?: boolean;
}

/** The command that authorises Backroll's keys, when they exist already (never generated here). */
function installCommand(dataDir: string): string | undefined {
  const lines: string[] = [];
  for (const f of ['id_ed25519.pub', 'id_rsa.pub']) {
    const file = path.join(dataDir, SSH_KEY_DIR, f);
    if (fs.existsSync(file)) lines.push(fs.readFileSync(file, 'utf8').trim());
  }
  try {
    return lines.length ? authorizeCommand(lines) : undefined;
  } catch {
    return undefined;
  }
}

/** Dry run: a storage path as StorageService would judge it, without creating anything. */
async function probePath(dir: string): Promise<string | null> {
  const p = path.normalize(dir);
  try {
    const st = await fs.promises.stat(p);
    if (!st.isDirectory()) return `STORAGE.PATH_NOT_DIRECTORY: storage path "${p}" is not a directory`;
    await fs.promises.access(p, fs.constants.W_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `STORAGE.PATH_NOT_FOUND: storage path "${p}" does not exist on the Backroll server; mount the backup storage there first`;
    return `STORAGE.PATH_NOT_WRITABLE: storage path "${p}" is not writable by this user (${code ?? 'error'})`;
  }
}

async function hasBackrollTables(db: Db): Promise<boolean> {
  const names = new Set((await db.introspection.getTables()).map((t) => t.name));
  return BACKROLL_TABLES.every((t) => names.has(t));
}

/** What Backroll has already, read only; an absent or empty database has nothing. */
async function existingReadOnly(cfg: Config): Promise<ExistingResources> {
  if (cfg.database.dialect === 'sqlite' && !fs.existsSync(cfg.database.url)) return emptyExisting();
  const db = openDatabase(cfg.database);
  try {
    return (await hasBackrollTables(db)) ? await loadExisting(db) : emptyExisting();
  } finally {
    await db.destroy();
  }
}

/**
 * Secrets are sealed with `<data dir>/secret.key`: importing with another data dir than the
 * server's would store secrets the server cannot open. Refused before anything is written.
 */
async function assertSameDataDir(cfg: Config, db: Db): Promise<void> {
  if (!(await hasBackrollTables(db))) return;
  const sealed = await db.selectFrom('connectors').select('api_key_sealed as v').unionAll(db.selectFrom('hooks').select('url_sealed as v')).limit(1).executeTakeFirst();
  if (!sealed) return;
  const keyFile = path.join(cfg.dataDir, 'secret.key');
  let ok = fs.existsSync(keyFile);
  if (ok) {
    try {
      SecretBox.openInDir(cfg.dataDir).decrypt(sealed.v);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw new AppError(
      'invalid',
      'IMPORT.DATA_DIR_MISMATCH',
      `the secrets already in Backroll's database cannot be opened with ${keyFile}: run the import with the same BACKROLL_DATA_DIR (and database) as the Backroll server`,
    );
  }
}

async function run(cfg: Config, opts: ImportOptions): Promise<ImportReport> {
  const raw = opts.databaseUrl ?? process.env[URL_ENV];
  if (!raw) throw new AppError('invalid', 'IMPORT.SOURCE_URL_MISSING', `give BackROLL's database with --database-url <mysql://user@host/db|sqlite:/path> or ${URL_ENV}`);
  const src = parseSourceUrl(raw, process.env[PASSWORD_ENV]);
  const source = await readBackrollSource(src);
  const plan = mapBackroll(source, { timezone: opts.timezone, keepEnabled: opts.keepEnabled ?? false, now: new Date(), installCommand: installCommand(cfg.dataDir) });
  if (!opts.apply) return applyPlan(source, plan, { existing: await existingReadOnly(cfg), probePath });

  ensureDataDir(cfg.dataDir);
  const db = openDatabase(cfg.database);
  try {
    await migrateToLatest(db, cfg.database.dialect);
    await assertSameDataDir(cfg, db);
    // Loaded here only: the composition root is heavy and only --apply needs it.
    const { createServices } = await import('../app/services.js');
    const services = createServices({ db, secretBox: SecretBox.openInDir(cfg.dataDir), config: cfg, logger: pino({ level: 'silent' }) });
    try {
      return await applyPlan(source, plan, { existing: await loadExisting(db), targets: services });
    } finally {
      await services.jobs.close();
      services.hostConnections.close();
    }
  } finally {
    await db.destroy();
  }
}

export function registerImportCommands(program: Command, config: () => Config): void {
  const imp = program.command('import').description('bring resources over from another installation');
  imp
    .command('backroll')
    .description(
      "read a BackROLL database (MariaDB or SQLite; only read) and create its storages, hooks, connectors, policies, pools and hosts in Backroll; " +
        'dry run unless --apply; names already in Backroll are skipped, so it can run again',
    )
    .option('--database-url <url>', `BackROLL's database: mysql://user@host:3306/backroll or sqlite:/var/lib/backroll/database.sqlite (or ${URL_ENV}; password also from ${PASSWORD_ENV})`)
    .option('--apply', 'create the resources (default: only report what would be done)')
    .option('--json', 'print the report as JSON')
    .option('--timezone <tz>', "time zone of BackROLL's schedules (its Celery ran them in Europe/Paris)", DEFAULT_TIMEZONE)
    .option('--keep-enabled', "keep BackROLL's enabled flag on policies (default: imported disabled, enable them once BackROLL is stopped)")
    .action(async (opts: ImportOptions) => {
      let report: ImportReport;
      try {
        report = await run(config(), opts);
      } catch (err) {
        const code = err instanceof AppError ? `${err.code}: ` : '';
        process.stderr.write(`backroll: ${code}${(err as Error).message}\n`);
        process.exit(err instanceof AppError && err.kind === 'invalid' && err.code.startsWith('IMPORT.SOURCE_URL') ? 2 : 1);
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (report.summary.failed > 0) process.exit(1);
    });
}
