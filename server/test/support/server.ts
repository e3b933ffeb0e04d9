import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type Config, type DatabaseDialect } from '../../src/config/config.js';
import { createMachineClient } from '../../src/idp/index.js';
import type { Role } from '../../src/config/config.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/app/server.js';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { freePort } from './ports.js';

export interface TestServer {
  server: RunningServer;
  config: Config;
  url: string;
  dataDir: string;
  db: TestDatabase;
  /** Real tokens from the bundled provider (client-credentials flow). */
  adminToken: string;
  viewerToken: string;
  /** fetch against the server with a token (admin by default). */
  api(method: string, path: string, opts?: { body?: unknown; token?: string | null; headers?: Record<string, string> }): Promise<ApiResponse>;
  close(): Promise<void>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

export async function clientCredentialsToken(issuer: string, clientId: string, clientSecret: string): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api' }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  if (!res.ok || !body.access_token) throw new Error(`token request failed: ${res.status} ${body.error}: ${body.error_description}`);
  return body.access_token;
}

export interface TestServerOptions {
  /** Test task handlers; a `pool.backup` that only records its run is added when none is registered. */
  handlers?: StartOptions['handlers'];
  roles?: Role[];
  /** Use this database instead of a fresh one (several servers on one database); not dropped on close. */
  database?: TestDatabase;
  /** Share a data dir (its secret key) with another server; not removed on close. */
  dataDir?: string;
}

/** Starts a real Backroll server (all roles) on a free loopback port with a real database. */
export async function startTestServer(dialect: DatabaseDialect, env: Record<string, string> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const db = opts.database ?? (await createTestDatabase(dialect));
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-data-'));
  const port = await freePort();
  const config = loadConfig({
    BACKROLL_DATA_DIR: dataDir,
    BACKROLL_HOST: '127.0.0.1',
    BACKROLL_PORT: String(port),
    BACKROLL_PUBLIC_URL: `http://127.0.0.1:${port}`,
    BACKROLL_DATABASE_URL: dialect === 'sqlite' ? `sqlite:${db.config.url}` : db.config.url,
    BACKROLL_LOG_LEVEL: process.env.BACKROLL_TEST_LOG_LEVEL ?? 'silent',
    // Test servers contact hosts only when a test asks them to.
    BACKROLL_INVENTORY_INTERVAL_SECONDS: '0',
    ...env,
  });
  const server = await startServer(config, {
    logger: pino({ level: config.logLevel }),
    onAdminCreated: () => {},
    roles: opts.roles,
    handlers: (tasks, services) => {
      opts.handlers?.(tasks, services);
      // The scheduler needs a pool.backup handler; until the engine registers its own, tests get one that only records.
      if (!tasks.hasHandler('pool.backup')) tasks.registerHandler('pool.backup', async (payload) => ({ test: true, payload }));
    },
  });
  const url = `http://127.0.0.1:${port}`;
  // With an external issuer the caller brings that issuer's tokens.
  let adminToken = '';
  let viewerToken = '';
  if (config.oidc.embedded && (opts.roles ?? config.roles).includes('api')) {
    // A data dir shared with an earlier server already has these names.
    const suffix = opts.dataDir ? `-${Math.random().toString(36).slice(2, 8)}` : '';
    const admin = createMachineClient(dataDir, server.secretBox, `test-admin${suffix}`, 'admin');
    const viewer = createMachineClient(dataDir, server.secretBox, `test-viewer${suffix}`, 'viewer');
    adminToken = await clientCredentialsToken(config.oidc.issuer, admin.clientId, admin.clientSecret);
    viewerToken = await clientCredentialsToken(config.oidc.issuer, viewer.clientId, viewer.clientSecret);
  }

  const api: TestServer['api'] = async (method, p, opts = {}) => {
    const token = opts.token === undefined ? adminToken : opts.token;
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${p}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, body, text };
  };

  return {
    server,
    config,
    url,
    dataDir,
    db,
    adminToken,
    viewerToken,
    api,
    async close() {
      await server.close();
      if (!opts.database) await db.drop();
      if (!opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
