import { isoNow, type Clock } from '../clock.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { invalid } from '../errors.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import type { PoolData, PoolRecord, PoolRepository } from './pool.repository.js';

export interface PoolReferences {
  policyExists(id: string): Promise<boolean>;
  connectorExists(id: string): Promise<boolean>;
}

export interface PoolView extends PoolRecord {
  hostCount: number;
}

export class PoolService {
  constructor(
    private readonly repo: PoolRepository,
    private readonly refs: PoolReferences,
    private readonly clock: Clock,
  ) {}

  async create(input: { name: string; policyId: string; connectorId?: string | null }): Promise<PoolView> {
    const data = await this.validate({ name: input.name, policyId: input.policyId, connectorId: input.connectorId ?? null });
    const rec = await uniqueName('pool', data.name, () => this.repo.insert(data, isoNow(this.clock)));
    return this.view(rec);
  }

  async update(id: string, patch: Partial<PoolData>): Promise<PoolView> {
    const current = found(await this.repo.findById(id), 'pool', id);
    const data = await this.validate({
      name: patch.name ?? current.name,
      policyId: patch.policyId ?? current.policyId,
      connectorId: patch.connectorId === undefined ? current.connectorId : patch.connectorId,
    });
    await uniqueName('pool', data.name, () => this.repo.update(id, data, isoNow(this.clock)));
    return this.get(id);
  }

  async get(id: string): Promise<PoolView> {
    return this.view(found(await this.repo.findById(id), 'pool', id));
  }

  async exists(id: string): Promise<boolean> {
    return (await this.repo.findById(id)) !== undefined;
  }

  async list(page: PageRequest, filter: { name?: string; policyId?: string } = {}): Promise<PageResult<PoolView>> {
    const res = await this.repo.list(page, filter);
    return { ...res, items: await Promise.all(res.items.map((r) => this.view(r))) };
  }

  async delete(id: string): Promise<void> {
    const current = found(await this.repo.findById(id), 'pool', id);
    const hosts = await this.repo.hosts(id);
    assertUnreferenced('pool', current.name, hosts.map((h) => ({ type: 'host', ...h })));
    await this.repo.delete(id);
  }

  private async validate(d: PoolData): Promise<PoolData> {
    if (!(await this.refs.policyExists(d.policyId))) {
      throw invalid('POOL.POLICY_NOT_FOUND', `policy ${d.policyId} does not exist; create it first (POST /api/v2/policies) or pick another`, { policyId: d.policyId });
    }
    if (d.connectorId !== null && !(await this.refs.connectorExists(d.connectorId))) {
      throw invalid('POOL.CONNECTOR_NOT_FOUND', `connector ${d.connectorId} does not exist; create it first (POST /api/v2/connectors) or set connectorId to null`, {
        connectorId: d.connectorId,
      });
    }
    return { ...d, name: d.name.trim() };
  }

  private async view(rec: PoolRecord): Promise<PoolView> {
    return { ...rec, hostCount: (await this.repo.hosts(rec.id)).length };
  }
}
