import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, sql, MysqlDialect, PostgresAdapter, PostgresDialect, SqliteDialect } from 'kysely';
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import mysql from 'mysql2';
import pg from 'pg';
import type { DatabaseConfig } from '../config/config.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_jobs.js';
import * as m0003 from './migrations/0003_backups.js';
import * as m0004 from './migrations/0004_restore_point_identity.js';
import * as m0006 from './migrations/0006_connector_tls.js';
import * as m0007 from './migrations/0007_console.js';
import * as m0008 from './migrations/0008_incremental.js';
import * as m0009 from './migrations/0009_cloudstack_inventory.js';
import * as m0010 from './migrations/0010_host_disk_access.js';
import * as m0011 from './migrations/0011_repository_compactions.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** Migrations are compiled into the binary: no directory scanning at run time. */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_jobs': m0002,
  '0003_backups': m0003,
  '0004_restore_point_identity': m0004,
  '0006_connector_tls': m0006,
  '0007_console': m0007,
  '0008_incremental': m0008,
  '0009_cloudstack_inventory': m0009,
  '0010_host_disk_access': m0010,
  '0011_repository_compactions': m0011,
};

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export function openDatabase(config: DatabaseConfig): Db {
  switch (config.dialect) {
    case 'sqlite': {
      if (config.url !== ':memory:') fs.mkdirSync(path.dirname(config.url), { recursive: true, mode: 0o700 });
      const sqlite = new SqliteDatabase(config.url);
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('foreign_keys = ON');
      sqlite.pragma('busy_timeout = 5000');
      return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    }
    case 'postgres': {
      const pool = new pg.Pool({
        connectionString: config.url,
        max: 10,
        // bigint (int8) as number: byte counts stay far below 2^53.
        types: {
          getTypeParser: ((oid: number, format?: string) =>
            oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
        },
      });
      return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    }
    case 'mysql': {
      const pool = mysql.createPool({ uri: config.url, connectionLimit: 10, supportBigNumbers: true, bigNumberStrings: false, timezone: 'Z' });
      return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
    }
  }
}

export interface MigrationReport {
  applied: string[];
}

export async function migrateToLatest(db: Db, dialect?: DatabaseConfig['dialect']): Promise<MigrationReport> {
  // On PostgreSQL the migration tables live in the current schema (search_path), so
  // several Backroll databases can share one PostgreSQL database in separate schemas.
  // Without it the migrator would see another schema's kysely_migration_lock and then
  // fail to find its own. The dialect comes from the connection when not given.
  const postgres = dialect ? dialect === 'postgres' : db.getExecutor().adapter instanceof PostgresAdapter;
  const migrationTableSchema = postgres ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s : undefined;
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(), migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const reason = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${reason}`, { cause: error });
  }
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
