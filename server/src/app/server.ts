import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { embeddedClientCheck } from '../auth/client-check.js';
import { TokenVerifier } from '../auth/token-verifier.js';
import type { Config, Role } from '../config/config.js';
import { ensureDataDir } from '../config/data-dir.js';
import { SecretBox } from '../crypto/secret-box.js';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { buildHttpApp } from './http-app.js';
import { createMetrics } from '../http/metrics.js';
import { apiV2Routes } from './routes.js';
import { createEmbeddedIdp, ensureAdminAccount } from '../idp/index.js';
import { createLogger } from '../logger.js';
import { createServices, type Services } from './services.js';
import { SshKeyStore } from '../adapters/ssh/key-store.js';
import { InventoryTimer } from '../virtual-machines/inventory.timer.js';
import { BoardSessions } from '../tasks/queue-board.js';
import { applyTaskHandlers } from './task-handlers.js';
import type { TaskService } from '../tasks/task.service.js';
import { sql } from 'kysely';
import { VERSION } from '../version.js';
import { INSECURE_PUBLIC_URL, insecurePublicUrlWarning } from '../config/public-url.js';
import { UsageSampler } from '../storages/usage.sampler.js';

export interface RunningServer {
  config: Config;
  db: Db;
  services: Services;
  secretBox: SecretBox;
  app?: FastifyInstance;
  /** Base URL the API is listening on (loopback form), when the api role runs. */
  url?: string;
  close(): Promise<void>;
}

export interface StartOptions {
  roles?: Role[];
  logger?: Logger;
  /** Called once with the first-start admin password (the CLI prints it). */
  onAdminCreated?: (info: { password: string; passwordFile: string }) => void;
  /** Registers more task handlers (tests), after those of src/tasks/task-handlers.ts. */
  handlers?: (tasks: TaskService, services: Services) => void;
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const roles = options.roles ?? config.roles;
  const logger = options.logger ?? createLogger(config.logLevel);
  ensureDataDir(config.dataDir);
  const secretBox = SecretBox.openInDir(config.dataDir);
  // Backroll's SSH keys: generated on first start, shown by GET /api/v2/ssh/public-keys.
  const sshKeys = await SshKeyStore.open(config.dataDir);
  const db = openDatabase(config.database);
  try {
    const { applied } = await migrateToLatest(db, config.database.dialect);
    if (applied.length > 0) logger.info({ applied }, 'database migrated');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const services = createServices({ db, secretBox, config, logger, sshKeys });
  let inventoryTimer: InventoryTimer | undefined;
  let usageSampler: UsageSampler | undefined;
  const running: RunningServer = {
    config,
    db,
    services,
    secretBox,
    async close() {
      await running.app?.close();
      await inventoryTimer?.stop();
      await usageSampler?.stop();
      await services.drSelfBackup.stop();
      await services.jobs.close();
      services.backupModule.hosts.close?.();
      // After the jobs: their clean-ups (snapshot merges) still need SSH.
      services.hostConnections.close();
      await db.destroy();
    },
  };

  try {
    applyTaskHandlers(services.tasks, services);
    options.handlers?.(services.tasks, services);
    // Worker and scheduler first: a process missing a handler stops here, before it listens.
    await services.jobs.start({ worker: roles.includes('worker'), scheduler: roles.includes('scheduler') });
    if (roles.includes('worker')) {
      inventoryTimer = new InventoryTimer(() => services.inventory.refreshAll(), config.inventory.intervalSeconds, logger);
      inventoryTimer.start();
    }
    // The daily self-backup of Backroll's database and keys runs where the schedules do.
    if (roles.includes('scheduler')) services.drSelfBackup.start();
    if (!roles.includes('worker') && services.jobs.mode === 'embedded') {
      logger.warn('no worker role in embedded mode: tasks stay queued until a process with the worker role runs on this database');
    }
    if (roles.includes('api')) {
      const insecure = insecurePublicUrlWarning(config.publicUrl);
      if (insecure) logger.warn({ code: INSECURE_PUBLIC_URL, publicUrl: config.publicUrl }, insecure);
      const queueBoard = services.jobs.mode === 'distributed' ? new BoardSessions(secretBox, config.publicUrl.startsWith('https:')) : undefined;
      // The embedded provider's keys are fetched over loopback once the server listens,
      // through the same verification path an external issuer uses.
      let loopbackJwks: string | undefined;
      const verifier = new TokenVerifier({
        oidc: config.oidc,
        clients: config.oidc.embedded ? embeddedClientCheck(config.dataDir) : undefined,
        get jwksUri() {
          return loopbackJwks;
        },
      });
      let publicPlugins: ((app: FastifyInstance) => Promise<void>) | undefined;
      if (config.oidc.embedded) {
        const admin = ensureAdminAccount(config.dataDir);
        if (admin.created && admin.password) {
          (options.onAdminCreated ?? ((i) => logger.warn({ passwordFile: i.passwordFile }, 'admin account created; its password is in passwordFile')))({
            password: admin.password,
            passwordFile: admin.passwordFile,
          });
        }
        const idp = await createEmbeddedIdp({ dataDir: config.dataDir, oidc: config.oidc, secretBox, logger });
        publicPlugins = (app) => idp.register(app);
      }
      const app = await buildHttpApp({
        logger,
        verifier,
        metrics: config.metrics ? createMetrics() : undefined,
        version: VERSION,
        trustProxy: config.trustProxy,
        publicPlugins,
        sessionAuth: queueBoard && ((req) => queueBoard.principalOf(req)),
        routes: (scope) =>
          apiV2Routes(scope, services, {
            dataDir: config.dataDir,
            secretBox,
            issuer: config.oidc.issuer,
            embeddedIdp: config.oidc.embedded,
            queueBoard,
            console: { webDir: config.console.webDir, oidc: config.oidc },
          }),
        health: async () => {
          const database = await sql`select 1`
            .execute(db)
            .then(() => 'ok')
            .catch(() => 'unreachable');
          const jobs = await services.jobs.health();
          return { ok: database === 'ok' && jobs.queue !== 'unreachable', checks: { database, ...jobs } };
        },
      });
      running.app = app;
      // Storage usage history for the console (charts, estimated full date).
      usageSampler = new UsageSampler(services.storages, services.storageUsage, services.clock, config.console.storageSampleIntervalSeconds, logger);
      usageSampler.start();
      await app.listen({ host: config.host, port: config.port });
      const addr = app.server.address() as AddressInfo;
      const loopbackHost = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : addr.address.includes(':') ? `[${addr.address}]` : addr.address;
      running.url = `http://${loopbackHost}:${addr.port}`;
      if (config.oidc.embedded) loopbackJwks = `${running.url}/oidc/jwks`;
    }
  } catch (err) {
    // A half-started server must not keep the database or the port open.
    await running.close().catch(() => undefined);
    throw err;
  }
  return running;
}
