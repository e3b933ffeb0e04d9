/**
 * Reads a BackROLL database (read-only): its MariaDB/MySQL database or its SQLite file.
 *
 * BackROLL's tables come from SQLModel models (`SQLModel.metadata.create_all`): table names
 * are the class names in lower case, UUIDs are CHAR(32) hex strings, booleans are 0/1.
 * `create_all` never alters an existing table, so a database first created by an older
 * BackROLL keeps the columns of that time: columns are read by name, extra ones are
 * ignored and the ones added later (`pools.connector_id`) may be absent.
 *
 * Supported: the schema of BackROLL v0.2.0 (2023) through v1.0.0-beta.1 and the main
 * branch (2025-2026, MariaDB or SQLite), and databases created between July 2022 and
 * April 2023 (their extra columns `hosts.is_cloudstack_managed`, `externalhooks.provider`,
 * `connectors.state`). The first schema (v0.1.0, May 2022: `policies.retention` as one
 * string, no `storage` table) is refused with a message.
 */
import SqliteDatabase from 'better-sqlite3';
import { Kysely, MysqlDialect, SqliteDialect, sql } from 'kysely';
import mysql from 'mysql2';
import { AppError } from '../../errors.js';

export interface SourceStorage {
  id: string;
  name: string;
  path: string;
}
export interface SourceHook {
  id: string;
  name: string;
  /** The Slack incoming-webhook URL: a secret. */
  value: string;
  /** Only in databases of 2022-08 to 2023-04 (default "slack"); null when absent. */
  provider: string | null;
}
export interface SourceConnector {
  id: string;
  name: string;
  url: string;
  /** CloudStack API key and secret key, stored in clear by BackROLL. */
  login: string;
  password: string;
}
export interface SourcePolicy {
  id: string;
  name: string;
  description: string | null;
  schedule: string | null;
  retention: { day: number; week: number; month: number; year: number };
  storageId: string | null;
  hookId: string | null;
  enabled: boolean;
}
export interface SourcePool {
  id: string;
  name: string | null;
  policyId: string | null;
  connectorId: string | null;
}
export interface SourceHost {
  id: string;
  hostname: string;
  ipaddress: string;
  username: string | null;
  /** BackROLL's key was installed through its connect form. */
  ssh: boolean;
  poolId: string | null;
  tags: string | null;
}

export interface BackrollSource {
  dialect: 'mysql' | 'sqlite';
  /** Where it was read from, without any password. */
  location: string;
  /** Schema differences noticed (older columns present or absent). */
  schemaNotes: string[];
  storages: SourceStorage[];
  hooks: SourceHook[];
  connectors: SourceConnector[];
  policies: SourcePolicy[];
  pools: SourcePool[];
  hosts: SourceHost[];
  /** Accounts of BackROLL's own login (table `user`, 2025); not imported. */
  userCount: number;
}

export type SourceUrl = { dialect: 'mysql'; url: string; location: string } | { dialect: 'sqlite'; file: string; location: string };

const usage = (message: string) => new AppError('invalid', 'IMPORT.SOURCE_URL_INVALID', message);

/**
 * `mysql://user:pass@host:3306/db` (also `mariadb://`, SQLAlchemy's `mysql+mysqlconnector://`
 * as in BackROLL's configuration), `sqlite:<path>` or SQLAlchemy's `sqlite:///<relative>` /
 * `sqlite:////<absolute>` (BackROLL's own: `sqlite:////var/lib/backroll/database.sqlite`).
 * `password` fills in a URL given without one (so it need not be on the command line).
 */
