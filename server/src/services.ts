import { nodeFileSystem, type FileSystem } from './adapters/filesystem.js';
import { systemClock, type Clock } from './clock.js';
import { ConnectorRepository } from './connectors/connector.repository.js';
import { ConnectorService } from './connectors/connector.service.js';
import type { SecretBox } from './crypto/secret-box.js';
import type { Db } from './db/database.js';
import { HookRepository } from './hooks/hook.repository.js';
import { HookService } from './hooks/hook.service.js';
import { HostRepository } from './hosts/host.repository.js';
import { HostService } from './hosts/host.service.js';
import { PolicyRepository } from './policies/policy.repository.js';
import { PolicyService } from './policies/policy.service.js';
import { PoolRepository } from './pools/pool.repository.js';
import { PoolService } from './pools/pool.service.js';
import { StorageRepository } from './storages/storage.repository.js';
import { StorageService } from './storages/storage.service.js';

export interface ServiceDeps {
  db: Db;
  secretBox: SecretBox;
  clock?: Clock;
  fs?: FileSystem;
}

/** The composition root of the domain services: one place wires repositories to services. */
export function createServices(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const fs = deps.fs ?? nodeFileSystem;
  const storages = new StorageService(new StorageRepository(deps.db), fs, clock);
  const hooks = new HookService(new HookRepository(deps.db), deps.secretBox, clock);
  const connectors = new ConnectorService(new ConnectorRepository(deps.db), deps.secretBox, clock);
  const policies = new PolicyService(
    new PolicyRepository(deps.db),
    { storageExists: async (id) => (await storages.find(id)) !== undefined, hookExists: (id) => hooks.exists(id) },
    clock,
  );
  const pools = new PoolService(
    new PoolRepository(deps.db),
    { policyExists: async (id) => (await policies.find(id)) !== undefined, connectorExists: (id) => connectors.exists(id) },
    clock,
  );
  const hosts = new HostService(new HostRepository(deps.db), { poolExists: (id) => pools.exists(id) }, clock);
  return { clock, storages, hooks, connectors, policies, pools, hosts };
}

export type Services = ReturnType<typeof createServices>;
