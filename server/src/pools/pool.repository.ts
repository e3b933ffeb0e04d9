import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import type { PoolTable } from '../db/schema.js';

export interface PoolData {
  name: string;
  policyId: string;
  connectorId: string | null;
}
export interface PoolRecord extends PoolData {
  id: string;
  createdAt: string;
  updatedAt: string;
}

const toRecord = (r: PoolTable): PoolRecord => ({ id: r.id, name: r.name, policyId: r.policy_id, connectorId: r.connector_id, createdAt: r.created_at, updatedAt: r.updated_at });
const toColumns = (d: PoolData) => ({ name: d.name, policy_id: d.policyId, connector_id: d.connectorId });

export class PoolRepository {
  constructor(private readonly db: Db) {}

  async insert(data: PoolData, now: string): Promise<PoolRecord> {
    const row: PoolTable = { id: randomUUID(), ...toColumns(data), created_at: now, updated_at: now };
    await this.db.insertInto('pools').values(row).execute();
    return toRecord(row);
  }

  async update(id: string, data: PoolData, now: string): Promise<void> {
    await this.db.updateTable('pools').set({ ...toColumns(data), updated_at: now }).where('id', '=', id).execute();
  }

  async findById(id: string): Promise<PoolRecord | undefined> {
    const row = await this.db.selectFrom('pools').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async list(page: PageRequest, filter: { name?: string; policyId?: string } = {}): Promise<PageResult<PoolRecord>> {
    let q = this.db.selectFrom('pools');
    if (filter.name) q = q.where('name', '=', filter.name);
    if (filter.policyId) q = q.where('policy_id', '=', filter.policyId);
    return fetchPage(q, page, 'name', toRecord);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('pools').where('id', '=', id).execute();
  }

  async hosts(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db.selectFrom('hosts').select(['id', 'name']).where('pool_id', '=', id).orderBy('name').execute();
  }
}
