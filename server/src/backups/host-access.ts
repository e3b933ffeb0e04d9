/**
 * How the backup engine reaches a hypervisor host: an SshExecutor per host row.
 * The default keeps one SshPool over the hosts table (address, port, user, pinned key)
 * with Backroll's SSH private key from the data dir. When the inventory module
 * provides its own pool, pass `{ executor: (h) => inventoryPool.executor(h.id) }`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { SshPool } from '../adapters/ssh/ssh-pool.js';
import type { SshExecutor } from '../adapters/ssh/ssh-client.js';
import type { HostTable } from '../db/schema.js';
import type { BackupLookup } from './backup.lookup.js';

export interface HostAccess {
  executor(host: HostTable): SshExecutor;
  close?(): void;
}

/** Default key location (shared with the inventory): `<data dir>/ssh/id_ed25519`. */
export const defaultSshKeyPath = (dataDir: string) => path.join(dataDir, 'ssh', 'id_ed25519');

export function sshHostAccess(lookup: BackupLookup, privateKeyPath: string): HostAccess {
  const pool = new SshPool({
    resolveHost: async (id) => {
      const h = await lookup.host(id);
      return { host: h.address, port: h.ssh_port, username: h.username, privateKeys: [await fs.readFile(privateKeyPath)], pinnedFingerprint: h.host_key_fingerprint };
    },
  });
  return { executor: (h) => pool.executor(h.id), close: () => pool.closeAll() };
}
