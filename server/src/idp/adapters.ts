import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { SecretBox } from '../crypto/secret-box.js';
import { findMachineClient } from './clients.js';

/**
 * Storage of oidc-provider's models. Sessions, interactions, grants and codes live in
 * memory (lost on restart: users sign in again); clients come from the data dir.
 */

interface Entry {
  payload: AdapterPayload;
  expiresAt: number; // epoch ms; Infinity when the model has no TTL
}

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/** The bucket of a store key: its model (`Session:…`), the Session's uid index with the Session. */
function bucketOf(key: string): string {
  const model = key.slice(0, Math.max(0, key.indexOf(':')));
  if (model === 'sessionUid') return 'Session';
  if (model === 'userCode') return 'DeviceCode';
  return model;
}

/**
 * Bounded in-memory store, one bucket per model, each with its own bound (oldest entries
 * go first past it). Separate bounds matter: anyone can create Interactions (every
 * unauthenticated GET /oidc/auth does), so a flood of them must only evict other
 * Interactions, never the Sessions, Grants and tokens of signed-in users.
 */
export class MemoryStore {
  private readonly buckets = new Map<string, Map<string, Entry>>();
  private readonly grants = new Map<string, Set<string>>();
  private writes = 0;

  constructor(
    private readonly maxEntries = 20_000,
    private readonly slackMs = 15_000,
  ) {}

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }

  /** Entries per model (tests, metrics). */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.buckets].map(([k, b]) => [k, b.size]));
  }

  private bucket(key: string): Map<string, Entry> {
    const name = bucketOf(key);
    let b = this.buckets.get(name);
    if (!b) this.buckets.set(name, (b = new Map()));
    return b;
  }

  get(key: string): AdapterPayload | undefined {
    const entry = this.bucket(key).get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: AdapterPayload, expiresInSeconds?: number): void {
    const expiresAt = typeof expiresInSeconds === 'number' ? Date.now() + expiresInSeconds * 1000 + this.slackMs : Infinity;
    const bucket = this.bucket(key);
    bucket.delete(key); // re-insert: keeps the Map in write order for eviction
    bucket.set(key, { payload, expiresAt });
    if (++this.writes % 256 === 0) this.sweepExpired();
    // Over the bound: the oldest entries of this model only.
    for (const oldest of bucket.keys()) {
      if (bucket.size <= this.maxEntries) break;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const bucket = this.bucket(key);
    const entry = bucket.get(key);
    bucket.delete(key);
    const grantId = entry?.payload.grantId;
    if (typeof grantId === 'string') this.grants.get(grantId)?.delete(key);
  }

  addToGrant(grantId: string, key: string): void {
    let members = this.grants.get(grantId);
    if (!members) this.grants.set(grantId, (members = new Set()));
    members.add(key);
  }

  revokeGrant(grantId: string): void {
    const members = this.grants.get(grantId);
    this.grants.delete(grantId);
    for (const key of members ?? []) this.bucket(key).delete(key);
  }

  private sweepExpired(): void {
    const now = Date.now();
    for (const bucket of this.buckets.values()) {
      for (const [key, entry] of bucket) if (entry.expiresAt <= now) this.delete(key);
    }
    for (const [grantId, members] of this.grants) {
      for (const key of members) if (!this.bucket(key).has(key)) members.delete(key);
      if (members.size === 0) this.grants.delete(grantId);
    }
  }
}

export class MemoryAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly store: MemoryStore,
  ) {}

  private key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const key = this.key(id);
    this.store.delete(key);
    this.store.set(key, payload, expiresIn);
    if (this.model === 'Session' && typeof payload.uid === 'string') this.store.set(`sessionUid:${payload.uid}`, { id }, expiresIn);
    if (typeof payload.userCode === 'string') this.store.set(`userCode:${payload.userCode}`, { id }, expiresIn);
    if (GRANTABLE.has(this.model) && typeof payload.grantId === 'string') this.store.addToGrant(payload.grantId, key);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.store.get(this.key(id));
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const ref = this.store.get(`sessionUid:${uid}`);
    return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const ref = this.store.get(`userCode:${userCode}`);
    return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
  }

  async consume(id: string): Promise<void> {
    const payload = this.store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.store.revokeGrant(grantId);
  }
}

export interface ClientAdapterOptions {
  dataDir: string;
  secretBox: SecretBox;
  /** Called when a stored secret cannot be decrypted (the client is then unknown). */
  onUnreadable?: (clientId: string, err: unknown) => void;
}

/**
 * Clients are read from `<dataDir>/idp/clients.json` on every lookup, so clients the
 * CLI creates or deletes while the server runs take effect on the next request.
 * The secret is decrypted only in memory, for oidc-provider's constant-time compare.
 */
export class MachineClientAdapter implements Adapter {
  constructor(private readonly options: ClientAdapterOptions) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    const record = findMachineClient(this.options.dataDir, id);
    if (!record) return undefined;
    let secret: string;
    try {
      secret = this.options.secretBox.decrypt(record.secret);
    } catch (err) {
      this.options.onUnreadable?.(id, err);
      return undefined;
    }
    return {
      client_id: record.clientId,
      client_secret: secret,
      client_name: record.name,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    };
  }

  // Clients are managed through the store (CLI), never by the provider.
  async upsert(): Promise<void> {
    throw new Error('machine clients are created with `backroll client create`, not through the provider');
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/** The adapter factory handed to oidc-provider's `adapter` option. */
export function adapterFactory(store: MemoryStore, clients: ClientAdapterOptions): (model: string) => Adapter {
  const clientAdapter = new MachineClientAdapter(clients);
  return (model) => (model === 'Client' ? clientAdapter : new MemoryAdapter(model, store));
}
