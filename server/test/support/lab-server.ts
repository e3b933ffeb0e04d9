import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { Lab, LabHost } from '../../src/adapters/ssh/test-lab.js';
import { startTestServer, type TestServer } from './server.js';

export interface LabApiServer {
  t: TestServer;
  dataDir: string;
  storage: string;
  poolId: string;
  hostId: string;
}

/**
 * A real test server whose SSH key is the lab's client key (already authorised on the
 * lab hosts), with a storage, a policy (`policy` overrides its settings), a pool and
 * the given lab host registered and marked connected.
 */
export async function startLabApiServer(l: Lab, h: LabHost, policy: Record<string, unknown>): Promise<LabApiServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-data-'));
  fs.mkdirSync(path.join(dataDir, 'ssh'), { mode: 0o700 });
  fs.copyFileSync(l.clientKeyPath, path.join(dataDir, 'ssh', 'id_ed25519'));
  fs.chmodSync(path.join(dataDir, 'ssh', 'id_ed25519'), 0o600);
  const t = await startTestServer('sqlite', {}, { dataDir });
  const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
  const st = await t.api('POST', '/api/v2/storages', { body: { name: 'lab', path: storage } });
  expect(st.status, st.text).toBe(201);
  const pol = await t.api('POST', '/api/v2/policies', {
    body: { name: 'lab', schedule: '0 3 * * *', retention: { daily: 2, weekly: 0, monthly: 0, yearly: 0 }, storageId: st.body.id, ...policy },
  });
  expect(pol.status, pol.text).toBe(201);
  const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'lab', policyId: pol.body.id } });
  expect(pool.status, pool.text).toBe(201);
  const host = await t.api('POST', '/api/v2/hosts', {
    body: { name: h.name, address: l.sshHost, sshPort: l.sshPort, username: h.user, poolId: pool.body.id, libvirtUri: h.libvirtUri },
  });
  expect(host.status, host.text).toBe(201);
  await t.server.db.updateTable('hosts').set({ connection_state: 'connected' }).where('id', '=', host.body.id).execute();
  return { t, dataDir, storage, poolId: pool.body.id, hostId: host.body.id };
}
