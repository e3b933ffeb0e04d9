import type { FastifyInstance } from 'fastify';
import { clientRoutes } from '../auth/client.routes.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { connectorRoutes } from '../connectors/connector.routes.js';
import { hookRoutes } from '../hooks/hook.routes.js';
import { hostRoutes } from '../hosts/host.routes.js';
import { policyRoutes } from '../policies/policy.routes.js';
import { poolRoutes } from '../pools/pool.routes.js';
import type { Services } from '../services.js';
import { storageRoutes } from '../storages/storage.routes.js';

/** The native API: every resource's routes under /api/v2. */
export interface ApiContext {
  dataDir: string;
  secretBox: SecretBox;
  issuer: string;
  embeddedIdp: boolean;
}

export async function apiV2Routes(app: FastifyInstance, services: Services, ctx: ApiContext): Promise<void> {
  await app.register(
    async (v2) => {
      await storageRoutes(v2, services.storages);
      await policyRoutes(v2, services.policies);
      await poolRoutes(v2, services.pools);
      await hostRoutes(v2, services.hosts);
      await connectorRoutes(v2, services.connectors);
      await hookRoutes(v2, services.hooks);
      await clientRoutes(v2, { dataDir: ctx.dataDir, secretBox: ctx.secretBox, issuer: ctx.issuer, embedded: ctx.embeddedIdp });
    },
    { prefix: '/api/v2' },
  );
}
