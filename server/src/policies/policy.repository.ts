import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { fromBool, toBool } from '../db/errors.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import type { PolicyTable } from '../db/schema.js';
import type { Retention } from './policy.rules.js';

export interface PolicyData {
  name: string;
  description: string;
  schedule: string;
  timezone: string;
  retention: Retention;
  storageId: string;
  hookId: string | null;
  enabled: boolean;
  quiesce: 'off' | 'preferred' | 'required';
  compression: string;
  encryption: 'none' | 'repokey';
  /** Incremental backups of running qcow2 v3 VMs by changed-block tracking (docs/incremental.md). */
  changedBlockTracking: boolean;
  /** A full read at least every N days (0: every backup is a full read). */
  fullEveryDays: number;
}

export interface PolicyRecord extends PolicyData {
  id: string;
  createdAt: string;
  updatedAt: string;
}

const toRecord = (r: PolicyTable): PolicyRecord => ({
  id: r.id,
  name: r.name,
  description: r.description,
  schedule: r.schedule,
  timezone: r.timezone,
  retention: { daily: r.retention_daily, weekly: r.retention_weekly, monthly: r.retention_monthly, yearly: r.retention_yearly },
  storageId: r.storage_id,
  hookId: r.hook_id,
  enabled: toBool(r.enabled),
  quiesce: r.quiesce as PolicyData['quiesce'],
  compression: r.compression,
  encryption: r.encryption as PolicyData['encryption'],
  changedBlockTracking: toBool(r.changed_block_tracking ?? 1),
  fullEveryDays: r.full_every_days ?? 30,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toColumns = (d: PolicyData) => ({
  name: d.name,
  description: d.description,
  schedule: d.schedule,
  timezone: d.timezone,
  retention_daily: d.retention.daily,
  retention_weekly: d.retention.weekly,
  retention_monthly: d.retention.monthly,
  retention_yearly: d.retention.yearly,
  storage_id: d.storageId,
  hook_id: d.hookId,
  enabled: fromBool(d.enabled),
  quiesce: d.quiesce,
  compression: d.compression,
  encryption: d.encryption,
  changed_block_tracking: fromBool(d.changedBlockTracking),
  full_every_days: d.fullEveryDays,
});

export class PolicyRepository {
  constructor(private readonly db: Db) {}

  async insert(data: PolicyData, now: string): Promise<PolicyRecord> {
    const row: PolicyTable = { id: randomUUID(), ...toColumns(data), created_at: now, updated_at: now };
    await this.db.insertInto('policies').values(row).execute();
    return toRecord(row);
  }

  async update(id: string, data: PolicyData, now: string): Promise<void> {
    await this.db.updateTable('policies').set({ ...toColumns(data), updated_at: now }).where('id', '=', id).execute();
  }

  async findById(id: string): Promise<PolicyRecord | undefined> {
    const row = await this.db.selectFrom('policies').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async list(page: PageRequest, filter: { name?: string; storageId?: string; enabled?: boolean } = {}): Promise<PageResult<PolicyRecord>> {
    let q = this.db.selectFrom('policies');
    if (filter.name) q = q.where('name', '=', filter.name);
    if (filter.storageId) q = q.where('storage_id', '=', filter.storageId);
    if (filter.enabled !== undefined) q = q.where('enabled', '=', fromBool(filter.enabled));
    return fetchPage(q, page, 'name', toRecord);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('policies').where('id', '=', id).execute();
  }

  async referencingPools(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db.selectFrom('pools').select(['id', 'name']).where('policy_id', '=', id).orderBy('name').execute();
  }
}
