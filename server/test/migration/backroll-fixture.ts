/**
 * A BackROLL database for the import tests, written from BackROLL's SQLModel models
 * (DIMSI-IS/BackROLL src/core/python_project/app/database.py): the tables
 * `SQLModel.metadata.create_all` makes with SQLModel 0.0.21 / SQLAlchemy 2.0 on MariaDB
 * (mysql+mysqlconnector) and on SQLite — UUID as CHAR(32) hex, str as VARCHAR(255) (MariaDB) /
 * VARCHAR (SQLite), bool as BOOL / BOOLEAN, bytes as BLOB. `legacy2022` is the schema a
 * database created in late 2022 keeps (create_all never alters a table): hosts with
 * is_cloudstack_managed and cs_agent_status, externalhooks.provider, connectors.state, and no
 * pools.connector_id.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { createTestDatabase } from '../support/databases.js';

export type FixtureDialect = 'mysql' | 'sqlite';
export type FixtureSchema = 'current' | 'legacy2022';

function ddl(dialect: FixtureDialect, schema: FixtureSchema): string[] {
  const s = dialect === 'mysql' ? 'VARCHAR(255)' : 'VARCHAR';
  const b = dialect === 'mysql' ? 'BOOL' : 'BOOLEAN';
  const q = (name: string) => (dialect === 'mysql' ? `\`${name}\`` : `"${name}"`);
  const legacy = schema === 'legacy2022';
  return [
    `CREATE TABLE storage (id CHAR(32) NOT NULL, name ${s} NOT NULL, path ${s} NOT NULL, PRIMARY KEY (id))`,
    `CREATE TABLE externalhooks (id CHAR(32) NOT NULL, name ${s} NOT NULL, value ${s} NOT NULL,${legacy ? ` provider ${s},` : ''} PRIMARY KEY (id))`,
    `CREATE TABLE connectors (id CHAR(32) NOT NULL, name ${s} NOT NULL, url ${s} NOT NULL, login ${s} NOT NULL, password ${s} NOT NULL,${legacy ? ` state ${b},` : ''} PRIMARY KEY (id))`,
    ...(legacy ? [] : [`CREATE TABLE ${q('user')} (id CHAR(32) NOT NULL, name ${s} NOT NULL, password_hash BLOB NOT NULL, PRIMARY KEY (id))`]),
    `CREATE TABLE policies (id CHAR(32) NOT NULL, name ${s} NOT NULL, description ${s} NOT NULL, schedule ${s} NOT NULL, ` +
      `retention_day INTEGER NOT NULL, retention_week INTEGER NOT NULL, retention_month INTEGER NOT NULL, retention_year INTEGER NOT NULL, ` +
      `storage CHAR(32), externalhook CHAR(32), enabled ${b}, PRIMARY KEY (id), ` +
      `FOREIGN KEY(storage) REFERENCES storage (id), FOREIGN KEY(externalhook) REFERENCES externalhooks (id))`,
    `CREATE TABLE pools (id CHAR(32) NOT NULL, name ${s}, policy_id CHAR(32),${legacy ? '' : ' connector_id CHAR(32),'} PRIMARY KEY (id), ` +
      `FOREIGN KEY(policy_id) REFERENCES policies (id)${legacy ? '' : ', FOREIGN KEY(connector_id) REFERENCES connectors (id)'})`,
    `CREATE TABLE hosts (id CHAR(32) NOT NULL, hostname ${s} NOT NULL, ipaddress ${s} NOT NULL, username ${s}, ssh ${b}, pool_id CHAR(32), ` +
      `${legacy ? `is_cloudstack_managed ${b}, cs_agent_status ${b}, ` : ''}tags ${s}, state ${b}, PRIMARY KEY (id), FOREIGN KEY(pool_id) REFERENCES pools (id))`,
  ];
}

/** The secrets of the sample rows: they must never appear in any output. */
export const SECRETS = {
  slackUrl: 'https://hooks.slack.com/services/T0001/B0002/sEcReTsLaCkToKeN42',
  apiKey: 'APIKEY-9f8e7d6c5b4a3f2e1d0c',
  secretKey: 'SECRETKEY-0a1b2c3d4e5f6a7b8c9d',
};

export const IDS = {
  storage: 'a0000000000000000000000000000001',
  hook: 'b0000000000000000000000000000001',
  connector: 'c0000000000000000000000000000001',
  nightly: 'd0000000000000000000000000000001',
  friday13: 'd0000000000000000000000000000002',
  rackA: 'e0000000000000000000000000000001',
  rackB: 'e0000000000000000000000000000002',
  kvm1: 'f0000000000000000000000000000001',
  kvm2: 'f0000000000000000000000000000002',
  user: '90000000000000000000000000000001',
};

type Row = Record<string, string | number | null | Buffer>;

