import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { DatabaseConfig, DatabaseDialect } from '../../src/config/config.js';

/**
 * Real databases for integration tests: a temporary SQLite file, a fresh schema
 * in the machine's PostgreSQL, a fresh database in its MariaDB. Each test file
 * gets its own, dropped afterwards.
 */
export const DIALECTS: DatabaseDialect[] = ['sqlite', 'postgres', 'mysql'];

const PG_ADMIN_URL = process.env.BACKROLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_ADMIN_URL = process.env.BACKROLL_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export interface TestDatabase {
  dialect: DatabaseDialect;
  config: DatabaseConfig;
  drop(): Promise<void>;
}

/** Why a dialect cannot be tested here, or null when its server answers. */
export async function unavailableReason(dialect: DatabaseDialect): Promise<string | null> {
  try {
    if (dialect === 'postgres') {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
      await c.connect();
      await c.end();
    } else if (dialect === 'mysql') {
      const c = await mysql.createConnection({ uri: MYSQL_ADMIN_URL, connectTimeout: 3000 });
      await c.end();
    }
    return null;
  } catch (err) {
    const url = dialect === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL;
    return `${dialect} at ${url} is not reachable (${(err as Error).message}); start it or set BACKROLL_TEST_${dialect === 'postgres' ? 'PG' : 'MYSQL'}_URL`;
  }
}

export async function createTestDatabase(dialect: DatabaseDialect): Promise<TestDatabase> {
  const suffix = `t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  switch (dialect) {
    case 'sqlite': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-db-'));
      return {
        dialect,
        config: { dialect, url: path.join(dir, 'backroll.db') },
        drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
      };
    }
    case 'postgres': {
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`create schema ${suffix}`);
      await admin.end();
      const url = new URL(PG_ADMIN_URL);
      url.searchParams.set('options', `-c search_path=${suffix}`);
      return {
        dialect,
        config: { dialect, url: url.toString() },
        drop: async () => {
          const c = new pg.Client({ connectionString: PG_ADMIN_URL });
          await c.connect();
          await c.query(`drop schema if exists ${suffix} cascade`);
          await c.end();
        },
      };
    }
    case 'mysql': {
      const admin = await mysql.createConnection({ uri: MYSQL_ADMIN_URL });
      await admin.query(`create database ${suffix} character set utf8mb4 collate utf8mb4_bin`);
      await admin.end();
      const url = new URL(MYSQL_ADMIN_URL);
      url.pathname = `/${suffix}`;
      return {
        dialect,
        config: { dialect, url: url.toString() },
        drop: async () => {
          const c = await mysql.createConnection({ uri: MYSQL_ADMIN_URL });
          await c.query(`drop database if exists ${suffix}`);
          await c.end();
        },
      };
    }
  }
}
