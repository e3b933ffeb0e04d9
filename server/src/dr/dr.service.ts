/**
 * Disaster recovery of Backroll itself: what an export holds and how an import puts it
 * back on a fresh install.
 *
 * An export holds every resource table of the database (storages, hooks, policies,
 * connectors, pools, hosts, the VM inventory and the restore-point index; not the task
 * history, locks or queue state) and the data dir's keys: `secret.key` (it decrypts the
 * sealed secrets in those tables), Backroll's SSH keys, the borg repository passphrases
 * and the bundled provider's accounts, machine clients and signing keys.
 *
 * An import decrypts and checks everything first; then it refuses a database that already
 * holds resources, writes the files to a staging folder inside the data dir, inserts every
 * row in one transaction, and only then moves the files into place. A wrong passphrase, a
 * modified file or a newer schema writes nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { conflict, invalid } from '../errors.js';
import { openDrArchive, sealDrArchive } from './dr-archive.js';

/** In foreign-key order: a table only references tables before it. */
export const DR_TABLES = ['storages', 'hooks', 'policies', 'connectors', 'pools', 'hosts', 'virtual_machines', 'restore_points'] as const satisfies readonly (keyof Database)[];
type DrTable = (typeof DR_TABLES)[number];

/** Data-dir entries an export carries (files under them, recursively; never symlinks). */
export const DR_DATA_DIR_ENTRIES = ['secret.key', 'ssh', 'borg-passphrases', 'idp'] as const;

export interface DrPayload {
  format: 'backroll-dr';
  version: 1;
  createdAt: string;
  backrollVersion: string;
  migrations: string[];
  tables: Record<DrTable, Record<string, unknown>[]>;
  /** Data-dir relative path → base64 content and mode. */
  files: Record<string, { mode: number; data: string }>;
}

export interface DrSummary {
  createdAt: string;
  backrollVersion: string;
  rows: Record<string, number>;
  files: string[];
}

async function appliedMigrations(db: Db): Promise<string[]> {
  const res = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return res.rows.map((r) => r.name);
}

function readDataDirFiles(dataDir: string): DrPayload['files'] {
  const files: DrPayload['files'] = {};
  const walk = (rel: string) => {
    const abs = path.join(dataDir, rel);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(abs).sort()) walk(path.join(rel, name));
    } else if (st.isFile()) {
      files[rel.split(path.sep).join('/')] = { mode: st.mode & 0o777, data: fs.readFileSync(abs).toString('base64') };
    }
  };
  for (const entry of DR_DATA_DIR_ENTRIES) walk(entry);
  return files;
}

export class DrService {
  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly backrollVersion: string,
  ) {}

  async collect(now: Date = new Date()): Promise<DrPayload> {
    const tables = {} as DrPayload['tables'];
    for (const t of DR_TABLES) tables[t] = (await this.db.selectFrom(t).selectAll().execute()) as Record<string, unknown>[];
    return {
      format: 'backroll-dr',
      version: 1,
      createdAt: now.toISOString(),
      backrollVersion: this.backrollVersion,
      migrations: await appliedMigrations(this.db),
      tables,
      files: readDataDirFiles(this.dataDir),
    };
  }

  /** The encrypted export file. */
  async export(passphrase: string, now: Date = new Date()): Promise<{ file: Buffer; summary: DrSummary }> {
    const payload = await this.collect(now);
    return { file: await sealDrArchive(payload, passphrase, now), summary: summarize(payload) };
  }

  /** Restores a decrypted export (readDrFile) into this (empty) installation; see the module comment. */
  async import(payload: DrPayload): Promise<DrSummary> {
    const here = await appliedMigrations(this.db);
    const unknown = payload.migrations.filter((m) => !here.includes(m));
    if (unknown.length > 0) {
      throw conflict('DR.SCHEMA_NEWER', `the export comes from a newer Backroll (database migrations ${unknown.join(', ')}); upgrade this installation first, then import`, { migrations: unknown });
    }
    const occupied: string[] = [];
    for (const t of DR_TABLES) {
      const n = await this.db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      if (Number(n.n) > 0) occupied.push(t);
    }
    if (occupied.length > 0) {
      throw conflict('DR.TARGET_NOT_EMPTY', `this installation already has ${occupied.join(', ')}: import into a fresh install (new data dir and empty database)`, { tables: occupied });
    }
    const staging = fs.mkdtempSync(path.join(this.dataDir, '.dr-import-'));
    try {
      for (const [rel, f] of Object.entries(payload.files)) {
        const dest = path.join(staging, rel);
        fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
        fs.writeFileSync(dest, Buffer.from(f.data, 'base64'), { mode: f.mode & 0o700, flag: 'wx' });
      }
      await this.db.transaction().execute(async (trx) => {
        for (const t of DR_TABLES) {
          for (const row of payload.tables[t]) await trx.insertInto(t).values(row as never).execute();
        }
      });
      for (const rel of Object.keys(payload.files)) {
        const dest = path.join(this.dataDir, rel);
        fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 });
        fs.renameSync(path.join(staging, rel), dest);
      }
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
    return summarize(payload);
  }
}

/** Decrypts, authenticates and checks a DR file; nothing is written. */
export async function readDrFile(file: Buffer, passphrase: string): Promise<DrPayload> {
  return validatePayload(await openDrArchive(file, passphrase));
}

export function summarize(p: DrPayload): DrSummary {
  return {
    createdAt: p.createdAt,
    backrollVersion: p.backrollVersion,
    rows: Object.fromEntries(DR_TABLES.map((t) => [t, p.tables[t].length])),
    files: Object.keys(p.files).sort(),
  };
}

/** A safe relative path under one of the exported data-dir entries. */
function safeRelative(rel: string): boolean {
  const parts = rel.split('/');
  return (DR_DATA_DIR_ENTRIES as readonly string[]).includes(parts[0]!) && parts.every((p) => p !== '' && p !== '.' && p !== '..' && !p.includes('\\') && !p.includes('\0'));
}

/** The payload is authenticated, but it is still checked before anything is written from it. */
function validatePayload(v: unknown): DrPayload {
  const bad = (why: string) => invalid('DR.FILE_INVALID', `the disaster-recovery file is not usable: ${why}`);
  const p = v as Partial<DrPayload> | null;
  if (!p || p.format !== 'backroll-dr' || p.version !== 1) throw bad('unknown format or version');
  if (!Array.isArray(p.migrations) || !p.tables || !p.files) throw bad('parts are missing');
  for (const t of DR_TABLES) if (!Array.isArray(p.tables[t])) throw bad(`table ${t} is missing`);
  for (const [rel, f] of Object.entries(p.files)) {
    if (!safeRelative(rel) || typeof f?.data !== 'string' || typeof f.mode !== 'number') throw bad(`file entry ${JSON.stringify(rel)} is not allowed`);
  }
  return p as DrPayload;
}
