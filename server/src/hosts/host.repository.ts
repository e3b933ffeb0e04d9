import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { parseJson } from '../db/errors.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import type { HostTable } from '../db/schema.js';

export type ConnectionState = 'unknown' | 'connected' | 'failed';

export interface HostData {
  name: string;
  address: string;
  sshPort: number;
  username: string;
  poolId: string;
  tags: string[];
  libvirtUri: string;
  /** How backups read this host's disks: the mounted path, over SSH, or whichever works (auto). */
  diskAccess?: DiskAccess;
}

export type DiskAccess = 'auto' | 'mount' | 'ssh';
export const DISK_ACCESS: readonly DiskAccess[] = ['auto', 'mount', 'ssh'];

export interface HostRecord extends HostData {
  id: string;
  diskAccess: DiskAccess;
  hostKeyFingerprint: string | null;
  connection: { state: ConnectionState; errorCode: string | null; message: string | null; lastSeenAt: string | null };
  createdAt: string;
  updatedAt: string;
}

const toRecord = (r: HostTable): HostRecord => ({
  id: r.id,
  name: r.name,
  address: r.address,
  sshPort: r.ssh_port,
  username: r.username,
  poolId: r.pool_id,
  tags: parseJson<string[]>(r.tags, []),
  libvirtUri: r.libvirt_uri,
  diskAccess: (DISK_ACCESS as readonly string[]).includes(r.disk_access ?? '') ? (r.disk_access as DiskAccess) : 'auto',
  hostKeyFingerprint: r.host_key_fingerprint,
  connection: { state: r.connection_state as ConnectionState, errorCode: r.connection_error_code, message: r.connection_message, lastSeenAt: r.last_seen_at },
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** A hosts row as the API shows it (the console's event stream maps rows it read itself). */
export const toHostRecord = (r: HostTable): HostRecord => toRecord(r);

const toColumns = (d: HostData) => ({
  name: d.name,
  address: d.address,
  ssh_port: d.sshPort,
  username: d.username,
  pool_id: d.poolId,
  tags: JSON.stringify(d.tags),
  libvirt_uri: d.libvirtUri,
  disk_access: d.diskAccess ?? 'auto',
});

export class HostRepository {
  constructor(private readonly db: Db) {}

  async insert(data: HostData, now: string): Promise<HostRecord> {
    const row: HostTable = {
      id: randomUUID(),
      ...toColumns(data),
      host_key: null,
      host_key_fingerprint: null,
      connection_state: 'unknown',
      connection_error_code: null,
      connection_message: null,
      last_seen_at: null,
      created_at: now,
      updated_at: now,
    };
    await this.db.insertInto('hosts').values(row).execute();
    return toRecord(row);
  }

  /** A changed address or port is another machine: its pinned key no longer applies. */
  async update(id: string, data: HostData, now: string, forgetHostKey: boolean): Promise<void> {
    await this.db
      .updateTable('hosts')
      .set({
        ...toColumns(data),
        updated_at: now,
        ...(forgetHostKey ? { host_key: null, host_key_fingerprint: null, connection_state: 'unknown', connection_error_code: null, connection_message: null } : {}),
      })
      .where('id', '=', id)
      .execute();
  }

  async findById(id: string): Promise<HostRecord | undefined> {
    const row = await this.db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  async list(page: PageRequest, filter: { name?: string; poolId?: string; tag?: string } = {}): Promise<PageResult<HostRecord>> {
    let q = this.db.selectFrom('hosts');
    if (filter.name) q = q.where('name', '=', filter.name);
    if (filter.poolId) q = q.where('pool_id', '=', filter.poolId);
    // Tags are a JSON array of validated tokens: an exact quoted match is unambiguous.
    if (filter.tag) {
      const pattern = `%${JSON.stringify(filter.tag).replace(/[%_!]/g, '!$&')}%`;
      q = q.where(sql<boolean>`${sql.ref('tags')} like ${pattern} escape '!'`);
    }
    return fetchPage(q, page, 'name', toRecord);
  }

  /** Every host id, by name (periodic inventory). */
  async allIds(): Promise<string[]> {
    return (await this.db.selectFrom('hosts').select('id').orderBy('name').execute()).map((r) => r.id);
  }

  /**
   * Pins the host key. `ifUnpinned`: only when no key is pinned yet (trust on first use),
   * so a concurrent pin is never overwritten. Returns whether the row changed.
   */
  async pinHostKey(id: string, key: { publicKey: string | null; fingerprint: string }, ifUnpinned: boolean): Promise<boolean> {
    // updated_at moves with every change the console shows (its event stream reads changes by it).
    let q = this.db.updateTable('hosts').set({ host_key: key.publicKey, host_key_fingerprint: key.fingerprint, updated_at: new Date().toISOString() }).where('id', '=', id);
    if (ifUnpinned) q = q.where('host_key_fingerprint', 'is', null);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** The outcome of the last contact with the host; `lastSeenAt` only when it answered. */
  async recordConnection(
    id: string,
    c: { state: ConnectionState; errorCode: string | null; message: string | null; lastSeenAt?: string },
  ): Promise<void> {
    await this.db
      .updateTable('hosts')
      .set({
        connection_state: c.state,
        connection_error_code: c.errorCode,
        connection_message: c.message,
        ...(c.lastSeenAt ? { last_seen_at: c.lastSeenAt } : {}),
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', id)
      .execute();
  }

  /** Deletes the host and its inventory cache in one transaction. */
  async delete(id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('virtual_machines').where('host_id', '=', id).execute();
      await trx.deleteFrom('hosts').where('id', '=', id).execute();
    });
  }

  /** VMs of this host that have restore points: their index must not be orphaned. */
  async vmsWithRestorePoints(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db
      .selectFrom('virtual_machines as vm')
      .innerJoin('restore_points as rp', 'rp.vm_id', 'vm.id')
      .select(['vm.id', 'vm.name'])
      .where('vm.host_id', '=', id)
      .groupBy(['vm.id', 'vm.name'])
      .orderBy('vm.name')
      .execute();
  }
}
