/** The repair module's composition: the reindex over the backup module's borg, store, index and locks. */
import { BorgReader } from '../adapters/borg/extract.js';
import type { BackupModule } from '../backups/index.js';
import type { Db } from '../db/database.js';
import { ReindexService } from './reindex.service.js';

export function createReindex(db: Db, mod: BackupModule): ReindexService {
  const reader = new BorgReader({ baseDir: mod.dataDir, runner: mod.runner });
  return new ReindexService({ db, borg: mod.borg, reader, store: mod.store, restorePoints: mod.restorePoints, locks: mod.locks, clock: mod.clock });
}
