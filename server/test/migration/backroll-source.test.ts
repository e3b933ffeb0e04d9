import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSource, parseSourceUrl, readBackrollSource } from '../../src/migration/backroll-import/source.js';
import { createBackrollDatabase, IDS, SECRETS, type BackrollFixture, type FixtureDialect, type FixtureSchema } from './backroll-fixture.js';

const storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-v1-storage-'));
const fixtures: BackrollFixture[] = [];
afterAll(async () => {
  for (const f of fixtures) await f.drop();
  fs.rmSync(storageDir, { recursive: true, force: true });
});

const CASES: Array<[FixtureDialect, FixtureSchema]> = [
  ['mysql', 'current'],
  ['sqlite', 'current'],
  ['mysql', 'legacy2022'],
  ['sqlite', 'legacy2022'],
];

describe("reading a BackROLL database (BackROLL's own schema and rows)", () => {
  it.each(CASES)('%s, %s schema: every resource, ids as CHAR(32), nothing writable', async (dialect, schema) => {
    const fx = await createBackrollDatabase(dialect, storageDir, schema);
    fixtures.push(fx);
    const src = await readBackrollSource(parseSourceUrl(fx.url));
    expect(src.dialect).toBe(dialect);
    expect(src.storages).toEqual([{ id: IDS.storage, name: 'nfs-backup', path: storageDir }]);
    expect(src.hooks).toEqual([{ id: IDS.hook, name: 'slack-ops', value: SECRETS.slackUrl, provider: schema === 'legacy2022' ? 'slack' : null }]);
    expect(src.connectors).toEqual([{ id: IDS.connector, name: 'cloudstack-zone1', url: 'https://cloud.example.test/client/api', login: SECRETS.apiKey, password: SECRETS.secretKey }]);
    expect(src.policies.map((p) => [p.name, p.schedule, p.retention, p.storageId, p.hookId, p.enabled])).toEqual([
      ['nightly', '30 1 * * 1,2,3,4,5,6,7', { day: 7, week: 4, month: 6, year: 1 }, IDS.storage, IDS.hook, true],
      ['friday-13th', '0 3 13 * 5', { day: 0, week: 0, month: 3, year: 0 }, IDS.storage, null, false],
    ]);
    expect(src.pools).toEqual([
      { id: IDS.rackA, name: 'rack-a', policyId: IDS.nightly, connectorId: schema === 'current' ? IDS.connector : null },
      { id: IDS.rackB, name: 'rack-b', policyId: IDS.friday13, connectorId: null },
    ]);
    expect(src.hosts.map((h) => [h.hostname, h.ipaddress, h.username, h.ssh, h.poolId, h.tags])).toEqual([
      ['kvm1', '192.0.2.10', 'root', true, IDS.rackA, 'production'],
      ['kvm2', 'kvm2.example.test', null, false, IDS.rackB, 'lab, rack:b, not/ok'],
    ]);
    expect(src.userCount).toBe(schema === 'current' ? 1 : 0);
    if (schema === 'legacy2022') {
      expect(src.schemaNotes.join('\n')).toContain('pools.connector_id is absent');
      expect(src.schemaNotes.join('\n')).toContain('hosts.is_cloudstack_managed is present');
    } else {
      expect(src.schemaNotes).toEqual([]);
    }
    // The connection the import uses cannot write, even by mistake.
    const before = await fx.snapshot();
    const db = openSource(parseSourceUrl(fx.url));
    try {
      await expect(db.insertInto('storage').values({ id: 'x'.repeat(32), name: 'n', path: '/p' }).execute()).rejects.toThrow(/read.?only/i);
    } finally {
      await db.destroy();
    }
    expect(await fx.snapshot()).toBe(before);
  });

  it('refuses a database that is not BackROLL, and the first schema (v0.1.0), saying why', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-v1-other-'));
    try {
      const { default: Sqlite } = await import('better-sqlite3');
      const other = new Sqlite(path.join(dir, 'other.db'));
      other.exec('create table things (id integer)');
      other.close();
      await expect(readBackrollSource(parseSourceUrl(`sqlite:${dir}/other.db`))).rejects.toMatchObject({ code: 'IMPORT.SOURCE_NOT_BACKROLL', message: expect.stringContaining('no table "storage"') });
      const v010 = new Sqlite(path.join(dir, 'v010.db'));
      v010.exec('create table policies (id char(32), name varchar, description varchar, schedule varchar, retention varchar, enabled integer)');
      v010.close();
      await expect(readBackrollSource(parseSourceUrl(`sqlite:${dir}/v010.db`))).rejects.toMatchObject({ code: 'IMPORT.SOURCE_SCHEMA_UNSUPPORTED' });
      await expect(readBackrollSource(parseSourceUrl(`sqlite:${dir}/missing.db`))).rejects.toMatchObject({ code: 'IMPORT.SOURCE_UNREACHABLE' });
      expect(fs.existsSync(path.join(dir, 'missing.db'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes BackROLL's own URL forms and keeps the password out of what it shows", () => {
    expect(parseSourceUrl('sqlite:////var/lib/backroll/database.sqlite')).toMatchObject({ dialect: 'sqlite', file: '/var/lib/backroll/database.sqlite' });
    expect(parseSourceUrl('sqlite:///data/db.sqlite')).toMatchObject({ dialect: 'sqlite', file: 'data/db.sqlite' });
    expect(parseSourceUrl('sqlite:/srv/db.sqlite')).toMatchObject({ dialect: 'sqlite', file: '/srv/db.sqlite' });
    const my = parseSourceUrl('mysql+mysqlconnector://backroll:p%40ss@db.example:3306/backroll');
    expect(my).toMatchObject({ dialect: 'mysql', location: 'mysql://backroll:****@db.example:3306/backroll' });
    expect(parseSourceUrl('mariadb://backroll@db/backroll', 'from env')).toMatchObject({ url: 'mysql://backroll:from%20env@db/backroll' });
    expect(() => parseSourceUrl('postgres://x@y/z')).toThrow(/unsupported database URL/);
    expect(() => parseSourceUrl('mysql://root:secret@db')).toThrow(/names no database/);
    expect(() => parseSourceUrl('mysql://root:secret@db')).not.toThrow(/secret/);
  });
});
