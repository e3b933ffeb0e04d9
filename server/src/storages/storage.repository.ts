import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import type { StorageTable } from '../db/schema.js';

export interface StorageRecord {
  id: string;
  name: string;
  path: string;
  createdAt: string;
  updatedAt: string;
}

const toRecord = (r: StorageTable): StorageRecord => ({ id: r.id, name: r.name, path: r.path, createdAt: r.created_at, updatedAt: r.updated_at });

export class StorageRepository {
  constructor(private readonly db: Db) {}

  async insert(input: { name: string; path: string }, now: string): Promise<StorageRecord> {
    const row: StorageTable = { id: randomUUID(), name: input.name, path: input.path, created_at: now, updated_at: now };
    await this.db.insertInto('storages').values(row).execute();
    return toRecord(row);
  }

  async update(id: string, input: { name: string; path: string }, now: string): Promise<void> {
    await this.db.updateTable('storages').set({ name: input.name, path: input.path, updated_at: now }).where('id', '=', id).execute();
  }

  async findById(id: string): Promise<StorageRecord | undefined> {
    const row = await this.db.selectFrom('storages').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async list(page: PageRequest, filter: { name?: string } = {}): Promise<PageResult<StorageRecord>> {
    let q = this.db.selectFrom('storages');
    if (filter.name) q = q.where('name', '=', filter.name);
    return fetchPage(q, page, 'name', toRecord);
  }

  async delete(id: string): Promise<boolean> {
    const res = await this.db.deleteFrom('storages').where('id', '=', id).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /** Names of the policies that use this storage (a storage in use cannot be deleted). */
  async referencingPolicies(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db.selectFrom('policies').select(['id', 'name']).where('storage_id', '=', id).orderBy('name').execute();
  }
}
