/**
 * Test-only: CloudStack's `backroll` provider client as the contract describes it, in its
 * three generations, over raw HTTP (exact headers: `Content-type: application/json` with
 * no body on GET/DELETE/POST, ISO-8859-1 login bodies, no Accept header). Every response
 * is parsed with a STRICT schema written from the contract (unknown properties rejected,
 * exact types): what Jackson's default ObjectMapper and Long.parseLong would refuse fails here.
 */
import http from 'node:http';
import { Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { expect } from 'vitest';

const strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });
const IsoNoOffset = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{6}$' });

export const Schemas = {
  /** POST /login (2024-12, 2025-04): at most these fields. */
  LoginToken: strict({
    access_token: Type.String({ minLength: 1 }),
    expires_in: Type.Optional(Type.Integer()),
    refresh_expires_in: Type.Optional(Type.Integer()),
    token_type: Type.Optional(Type.String()),
    'not-before-policy': Type.Optional(Type.Integer()),
    scope: Type.Optional(Type.String()),
  }),
  /** POST /auth/cloudstack/login (2026). */
  Login2026: strict({ access_token: Type.String({ minLength: 1 }) }),
  Location: strict({ Location: Type.String({ pattern: '^/api/v1/status/[^/]+$' }) }),
  Pending: strict({ state: Type.Literal('PENDING'), current: Type.Literal(0), total: Type.Literal(1), status: Type.Literal('Pending...') }),
  Failure: strict({ state: Type.Literal('FAILURE'), current: Type.Literal(1), total: Type.Literal(1), status: Type.String() }),
  Success: <T extends TSchema>(info: T) => strict({ state: Type.Literal('SUCCESS'), info }),
  Policy: strict({
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    schedule: Type.String(),
    storage: Type.String(),
    externalhook: Type.String(),
    retention_day: Type.Integer(),
    retention_week: Type.Integer(),
    retention_month: Type.Integer(),
    retention_year: Type.Integer(),
    enabled: Type.Boolean(),
  }),
  Archive: strict({
    archive: Type.String(),
    barchive: Type.String(),
    id: Type.String(),
    name: Type.String(),
    start: IsoNoOffset,
    time: IsoNoOffset,
    state: Type.Optional(Type.String()),
  }),
  Stats: strict({ original_size: Type.Integer(), compressed_size: Type.Integer(), deduplicated_size: Type.Integer(), nfiles: Type.Integer() }),
  Repository: strict({ id: Type.String(), last_modified: Type.String(), location: Type.String() }),
};

export const BackupListInfo = strict({ archives: Type.Array(Schemas.Archive), encryption: strict({ mode: Type.String() }), repository: Schemas.Repository });
export const RepositoryInfo = strict({
  cache: strict({
    path: Type.String(),
    stats: strict({
      total_chunks: Type.Integer(),
      total_csize: Type.Integer(),
      total_size: Type.Integer(),
      total_unique_chunks: Type.Integer(),
      unique_csize: Type.Integer(),
      unique_size: Type.Integer(),
    }),
  }),
  encryption: strict({ mode: Type.String() }),
  repository: Schemas.Repository,
  security_dir: Type.String(),
});

/** Parses like the client: a status other than 200/202 is an error; the body must match `schema` exactly. */
export function parseStrict(schema: TSchema, res: RawResponse, what: string): any {
  expect([200, 202], `${what}: HTTP ${res.status} ${res.text}`).toContain(res.status);
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new Error(`${what}: not JSON: ${res.text}`);
  }
  if (!Value.Check(schema, body)) {
    const errors = [...Value.Errors(schema, body)].map((e) => `${e.path}: ${e.message}`);
    throw new Error(`${what}: the client would refuse ${res.text}\n${errors.join('\n')}`);
  }
  return body;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One HTTP request with exactly these headers (node:http adds Host and Connection only). */
