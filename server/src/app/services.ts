import pino from 'pino';
import { nodeFileSystem, type FileSystem } from '../adapters/filesystem.js';
import { fetchPoster, type HttpPoster } from '../adapters/http-poster.js';
import { loadConfig, type Config } from '../config/config.js';
import { systemClock, type Clock } from '../clock.js';
import { ConnectorRepository } from '../connectors/connector.repository.js';
import { ConnectorService } from '../connectors/connector.service.js';
import { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Db } from '../db/database.js';
import { HookRepository } from '../hooks/hook.repository.js';
import { HookNotifier } from '../hooks/hook.notifier.js';
import { DeliveryRepository } from '../hooks/delivery.repository.js';
import { HookService } from '../hooks/hook.service.js';
import { TaskNotifications, TaskPolicyLookup } from '../hooks/task-notifications.js';
import { HostRepository } from '../hosts/host.repository.js';
import { HostService } from '../hosts/host.service.js';
import { HostConnections, type ClientKeys } from '../hosts/host-connection.service.js';
import { InventoryService } from '../virtual-machines/inventory.service.js';
import { VmRepository } from '../virtual-machines/vm.repository.js';
import { VmService } from '../virtual-machines/vm.service.js';
import { PolicyRepository } from '../policies/policy.repository.js';
import { PolicyService } from '../policies/policy.service.js';
import { PoolRepository } from '../pools/pool.repository.js';
import { PoolService } from '../pools/pool.service.js';
import { StorageRepository } from '../storages/storage.repository.js';
import type { PolicyRecord } from '../policies/policy.repository.js';
import { StorageService } from '../storages/storage.service.js';
import { createJobSystem } from './job-system.js';
import { createBackupModule } from '../backups/index.js';
import { BackupService } from '../backups/backup.service.js';
import { registerBackupHandlers } from '../backups/backup.handlers.js';
import { createRestoreModule, registerRestoreHandlers } from '../restores/index.js';
import { registerInventoryHandlers } from '../virtual-machines/inventory.tasks.js';
import { DrService } from '../dr/dr.service.js';
import { DrSelfBackup } from '../dr/dr-self-backup.js';
import { createReindex } from '../repair/index.js';
import { registerReindexHandler } from '../repair/reindex.routes.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import { VERSION } from '../version.js';
import { ConsoleService } from '../console/dashboard.service.js';
import { UsageRepository } from '../storages/usage.repository.js';

export interface ServiceDeps {
  db: Db;
  secretBox: SecretBox;
  clock?: Clock;
  fs?: FileSystem;
  /** Job system, scheduler and notification settings; default: embedded with the default limits. */
  config?: Pick<Config, 'dr' | 'jobs' | 'scheduler' | 'hooks' | 'redisUrl' | 'publicUrl' | 'dataDir' | 'ssh' | 'inventory' | 'vmShutdownTimeoutSeconds' | 'compactIntervalHours'>;
  /** Backroll's SSH client keys (`<data dir>/ssh`, SshKeyStore); without them hosts cannot be reached. */
  sshKeys?: ClientKeys | null;
  logger?: JobLogger;
  http?: HttpPoster;
}

const PAGE = 500;

/** Every item of a paginated list. */
async function all<T>(page: (p: { limit: number; offset: number }) => Promise<{ items: T[]; total: number }>): Promise<T[]> {
  const items: T[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const res = await page({ limit: PAGE, offset });
    items.push(...res.items);
    if (res.items.length < PAGE || items.length >= res.total) return items;
  }
}

