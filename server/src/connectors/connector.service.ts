import { X509Certificate } from 'node:crypto';
import { CloudStackClient, type CloudStackClientOptions } from '../adapters/cloudstack/cloudstack-client.js';
import { isoNow, type Clock } from '../clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { invalid } from '../errors.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import { checkHttpUrl } from '../shared/urls.js';
import type { ConnectorRepository, ConnectorRow } from './connector.repository.js';

export interface ConnectorInput {
  name: string;
  kind?: 'cloudstack';
  endpointUrl: string;
  apiKey: string;
  secretKey: string;
  /** Verify the endpoint's TLS certificate (default true). */
  verifyTls?: boolean;
  /** Extra trusted CA certificates (PEM) for the endpoint; null: Node's bundled CAs only. */
  caCertificate?: string | null;
}

export interface ConnectorView {
  id: string;
  name: string;
  kind: 'cloudstack';
  endpointUrl: string;
  apiKeySet: boolean;
  secretKeySet: boolean;
  verifyTls: boolean;
  caCertificate: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Apache CloudStack API credentials, opened only for the CloudStack client. */
export interface ConnectorCredentials {
  endpointUrl: string;
  apiKey: string;
  secretKey: string;
  verifyTls: boolean;
  caCertificate: string | null;
}

/** What `POST /connectors/{id}/test` reports when CloudStack answered. */
export interface ConnectorTestResult {
  reachable: true;
  endpointUrl: string;
  cloudstackVersion: string;
  zones: number;
  /** One signed request's round trip (listCapabilities), in milliseconds. */
  roundTripMs: number;
  testedAt: string;
}

export type CloudStackClientFactory = (options: CloudStackClientOptions) => CloudStackClient;

type CleanInput = Required<ConnectorInput>;

export class ConnectorService {
  constructor(
    private readonly repo: ConnectorRepository,
    private readonly box: SecretBox,
    private readonly clock: Clock,
    private readonly newClient: CloudStackClientFactory = (o) => new CloudStackClient(o),
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
      verifyTls: patch.verifyTls ?? row.verifyTls,
      caCertificate: patch.caCertificate === undefined ? row.caCertificate : patch.caCertificate,
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
    return {
      endpointUrl: row.endpointUrl,
      apiKey: this.box.decrypt(row.apiKeySealed),
      secretKey: this.box.decrypt(row.secretKeySealed),
      verifyTls: row.verifyTls,
      caCertificate: row.caCertificate,
    };
  }

  /** A CloudStack API client with the connector's keys and TLS settings (defaults for the rest). */
  async client(id: string, options: Partial<CloudStackClientOptions> = {}): Promise<CloudStackClient> {
    const row = found(await this.repo.findById(id), 'connector', id);
    return this.newClient({
      ...options,
      endpointUrl: row.endpointUrl,
      apiKey: this.box.decrypt(row.apiKeySealed),
      secretKey: this.box.decrypt(row.secretKeySealed),
      tls: { verify: row.verifyTls, ca: row.caCertificate },
      name: row.name,
    });
  }

  /**
   * Asks CloudStack for its zones and capabilities: reachable, the keys work, the version.
   * Failures are the client's CONNECTOR.* errors (unreachable, auth failed, API error).
   */
  async test(id: string, signal?: AbortSignal): Promise<ConnectorTestResult> {
    const client = await this.client(id);
    const zones = await client.listZones({ signal });
    const started = performance.now();
    const capabilities = await client.listCapabilities({ signal });
    const roundTripMs = Math.max(1, Math.round(performance.now() - started));
    return {
      reachable: true,
      endpointUrl: client.where,
      cloudstackVersion: capabilities.cloudstackversion,
      zones: zones.length,
      roundTripMs,
      testedAt: isoNow(this.clock),
    };
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

  private validate(i: ConnectorInput): CleanInput {
    return {
      name: i.name.trim(),
      kind: 'cloudstack',
      endpointUrl: checkHttpUrl(i.endpointUrl, 'CONNECTOR.ENDPOINT_INVALID', 'CloudStack endpoint URL'),
      apiKey: i.apiKey,
      secretKey: i.secretKey,
      verifyTls: i.verifyTls ?? true,
      caCertificate: checkCaCertificate(i.caCertificate ?? null),
    };
  }

  private seal(i: CleanInput) {
    return {
      name: i.name,
      kind: i.kind,
      endpointUrl: i.endpointUrl,
      apiKeySealed: this.box.encrypt(i.apiKey),
      secretKeySealed: this.box.encrypt(i.secretKey),
      verifyTls: i.verifyTls,
      caCertificate: i.caCertificate,
    };
  }

  private view(r: ConnectorRow): ConnectorView {
    return {
      id: r.id,
      name: r.name,
      kind: r.kind,
      endpointUrl: r.endpointUrl,
      apiKeySet: true,
      secretKeySet: true,
      verifyTls: r.verifyTls,
      caCertificate: r.caCertificate,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    };
  }
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** One or more PEM certificates, each parseable; normalised to the blocks alone. Empty means none. */
export function checkCaCertificate(pem: string | null): string | null {
  if (pem === null || pem.trim() === '') return null;
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw invalid('CONNECTOR.CA_INVALID', 'caCertificate contains a private key; give only the CA certificate');
  }
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw invalid('CONNECTOR.CA_INVALID', 'caCertificate holds no PEM certificate; paste the CA certificate(s) including the -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines');
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch {
      throw invalid('CONNECTOR.CA_INVALID', `certificate ${i + 1} of caCertificate cannot be read as an X.509 certificate; check the PEM text is complete`);
    }
  });
  return `${blocks.join('\n')}\n`;
}
