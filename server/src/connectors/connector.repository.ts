import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { fetchPage, type PageRequest, type PageResult } from '../db/page.js';
import { fromBool, toBool } from '../db/errors.js';
import type { ConnectorTable } from '../db/schema.js';

export interface ConnectorRow {
  id: string;
  name: string;
  kind: 'cloudstack';
  endpointUrl: string;
  apiKeySealed: string;
  secretKeySealed: string;
  /** Verify the endpoint's certificate; caCertificate: extra trusted CAs (PEM). */
  verifyTls: boolean;
  caCertificate: string | null;
  createdAt: string;
  updatedAt: string;
}
export type ConnectorRowData = Omit<ConnectorRow, 'id' | 'createdAt' | 'updatedAt'>;

const toRow = (r: ConnectorTable): ConnectorRow => ({
  id: r.id,
  name: r.name,
  kind: r.kind as 'cloudstack',
  endpointUrl: r.endpoint_url,
  apiKeySealed: r.api_key_sealed,
  secretKeySealed: r.secret_key_sealed,
  verifyTls: toBool(r.verify_tls),
  caCertificate: r.ca_certificate ?? null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toColumns = (d: ConnectorRowData) => ({
  name: d.name,
  kind: d.kind,
  endpoint_url: d.endpointUrl,
  api_key_sealed: d.apiKeySealed,
  secret_key_sealed: d.secretKeySealed,
  verify_tls: fromBool(d.verifyTls),
  ca_certificate: d.caCertificate,
});

export class ConnectorRepository {
  constructor(private readonly db: Db) {}

  async insert(data: ConnectorRowData, now: string): Promise<ConnectorRow> {
    const row: ConnectorTable = { id: randomUUID(), ...toColumns(data), created_at: now, updated_at: now };
    await this.db.insertInto('connectors').values(row).execute();
    return toRow(row);
  }

  async update(id: string, data: ConnectorRowData, now: string): Promise<void> {
    await this.db.updateTable('connectors').set({ ...toColumns(data), updated_at: now }).where('id', '=', id).execute();
  }

  async findById(id: string): Promise<ConnectorRow | undefined> {
    const row = await this.db.selectFrom('connectors').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRow(row);
  }

  async list(page: PageRequest): Promise<PageResult<ConnectorRow>> {
    return fetchPage(this.db.selectFrom('connectors'), page, 'name', toRow);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('connectors').where('id', '=', id).execute();
  }

  async referencingPools(id: string): Promise<Array<{ id: string; name: string }>> {
    return this.db.selectFrom('pools').select(['id', 'name']).where('connector_id', '=', id).orderBy('name').execute();
  }
}
