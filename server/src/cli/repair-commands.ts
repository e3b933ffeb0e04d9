/**
 * `backroll repair reindex [--dry-run] [--prune-missing] [--storage S] [--repository NAME]
 * [--attach-to-host HOST] [--json]`: rebuilds the restore-point index from the borg
 * repositories on the storages (server/src/repair/). Runs in this process against the
 * configured database and data dir (no server needed: the database may just have been
 * restored); a running Backroll is safe, writes take each VM's lock.
 *
 * Exit status: 0 done (see the report), 1 bad options or no database, 2 some repositories
 * failed or were busy (run again).
 */
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { ensureDataDir } from '../config/data-dir.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { createBackupModule } from '../backups/index.js';
import { AppError } from '../errors.js';
import { createReindex } from '../repair/index.js';
import { describe, type ReindexReport } from '../repair/reindex.service.js';

interface ReindexCliOptions {
  dryRun?: boolean;
  pruneMissing?: boolean;
  storage?: string;
  repository?: string;
  attachToHost?: string;
  json?: boolean;
}

export function formatReindexReport(r: ReindexReport): string {
  const lines: string[] = [];
  const verb = r.dryRun ? 'would add' : 'added';
  for (const s of r.storages) {
    const c = s.counts;
    lines.push(
      s.error
        ? `storage ${s.name} (${s.path}): skipped, ${s.error}`
        : `storage ${s.name} (${s.path}): ${c.repositories} repositories, ${c.restorePoints} restore points: ${c.kept} kept, ${c.added} ${verb}, ${c.missing} missing (${c.pruned} ${r.dryRun ? 'would be pruned' : 'pruned'}), ${c.incomplete} incomplete, ${c.unmatched} unmatched, ${c.refused} refused, ${c.failed} failed`,
    );
    for (const rep of s.repositories) {
      lines.push(`  ${describe(s, rep, r.dryRun)}`);
      for (const n of rep.notes) lines.push(`    note: ${n}`);
    }
  }
  const t = r.totals;
  lines.push(`${r.dryRun ? 'dry run, nothing written: ' : ''}total ${t.repositories} repositories, ${t.restorePoints} restore points: ${t.kept} kept, ${t.added} ${verb}, ${t.missing} missing, ${t.pruned} ${r.dryRun ? 'would be pruned' : 'pruned'}`);
  if (t.missing > t.pruned && !r.pruneMissing) lines.push('missing restore points stay in the index: delete them with --prune-missing');
  return `${lines.join('\n')}\n`;
}

export function registerRepairCommands(program: Command, config: () => Config): void {
  const repair = program.command('repair').description("repairs of Backroll's own state");
  repair
    .command('reindex')
    .description('rebuild the restore-point index from the borg repositories on the storages (after losing the database but not the keys, or after `backroll import backroll`)')
    .option('--dry-run', 'print what would change; write nothing')
    .option('--prune-missing', 'delete index rows whose archives are gone from the repository (they are reported either way)')
    .option('--storage <id-or-name>', 'only this storage')
    .option('--repository <name>', 'only this repository directory (a VM name) of each storage')
    .option('--attach-to-host <id-or-name>', 'record VMs that the inventory does not have as absent VMs of this host, so their restore points are listed')
    .option('--json', 'print the report as JSON')
    .action(async (opts: ReindexCliOptions) => {
      const cfg = config();
      ensureDataDir(cfg.dataDir);
      const db = openDatabase(cfg.database);
      let status = 0;
      try {
        await migrateToLatest(db, cfg.database.dialect);
        const mod = createBackupModule({ db, dataDir: cfg.dataDir });
        try {
          const report = await createReindex(db, mod).run({
            dryRun: opts.dryRun ?? false,
            pruneMissing: opts.pruneMissing ?? false,
            storage: opts.storage,
            repository: opts.repository,
            attachToHost: opts.attachToHost,
          });
          process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReindexReport(report));
          if (report.totals.failed > 0) status = 2;
        } finally {
          mod.hosts.close?.();
        }
      } catch (err) {
        const code = err instanceof AppError ? `${err.code}: ` : '';
        process.stderr.write(`backroll: ${code}${(err as Error).message}\n`);
        status = 1;
      } finally {
        await db.destroy();
      }
      process.exitCode = status;
    });
}
