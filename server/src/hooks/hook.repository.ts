import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { parseJson } from '../db/errors.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import type { HookTable } from '../db/schema.js';

export const HOOK_KINDS = ['slack', 'webhook'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];
export const HOOK_EVENTS = ['backup.succeeded', 'backup.failed', 'restore.succeeded', 'restore.failed', 'verify.failed'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

/** Sealed (encrypted) columns stay sealed here; the service opens them only to send. */
export interface HookRow {
  id: string;
  name: string;
  kind: HookKind;
  urlSealed: string;
  secretSealed: string | null;
  events: HookEvent[];
  createdAt: string;
  updatedAt: string;
}

export type HookRowData = Omit<HookRow, 'id' | 'createdAt' | 'updatedAt'>;

const toRow = (r: HookTable): HookRow => ({
  id: r.id,
  name: r.name,
  kind: r.kind as HookKind,
  urlSealed: r.url_sealed,
  secretSealed: r.secret_sealed,
  events: parseJson<HookEvent[]>(r.events, []),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toColumns = (d: HookRowData) => ({ name: d.name, kind: d.kind, url_sealed: d.urlSealed, secret_sealed: d.secretSealed, events: JSON.stringify(d.events) });

export class HookRepository {
  constructor(private readonly db: Db) {}

  async insert(data: HookRowData, now: string): Promise<HookRow> {
    const row: HookTable = { id: randomUUID(), ...toColumns(data), created_at: now, updated_at: now };
    await this.db.insertInto('hooks').values(row).execute();
    return toRow(row);
  }

  async update(id: string, data: HookRowData, now: string): Promise<void> {
    await this.db.updateTable('hooks').set({ ...toColumns(data), updated_at: now }).where('id', '=', id).execute();
  }

  async findById(id: string): Promise<HookRow | undefined> {
    const row = await this.db.selectFrom('hooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRow(row);
  }

  async list(page: PageRequest): Promise<PageResult<HookRow>> {
    return fetchPage(this.db.selectFrom('hooks'), page, 'name', toRow);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('hooks').where('id', '=', id).execute();
  }

  async referencingPolicies(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db.selectFrom('policies').select(['id', 'name']).where('hook_id', '=', id).orderBy('name').execute();
  }
}
