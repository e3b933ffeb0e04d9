import { isoNow, type Clock } from '../clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import { checkHttpUrl } from '../shared/urls.js';
import type { ConnectorRepository, ConnectorRow } from './connector.repository.js';

export interface ConnectorInput {
  name: string;
  kind?: 'cloudstack';
  endpointUrl: string;
  apiKey: string;
  secretKey: string;
}

export interface ConnectorView {
  id: string;
  name: string;
  kind: 'cloudstack';
  endpointUrl: string;
  apiKeySet: boolean;
  secretKeySet: boolean;
  createdAt: string;
  updatedAt: string;
}

/** Apache CloudStack API credentials, opened only for the CloudStack client. */
export interface ConnectorCredentials {
  endpointUrl: string;
  apiKey: string;
  secretKey: string;
}

export class ConnectorService {
  constructor(
    private readonly repo: ConnectorRepository,
    private readonly box: SecretBox,
    private readonly clock: Clock,
  ) {}

  async create(input: ConnectorInput): Promise<ConnectorView> {
    const clean = this.validate(input);
    const row = await uniqueName('connector', clean.name, () => this.repo.insert(this.seal(clean), isoNow(this.clock)));
    return this.view(row);
  }

  async update(id: string, patch: Partial<ConnectorInput>): Promise<ConnectorView> {
    const row = found(await this.repo.findById(id), 'connector', id);
    const merged: ConnectorInput = {
      name: patch.name ?? row.name,
      kind: 'cloudstack',
      endpointUrl: patch.endpointUrl ?? row.endpointUrl,
      apiKey: patch.apiKey ?? this.box.decrypt(row.apiKeySealed),
      secretKey: patch.secretKey ?? this.box.decrypt(row.secretKeySealed),
    };
    const clean = this.validate(merged);
    await uniqueName('connector', clean.name, () => this.repo.update(id, this.seal(clean), isoNow(this.clock)));
    return this.get(id);
  }

  async get(id: string): Promise<ConnectorView> {
    return this.view(found(await this.repo.findById(id), 'connector', id));
  }

  async exists(id: string): Promise<boolean> {
    return (await this.repo.findById(id)) !== undefined;
  }

  async credentials(id: string): Promise<ConnectorCredentials> {
    const row = found(await this.repo.findById(id), 'connector', id);
    return { endpointUrl: row.endpointUrl, apiKey: this.box.decrypt(row.apiKeySealed), secretKey: this.box.decrypt(row.secretKeySealed) };
  }

  async list(page: PageRequest): Promise<PageResult<ConnectorView>> {
    const res = await this.repo.list(page);
    return { ...res, items: res.items.map((r) => this.view(r)) };
  }

  async delete(id: string): Promise<void> {
    const row = found(await this.repo.findById(id), 'connector', id);
    const pools = await this.repo.referencingPools(id);
    assertUnreferenced('connector', row.name, pools.map((p) => ({ type: 'pool', ...p })));
    await this.repo.delete(id);
  }

  private validate(i: ConnectorInput): Required<ConnectorInput> {
    return {
      name: i.name.trim(),
      kind: 'cloudstack',
      endpointUrl: checkHttpUrl(i.endpointUrl, 'CONNECTOR.ENDPOINT_INVALID', 'CloudStack endpoint URL'),
      apiKey: i.apiKey,
      secretKey: i.secretKey,
    };
  }

  private seal(i: Required<ConnectorInput>) {
    return { name: i.name, kind: i.kind, endpointUrl: i.endpointUrl, apiKeySealed: this.box.encrypt(i.apiKey), secretKeySealed: this.box.encrypt(i.secretKey) };
  }

  private view(r: ConnectorRow): ConnectorView {
    return { id: r.id, name: r.name, kind: r.kind, endpointUrl: r.endpointUrl, apiKeySet: true, secretKeySet: true, createdAt: r.createdAt, updatedAt: r.updatedAt };
  }
}