export function parseSourceUrl(raw: string, password?: string): SourceUrl {
  const text = raw.trim();
  if (/^sqlite:/i.test(text)) {
    let file = text.slice('sqlite:'.length);
    if (file.startsWith('///')) file = file.slice(3);
    else if (file.startsWith('//')) throw usage(`"${text}": write sqlite:/absolute/path, sqlite:relative/path or sqlite:////absolute/path`);
    if (file === '' || file === ':memory:') throw usage('give the path of BackROLL\'s SQLite file, e.g. sqlite:/var/lib/backroll/database.sqlite');
    return { dialect: 'sqlite', file, location: `sqlite:${file}` };
  }
  const m = /^(mysql|mariadb)(\+[a-z0-9]+)?:\/\//i.exec(text);
  if (!m) throw usage(`unsupported database URL "${redact(text)}": use mysql://user@host:3306/database (MariaDB too) or sqlite:/path/to/database.sqlite`);
  let u: URL;
  try {
    u = new URL(`mysql://${text.slice(m[0].length)}`);
  } catch {
    throw usage(`"${redact(text)}" is not a valid URL`);
  }
  if (u.pathname.replace(/^\//, '') === '') throw usage(`"${redact(text)}" names no database: add /<database> (BackROLL's DB_BASE)`);
  if (!u.password && password) u.password = encodeURIComponent(password);
  const shown = new URL(u.toString());
  if (shown.password) shown.password = '****';
  return { dialect: 'mysql', url: u.toString(), location: shown.toString() };
}

function redact(text: string): string {
  return text.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:****@');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;
type Row = Record<string, unknown>;

/** A read-only connection: SQLite opened read-only, MariaDB sessions set READ ONLY. */
export function openSource(src: SourceUrl): AnyDb {
  if (src.dialect === 'sqlite') {
    let file;
    try {
      file = new SqliteDatabase(src.file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new AppError('invalid', 'IMPORT.SOURCE_UNREACHABLE', `cannot open BackROLL's SQLite file ${src.file}: ${(err as Error).message}`);
    }
    file.pragma('query_only = ON');
    return new Kysely({ dialect: new SqliteDialect({ database: file }) });
  }
  const pool = mysql.createPool({ uri: src.url, connectionLimit: 2, connectTimeout: 10_000, supportBigNumbers: true, bigNumberStrings: false });
  pool.on('connection', (conn) => {
    conn.query('SET SESSION TRANSACTION READ ONLY');
  });
  return new Kysely({ dialect: new MysqlDialect({ pool }) });
}

/** CHAR(32) hex, a dashed UUID or BINARY(16): one comparable form. */
function id(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const s = Buffer.isBuffer(v) ? v.toString('hex') : String(v);
  const t = s.trim().toLowerCase().replace(/-/g, '');
  return t === '' ? null : t;
}
const str = (v: unknown): string | null => (v === null || v === undefined ? null : Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
const num = (v: unknown): number => (v === null || v === undefined || v === '' ? 0 : Number(v));
const bool = (v: unknown): boolean => v === true || num(v) !== 0;

const REQUIRED: Record<string, string[]> = {
  storage: ['id', 'name', 'path'],
  policies: ['id', 'name', 'schedule', 'retention_day', 'retention_week', 'retention_month', 'retention_year', 'storage'],
  pools: ['id', 'name', 'policy_id'],
  hosts: ['id', 'hostname', 'ipaddress', 'pool_id'],
};

/** Reads every resource BackROLL knows. Fails with IMPORT.SOURCE_* when it is not a BackROLL database. */
export async function readBackrollSource(src: SourceUrl): Promise<BackrollSource> {
  const db = openSource(src);
  try {
    let tables;
    try {
      tables = await db.introspection.getTables();
    } catch (err) {
      throw new AppError('unavailable', 'IMPORT.SOURCE_UNREACHABLE', `cannot read BackROLL's database at ${src.location}: ${(err as Error).message}`);
    }
    const columns = new Map(tables.map((t) => [t.name.toLowerCase(), new Set(t.columns.map((c) => c.name.toLowerCase()))]));
    const notes: string[] = [];
    const cols = (t: string) => columns.get(t) ?? new Set<string>();
    if (columns.has('policies') && cols('policies').has('retention') && !cols('policies').has('retention_day')) {
      throw new AppError('invalid', 'IMPORT.SOURCE_SCHEMA_UNSUPPORTED', `BackROLL's database at ${src.location} has the schema of BackROLL v0.1.0 (policies.retention as one string, before July 2022), which the import does not read; upgrade BackROLL first or create the resources by hand`);
    }
    for (const [table, needed] of Object.entries(REQUIRED)) {
      if (!columns.has(table)) {
        throw new AppError('invalid', 'IMPORT.SOURCE_NOT_BACKROLL', `${src.location} does not look like a BackROLL database: it has no table "${table}" (found: ${[...columns.keys()].sort().join(', ') || 'no tables'})`);
      }
      const missing = needed.filter((c) => !cols(table).has(c));
      if (missing.length) {
        throw new AppError('invalid', 'IMPORT.SOURCE_SCHEMA_UNSUPPORTED', `table "${table}" of ${src.location} lacks the column(s) ${missing.join(', ')} every BackROLL since v0.2.0 has`);
      }
    }
    if (!cols('pools').has('connector_id')) notes.push('pools.connector_id is absent (a database created before April 2023): no pool is linked to a connector');
    if (cols('hosts').has('is_cloudstack_managed')) notes.push('hosts.is_cloudstack_managed is present (a database created in 2022-2023): not used, Backroll asks CloudStack through the pool\'s connector');
    if (!columns.has('externalhooks')) notes.push('no table externalhooks: no hook to import');
    if (!columns.has('connectors')) notes.push('no table connectors: no connector to import');

    const all = async (table: string): Promise<Row[]> => (columns.has(table) ? ((await db.selectFrom(table).selectAll().execute()) as Row[]) : []);
    const sorted = <T extends { id: string }>(rows: T[]) => rows.sort((a, b) => a.id.localeCompare(b.id));

    const storages = sorted((await all('storage')).map((r) => ({ id: id(r.id)!, name: str(r.name) ?? '', path: str(r.path) ?? '' })));
    const hooks = sorted(
      (await all('externalhooks')).map((r) => ({ id: id(r.id)!, name: str(r.name) ?? '', value: str(r.value ?? r.url) ?? '', provider: str(r.provider) })),
    );
    const connectors = sorted(
      (await all('connectors')).map((r) => ({ id: id(r.id)!, name: str(r.name) ?? '', url: str(r.url) ?? '', login: str(r.login) ?? '', password: str(r.password) ?? '' })),
    );
    const policies = sorted(
      (await all('policies')).map((r) => ({
        id: id(r.id)!,
        name: str(r.name) ?? '',
        description: str(r.description),
        schedule: str(r.schedule),
        retention: { day: num(r.retention_day), week: num(r.retention_week), month: num(r.retention_month), year: num(r.retention_year) },
        storageId: id(r.storage),
        hookId: id(r.externalhook),
        enabled: bool(r.enabled),
      })),
    );
    const pools = sorted((await all('pools')).map((r) => ({ id: id(r.id)!, name: str(r.name), policyId: id(r.policy_id), connectorId: id(r.connector_id) })));
    const hosts = sorted(
      (await all('hosts')).map((r) => ({
        id: id(r.id)!,
        hostname: str(r.hostname) ?? '',
        ipaddress: str(r.ipaddress) ?? '',
        username: str(r.username),
        ssh: bool(r.ssh),
        poolId: id(r.pool_id),
        tags: str(r.tags),
      })),
    );
    let userCount = 0;
    if (columns.has('user')) {
      const row = await db.selectFrom('user').select(sql<number>`count(*)`.as('n')).executeTakeFirst();
      userCount = num(row?.n);
    }
    return { dialect: src.dialect, location: src.location, schemaNotes: notes, storages, hooks, connectors, policies, pools, hosts, userCount };
  } finally {
    await db.destroy();
  }
}
