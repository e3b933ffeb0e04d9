/** The backup module's composition: one call builds the engine and its collaborators. */
import { Borg } from '../adapters/borg/borg.js';
import { nodeProcessRunner, type ProcessRunner } from '../adapters/process/process-runner.js';
import { systemClock, type Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { VmLocks } from '../locks/vm-lock.js';
import type { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { ImageWriter } from '../adapters/borg/image-writer.js';
import { BackupEngine } from './backup.engine.js';
import { PullBackup } from './incremental.js';
import { CompactionLedger } from './compaction.js';
import { BackupLookup } from './backup.lookup.js';
import { defaultSshKeyPath, sshHostAccess, type HostAccess } from './host-access.js';
import { RepositoryStore } from './repository-store.js';
import { RestorePointRepository } from './restore-point.repository.js';

export interface BackupModuleDeps {
  db: Db;
  dataDir: string;
  clock?: Clock;
  runner?: ProcessRunner;
  /** Default: an SSH pool with `<data dir>/ssh/id_ed25519`. */
  hosts?: HostAccess;
  sshKeyPath?: string;
  lockLeaseMs?: number;
  /** BACKROLL_COMPACT_INTERVAL_HOURS in ms (compaction.ts). Default 24 h. */
  compactIntervalMs?: number;
  /** The pools' CloudStack connectors (VMs CloudStack stopped; stop/start through CloudStack on restores). */
  cloudStack?: CloudStackAccess;
}

export function createBackupModule(deps: BackupModuleDeps) {
  const clock = deps.clock ?? systemClock;
  const runner = deps.runner ?? nodeProcessRunner;
  const borg = new Borg({ baseDir: deps.dataDir, runner });
  const lookup = new BackupLookup(deps.db);
  const hosts = deps.hosts ?? sshHostAccess(lookup, deps.sshKeyPath ?? defaultSshKeyPath(deps.dataDir));
  const locks = new VmLocks(deps.db, clock, { leaseMs: deps.lockLeaseMs });
  const restorePoints = new RestorePointRepository(deps.db);
  const store = new RepositoryStore(deps.dataDir, borg);
  const compactions = new CompactionLedger(deps.db);
  const pull = new PullBackup({ borg, writer: new ImageWriter(borg, runner), runner, restorePoints });
  const engine = new BackupEngine({ clock, dataDir: deps.dataDir, borg, runner, hosts, locks, lookup, restorePoints, store, pull, lockLeaseMs: deps.lockLeaseMs, compactions, compactIntervalMs: deps.compactIntervalMs, cloudStack: deps.cloudStack });
  return { clock, borg, lookup, hosts, locks, restorePoints, store, engine, compactions, runner, dataDir: deps.dataDir, cloudStack: deps.cloudStack ?? null };
}

export type BackupModule = ReturnType<typeof createBackupModule>;