/** The composition root of the domain services: one place wires repositories to services. */
export function createServices(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const fs = deps.fs ?? nodeFileSystem;
  const config = deps.config ?? loadConfig({});
  const logger = deps.logger ?? pino({ level: 'silent' });
  const notifier = new HookNotifier(deps.http ?? fetchPoster, config.hooks, `Backroll/${VERSION}`);
  const hookDeliveries = new DeliveryRepository(deps.db);
  notifier.setRecorder((hookId, d) => hookDeliveries.record(hookId, d));
  const storages = new StorageService(new StorageRepository(deps.db), fs, clock);
  const hooks = new HookService(new HookRepository(deps.db), deps.secretBox, clock, notifier);
  const connectors = new ConnectorService(new ConnectorRepository(deps.db), deps.secretBox, clock);
  const policyRepo = new PolicyRepository(deps.db);
  const policies = new PolicyService(
    policyRepo,
    { storageExists: async (id) => (await storages.find(id)) !== undefined, hookExists: (id) => hooks.exists(id) },
    clock,
    {
      // The scheduler sees every policy change at once (embedded timers or BullMQ job schedulers).
      changed: (id) => jobs.policyChanged(id).catch((err: unknown) => logger.warn({ err, policyId: id }, 'scheduler not updated; it reconciles within a minute')),
      lastRuns: (ids) => jobs.firing.lastRuns(ids),
    },
  );
  const pools = new PoolService(
    new PoolRepository(deps.db),
    { policyExists: async (id) => (await policies.find(id)) !== undefined, connectorExists: (id) => connectors.exists(id) },
    clock,
  );
  const hostRepo = new HostRepository(deps.db);
  // One SSH pool for everything that runs commands on hosts (inventory, backups, restores).
  const hostConnections = new HostConnections({ hosts: hostRepo, keys: deps.sshKeys ?? null, clock, ssh: config.ssh, concurrencyPerHost: config.inventory.concurrencyPerHost });
  const hosts = new HostService(hostRepo, { poolExists: (id) => pools.exists(id) }, clock, (id) => hostConnections.forget(id));
  const vms = new VmService(new VmRepository(deps.db));
  // The pools' CloudStack connectors: inventory enrichment, VMs CloudStack stopped, stop/start through CloudStack.
  const cloudStack = new CloudStackAccess(deps.db, (id) => connectors.client(id));
  const inventory = new InventoryService({
    vms: new VmRepository(deps.db),
    hosts: hostRepo,
    access: hostConnections,
    clock,
    concurrencyPerHost: config.inventory.concurrencyPerHost,
    cloudStack,
    warn: (message) => logger.warn(message),
  });
  // Pools need no notification: a schedule resolves its policy's pools when it fires.
  const jobs = createJobSystem({
    db: deps.db,
    clock,
    logger,
    jobs: config.jobs,
    scheduler: config.scheduler,
    redisUrl: config.redisUrl,
    policies: {
      find: (id) => policies.find(id),
      listEnabled: (): Promise<PolicyRecord[]> => all((p) => policyRepo.list(p, { enabled: true })),
      poolsOf: (policyId) => all((p) => pools.list(p, { policyId })),
    },
  });
  jobs.lifecycle.setEndListener(new TaskNotifications({ lookup: new TaskPolicyLookup(deps.db), hooks, notifier, publicUrl: config.publicUrl, logger }));
  // The backup side: vm.backup, pool.backup, restore-point.delete, repository.verify.
  const backupModule = createBackupModule({ db: deps.db, dataDir: config.dataDir, clock, hosts: { executor: (h) => hostConnections.pool.executor(h.id) }, compactIntervalMs: (config.compactIntervalHours ?? 24) * 3_600_000, cloudStack });
  const backups = new BackupService(backupModule, jobs.tasks);
  registerBackupHandlers(jobs.tasks, backupModule, backups);
  // The restore side: vm.restore (in place, as a new VM, to a directory) and disk downloads.
  const restoreModule = createRestoreModule({
    db: deps.db,
    backup: backupModule,
    shutdownGraceMs: config.vmShutdownTimeoutSeconds * 1000,
    submit: (kind, payload, opts) => jobs.tasks.submit(kind, payload, opts) });
  const restores = restoreModule.service;
  const restorePreflight = restoreModule.preflight;
  registerRestoreHandlers(jobs.tasks, restores);
  registerInventoryHandlers(jobs.tasks, inventory);
  // system.reindex: the restore-point index rebuilt from the repositories (backroll repair reindex).
  const reindex = createReindex(deps.db, backupModule);
  registerReindexHandler(jobs.tasks, reindex);
  const dr = new DrService(deps.db, config.dataDir, VERSION);
  const storageRepo = new StorageRepository(deps.db);
  const drSelfBackup = new DrSelfBackup(
    dr,
    { list: () => all((p) => storageRepo.list(p)) },
    { passphraseFile: config.dr?.passphraseFile, intervalHours: config.dr?.selfBackupHours ?? 24, keep: config.dr?.selfBackupKeep ?? 7 },
    clock,
    logger,
  );
  // The web console's read models (dashboard, VM table, storage usage).
  const storageUsage = new UsageRepository(deps.db);
  const consoleReads = new ConsoleService(deps.db, storages, storageUsage, clock);
  return { clock, restorePreflight, hookDeliveries, storageUsage, consoleReads, storages, hooks, connectors, policies, pools, hosts, hostConnections, vms, inventory, tasks: jobs.tasks, jobs, backups, backupModule, restores, dr, drSelfBackup, reindex };
}

export type Services = ReturnType<typeof createServices>;
