import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TokenVerifier } from './auth/token-verifier.js';
import type { Config, Role } from './config/config.js';
import { ensureDataDir } from './config/data-dir.js';
import { SecretBox } from './crypto/secret-box.js';
import { migrateToLatest, openDatabase, type Db } from './db/database.js';
import { buildHttpApp } from './http/app.js';
import { createMetrics } from './http/metrics.js';
import { apiV2Routes } from './http/routes.js';
import { createEmbeddedIdp, ensureAdminAccount } from './idp/index.js';
import { createLogger } from './logger.js';
import { createServices, type Services } from './services.js';
import { sql } from 'kysely';
import { VERSION } from './version.js';

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
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const roles = options.roles ?? config.roles;
  const logger = options.logger ?? createLogger(config.logLevel);
  ensureDataDir(config.dataDir);
  const secretBox = SecretBox.openInDir(config.dataDir);
  const db = openDatabase(config.database);
  try {
    const { applied } = await migrateToLatest(db, config.database.dialect);
    if (applied.length > 0) logger.info({ applied }, 'database migrated');
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const services = createServices({ db, secretBox });
  const running: RunningServer = {
    config,
    db,
    services,
    secretBox,
    async close() {
      await running.app?.close();
      await db.destroy();
    },
  };

  try {
    if (roles.includes('api')) {
      // The embedded provider's keys are fetched over loopback once the server listens,
      // through the same verification path an external issuer uses.
      let loopbackJwks: string | undefined;
      const verifier = new TokenVerifier({
        oidc: config.oidc,
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
        publicPlugins,
        routes: (scope) =>
          apiV2Routes(scope, services, { dataDir: config.dataDir, secretBox, issuer: config.oidc.issuer, embeddedIdp: config.oidc.embedded }),
        health: async () => {
          try {
            await sql`select 1`.execute(db);
            return { ok: true, checks: { database: 'ok' } };
          } catch {
            return { ok: false, checks: { database: 'unreachable' } };
          }
        },
      });
      running.app = app;
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
  if (roles.includes('worker')) logger.info('worker role started (in-process)');
  if (roles.includes('scheduler')) logger.info('scheduler role started (in-process)');
  return running;
}
