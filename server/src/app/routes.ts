import type { FastifyInstance } from 'fastify';
import { clientRoutes } from '../auth/client.routes.js';
import { backupRoutes } from '../backups/backup.routes.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { connectorRoutes } from '../connectors/connector.routes.js';
import { hookRoutes } from '../hooks/hook.routes.js';
import { hostRoutes } from '../hosts/host.routes.js';
import { hostConnectionRoutes } from '../hosts/host-connection.routes.js';
import { policyRoutes } from '../policies/policy.routes.js';
import { restoreRoutes } from '../restores/restore.routes.js';
import { poolRoutes } from '../pools/pool.routes.js';
import type { Services } from './services.js';
import { scheduleRoutes } from '../scheduler/schedule.routes.js';
import { storageRoutes } from '../storages/storage.routes.js';
import { boardSessionRoutes, mountQueueBoard, type BoardSessions } from '../tasks/queue-board.js';
import { taskRoutes } from '../tasks/task.routes.js';
import { vmRoutes } from '../virtual-machines/vm.routes.js';
import { v1Routes } from '../v1/v1.routes.js';
import { drRoutes } from '../dr/dr.routes.js';
import { consoleConfigRoute, consoleRoutes } from '../console/console.routes.js';
import { webRoutes } from '../console/web-static.js';
import { eventRoutes } from '../console/events.routes.js';
import { ChangeFeed } from '../console/change-feed.js';
import { StreamLimits } from '../tasks/sse-limits.js';
import type { OidcConfig } from '../config/config.js';
import { resourceIndicatorFor } from '../idp/provider.js';
import { VERSION } from '../version.js';

/** The native API: every resource's routes under /api/v2. */
export interface ApiContext {
  dataDir: string;
  secretBox: SecretBox;
  issuer: string;
  embeddedIdp: boolean;
  /** Distributed mode: Bull Board at /admin/queues and its browser sessions. */
  queueBoard?: BoardSessions;
  /** The web console: its files (BACKROLL_WEB_DIR or web/dist) and its sign-in settings. */
  console?: { webDir?: string; oidc: OidcConfig };
}

export async function apiV2Routes(app: FastifyInstance, services: Services, ctx: ApiContext): Promise<void> {
  // One cap on open event streams, task streams and the console's stream alike.
  const streams = new StreamLimits();
  await app.register(
    async (v2) => {
      await storageRoutes(v2, services.storages);
      await policyRoutes(v2, services.policies);
      await poolRoutes(v2, services.pools);
      await hostRoutes(v2, services.hosts);
      await hostConnectionRoutes(v2, services.hostConnections);
      await vmRoutes(v2, services.vms, services.inventory);
      await connectorRoutes(v2, services.connectors);
      await hookRoutes(v2, services.hooks, services.hookDeliveries);
      await backupRoutes(v2, services.backups);
      await restoreRoutes(v2, services.restores, services.restorePreflight);
      await taskRoutes(v2, services.tasks, { mode: services.jobs.mode, streams });
      await drRoutes(v2, services.dr, services.drSelfBackup);
      await consoleRoutes(v2, services.consoleReads, { db: services.consoleReads.db, clock: services.clock });
      await eventRoutes(v2, new ChangeFeed(services.consoleReads.db, (onChange) => services.tasks.watchAll(onChange)), streams);
      await scheduleRoutes(v2, { policies: services.policies, firing: services.jobs.firing });
      if (ctx.queueBoard) await boardSessionRoutes(v2, ctx.queueBoard);
      await clientRoutes(v2, { dataDir: ctx.dataDir, secretBox: ctx.secretBox, issuer: ctx.issuer, embedded: ctx.embeddedIdp });
    },
    { prefix: '/api/v2' },
  );
  if (ctx.queueBoard) await mountQueueBoard(app, services.jobs.bullQueues(), ctx.queueBoard);
  await v1Routes(app, services, { issuer: ctx.issuer, embeddedIdp: ctx.embeddedIdp });
  if (ctx.console) {
    const { oidc } = ctx.console;
    await consoleConfigRoute(app, {
      issuer: oidc.issuer,
      clientId: oidc.webClientId,
      redirectUri: oidc.webRedirectUris[0] ?? '',
      resource: resourceIndicatorFor(oidc.audience),
      embeddedIdp: oidc.embedded,
      version: VERSION,
    });
    await webRoutes(app, { webDir: ctx.console.webDir, issuer: oidc.issuer });
  }
}
