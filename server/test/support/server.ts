import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type Config, type DatabaseDialect } from '../../src/config/config.js';
import { createMachineClient } from '../../src/idp/index.js';
import { startServer, type RunningServer } from '../../src/server.js';
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

/** Starts a real Backroll server (all roles) on a free loopback port with a real database. */
export async function startTestServer(dialect: DatabaseDialect, env: Record<string, string> = {}): Promise<TestServer> {
  const db = await createTestDatabase(dialect);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-data-'));
  const port = await freePort();
  const config = loadConfig({
    BACKROLL_DATA_DIR: dataDir,
    BACKROLL_HOST: '127.0.0.1',
    BACKROLL_PORT: String(port),
    BACKROLL_PUBLIC_URL: `http://127.0.0.1:${port}`,
    BACKROLL_DATABASE_URL: dialect === 'sqlite' ? `sqlite:${db.config.url}` : db.config.url,
    BACKROLL_LOG_LEVEL: process.env.BACKROLL_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const server = await startServer(config, { logger: pino({ level: config.logLevel }), onAdminCreated: () => {} });
  const url = `http://127.0.0.1:${port}`;
  // With an external issuer the caller brings that issuer's tokens.
  let adminToken = '';
  let viewerToken = '';
  if (config.oidc.embedded) {
    const admin = createMachineClient(dataDir, server.secretBox, 'test-admin', 'admin');
    const viewer = createMachineClient(dataDir, server.secretBox, 'test-viewer', 'viewer');
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
      await db.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