/** 2 pools, 2 policies (one whose schedule Backroll cannot express exactly), 2 hosts, a storage, a connector, a Slack hook, a user. */
function rows(storagePath: string, schema: FixtureSchema): Array<[string, Row]> {
  const legacy = schema === 'legacy2022';
  return [
    ['storage', { id: IDS.storage, name: 'nfs-backup', path: storagePath }],
    ['externalhooks', { id: IDS.hook, name: 'slack-ops', value: SECRETS.slackUrl, ...(legacy ? { provider: 'slack' } : {}) }],
    ['connectors', { id: IDS.connector, name: 'cloudstack-zone1', url: 'https://cloud.example.test/client/api', login: SECRETS.apiKey, password: SECRETS.secretKey, ...(legacy ? { state: 1 } : {}) }],
    ...(legacy ? [] : ([['user', { id: IDS.user, name: 'admin', password_hash: Buffer.from('$2b$12$hash') }]] as Array<[string, Row]>)),
    [
      'policies',
      // What BackROLL's UI writes: minute hour * * <days 1-7>.
      { id: IDS.nightly, name: 'nightly', description: 'every night', schedule: '30 1 * * 1,2,3,4,5,6,7', retention_day: 7, retention_week: 4, retention_month: 6, retention_year: 1, storage: IDS.storage, externalhook: IDS.hook, enabled: 1 },
    ],
    [
      'policies',
      // Celery runs it on Friday the 13th only; cron cannot say that.
      { id: IDS.friday13, name: 'friday-13th', description: '', schedule: '0 3 13 * 5', retention_day: 0, retention_week: 0, retention_month: 3, retention_year: 0, storage: IDS.storage, externalhook: null, enabled: 0 },
    ],
    ['pools', { id: IDS.rackA, name: 'rack-a', policy_id: IDS.nightly, ...(legacy ? {} : { connector_id: IDS.connector }) }],
    ['pools', { id: IDS.rackB, name: 'rack-b', policy_id: IDS.friday13, ...(legacy ? {} : { connector_id: null }) }],
    ['hosts', { id: IDS.kvm1, hostname: 'kvm1', ipaddress: '192.0.2.10', username: 'root', ssh: 1, pool_id: IDS.rackA, tags: 'production', state: 1, ...(legacy ? { is_cloudstack_managed: 1, cs_agent_status: 1 } : {}) }],
    ['hosts', { id: IDS.kvm2, hostname: 'kvm2', ipaddress: 'kvm2.example.test', username: null, ssh: 0, pool_id: IDS.rackB, tags: 'lab, rack:b, not/ok', state: 0, ...(legacy ? { is_cloudstack_managed: 0, cs_agent_status: 0 } : {}) }],
  ];
}

export interface BackrollFixture {
  dialect: FixtureDialect;
  /** What `--database-url` takes. */
  url: string;
  /** Every row of every table, to prove the import wrote nothing there. */
  snapshot(): Promise<string>;
  drop(): Promise<void>;
}

const TABLES = ['storage', 'externalhooks', 'connectors', 'user', 'policies', 'pools', 'hosts'];

export async function createBackrollDatabase(dialect: FixtureDialect, storagePath: string, schema: FixtureSchema = 'current'): Promise<BackrollFixture> {
  const statements = ddl(dialect, schema);
  const data = rows(storagePath, schema);
  const insert = (table: string, row: Row) => {
    const cols = Object.keys(row);
    const quoted = cols.map((c) => (dialect === 'mysql' ? `\`${c}\`` : `"${c}"`)).join(', ');
    const t = dialect === 'mysql' ? `\`${table}\`` : `"${table}"`;
    return { text: `INSERT INTO ${t} (${quoted}) VALUES (${cols.map(() => '?').join(', ')})`, values: Object.values(row) };
  };
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-v1-'));
    const file = path.join(dir, 'database.sqlite');
    const db = new SqliteDatabase(file);
    for (const s of statements) db.exec(s);
    for (const [table, row] of data) {
      const { text, values } = insert(table, row);
      db.prepare(text).run(...values);
    }
    db.close();
    return {
      dialect,
      url: `sqlite:${file}`,
      snapshot: async () => {
        const ro = new SqliteDatabase(file, { readonly: true });
        try {
          const names = new Set((ro.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
          return JSON.stringify(TABLES.filter((t) => names.has(t)).map((t) => [t, ro.prepare(`select * from "${t}" order by id`).all()]));
        } finally {
          ro.close();
        }
      },
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const test = await createTestDatabase('mysql');
  const conn = await mysql.createConnection({ uri: test.config.url });
  try {
    for (const s of statements) await conn.query(s);
    for (const [table, row] of data) {
      const { text, values } = insert(table, row);
      await conn.execute(text, values);
    }
  } finally {
    await conn.end();
  }
  return {
    dialect,
    url: test.config.url,
    snapshot: async () => {
      const c = await mysql.createConnection({ uri: test.config.url });
      try {
        const [tables] = await c.query('show tables');
        const names = new Set((tables as Array<Record<string, string>>).map((r) => Object.values(r)[0]));
        const out = [];
        for (const t of TABLES.filter((x) => names.has(x))) out.push([t, (await c.query(`select * from \`${t}\` order by id`))[0]]);
        return JSON.stringify(out);
      } finally {
        await c.end();
      }
    },
    drop: () => test.drop(),
  };
}