export function raw(url: string, method: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export type Generation = '2024-12' | '2025-04' | '2026';

/**
 * The provider's client against `baseUrl` (the zone setting backup.plugin.backroll.config.url,
 * e.g. `http://127.0.0.1:5050/api/v1`). Logs in as the generation does before each call.
 */
export class CloudStackClient {
  /** Every response, with what it was, for assertions on the whole sequence. */
  readonly calls: Array<{ what: string; status: number }> = [];
  private token = '';

  constructor(
    readonly baseUrl: string,
    readonly generation: Generation,
    private readonly appName: string,
    private readonly password: string,
  ) {}

  private async send(method: string, path: string, opts: { body?: unknown; bearer?: boolean; contentLength0?: boolean } = {}): Promise<RawResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (opts.bearer !== false) headers.authorization = `Bearer ${this.token}`;
    let body: Buffer | undefined;
    if (opts.body !== undefined) {
      body = Buffer.from(JSON.stringify(opts.body), 'latin1');
      headers['content-type'] = 'application/json; charset=ISO-8859-1';
      headers['content-length'] = String(body.length);
    } else if (opts.contentLength0) {
      headers['content-length'] = '0';
    }
    const res = await raw(`${this.baseUrl}${path}`, method, headers, body);
    this.calls.push({ what: `${method} ${path}`, status: res.status });
    return res;
  }

  /** The login the generation does before every request. */
  async login(): Promise<string> {
    if (this.generation === '2026') {
      const res = await this.send('POST', '/auth/cloudstack/login', { bearer: false, body: { app_secret: this.password, app_id: this.appName } });
      this.token = parseStrict(Schemas.Login2026, res, 'POST /auth/cloudstack/login').access_token;
      const test = await this.send('GET', '/auth/cloudstack/test');
      expect(test.status, test.text).toBe(200);
      JSON.parse(test.text);
      return this.token;
    }
    // POST /auth with no headers at all and no body: it must answer with a body.
    const auth = await raw(`${this.baseUrl}/auth`, 'POST', {});
    this.calls.push({ what: 'POST /auth', status: auth.status });
    expect(auth.status, 'POST /auth must not be 204').not.toBe(204);
    expect(auth.text.length, 'POST /auth must have a body').toBeGreaterThan(0);
    const res = await this.send('POST', '/login', { bearer: false, body: { app_id: this.appName, app_secret: this.password } });
    this.token = parseStrict(Schemas.LoginToken, res, 'POST /login').access_token;
    return this.token;
  }

  /** A starting call: answers exactly {"Location": "/api/v1/status/<id>"}; returns the id. */
  async start(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<string> {
    await this.login();
    const res = await this.send(method, path, { body, contentLength0: method === 'POST' && body === undefined });
    const loc = parseStrict(Schemas.Location, res, `${method} ${path}`).Location as string;
    return loc.replace(/^\/api\/v1\/status\//, '');
  }

  /** One poll (the client removes /api/v1 from the Location and appends the rest to its URL). */
  async pollOnce(id: string, path = `/status/${id}`): Promise<{ res: RawResponse; body: any }> {
    await this.login();
    const res = await this.send('GET', path);
    expect(res.status, `GET ${path}: ${res.text}`).toBe(200);
    return { res, body: JSON.parse(res.text) };
  }

  /**
   * Polls like the client (once at once, then every `intervalMs`) until the body stops
   * containing PENDING; parses PENDING strictly on the way. Returns the final body.
   */
  async poll(id: string, opts: { intervalMs?: number; attempts?: number } = {}): Promise<any> {
    const attempts = opts.attempts ?? 600;
    for (let i = 0; i < attempts; i++) {
      const { res, body } = await this.pollOnce(id);
      if (!res.text.includes('PENDING')) return body;
      parseStrict(Schemas.Pending, res, `GET /status/${id} (pending)`);
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
    throw new Error(`status ${id} still PENDING after ${attempts} polls`);
  }

  /** Polls to the end and parses SUCCESS with `info` strictly; returns `info`. */
  async success(id: string, info: TSchema, what: string): Promise<any> {
    const body = await this.poll(id);
    const res: RawResponse = { status: 200, headers: {}, text: JSON.stringify(body) };
    return parseStrict(Schemas.Success(info), res, `${what} (status ${id})`).info;
  }

  /** Polls to the end and parses FAILURE strictly (HTTP 200); returns its message. */
  async failure(id: string, what: string): Promise<string> {
    const body = await this.poll(id);
    const res: RawResponse = { status: 200, headers: {}, text: JSON.stringify(body) };
    return parseStrict(Schemas.Failure, res, `${what} (status ${id})`).status;
  }
}
