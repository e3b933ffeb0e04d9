import path from 'node:path';
import type { FileSystem } from '../adapters/filesystem.js';
import { isoNow, type Clock } from '../clock.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { invalid } from '../errors.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import type { StorageRecord, StorageRepository } from './storage.repository.js';
import { CapacityCache, type CapacityReading } from './capacity-cache.js';

export interface StorageView extends StorageRecord {
  /** Live figures of the file system holding the path; null when it cannot be read now. */
  capacityBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  /** When the figures were read (cached up to a minute); null: never. */
  capacityAt: string | null;
  /** Why the figures are missing or stale (a hung mount: STORAGE.CAPACITY_TIMEOUT). */
  capacityError: { code: string; message: string } | null;
}

export interface StorageInput {
  name: string;
  path: string;
}

export class StorageService {
  private readonly capacities: CapacityCache;

  constructor(
    private readonly repo: StorageRepository,
    private readonly fs: FileSystem,
    private readonly clock: Clock,
    capacities?: CapacityCache,
  ) {
    this.capacities = capacities ?? new CapacityCache(fs, clock);
  }

  /** The storage's file-system figures: cached, never waiting long for a hung mount. */
  capacityOf(rec: StorageRecord): Promise<CapacityReading> {
    return this.capacities.read(rec.path);
  }

  /** Every storage (for the usage sampler and the dashboard; a handful of rows). */
  async all(): Promise<StorageRecord[]> {
    const out: StorageRecord[] = [];
    for (let offset = 0; ; offset += 500) {
      const page = await this.repo.list({ limit: 500, offset });
      out.push(...page.items);
      if (page.items.length < 500) return out;
    }
  }

  async create(input: StorageInput): Promise<StorageView> {
    const clean = await this.validate(input);
    const rec = await uniqueName('storage', clean.name, () => this.repo.insert(clean, isoNow(this.clock)));
    return this.view(rec);
  }

  async update(id: string, patch: Partial<StorageInput>): Promise<StorageView> {
    const current = found(await this.repo.findById(id), 'storage', id);
    const clean = await this.validate({ name: patch.name ?? current.name, path: patch.path ?? current.path });
    await uniqueName('storage', clean.name, () => this.repo.update(id, clean, isoNow(this.clock)));
    return this.get(id);
  }

  async get(id: string): Promise<StorageView> {
    return this.view(found(await this.repo.findById(id), 'storage', id));
  }

  async find(id: string): Promise<StorageRecord | undefined> {
    return this.repo.findById(id);
  }

  async list(page: PageRequest, filter: { name?: string } = {}): Promise<PageResult<StorageView>> {
    const res = await this.repo.list(page, filter);
    return { ...res, items: await Promise.all(res.items.map((r) => this.view(r))) };
  }

  async delete(id: string): Promise<void> {
    const current = found(await this.repo.findById(id), 'storage', id);
    const policies = await this.repo.referencingPolicies(id);
    assertUnreferenced('storage', current.name, policies.map((p) => ({ type: 'policy', ...p })));
    await this.repo.delete(id);
  }

  private async validate(input: StorageInput): Promise<StorageInput> {
    const name = input.name.trim();
    const dir = input.path;
    if (!path.isAbsolute(dir)) {
      throw invalid('STORAGE.PATH_NOT_ABSOLUTE', `storage path "${dir}" must be absolute (start with /)`, { path: dir });
    }
    const normalized = path.normalize(dir).replace(/(.)\/+$/, '$1');
    const probe = await this.fs.probeWritableDirectory(normalized);
    if (!probe.ok) {
      const messages = {
        missing: `storage path "${normalized}" does not exist on the Backroll server; create it (or mount the backup storage there) first`,
        not_directory: `storage path "${normalized}" is not a directory`,
        not_writable: `storage path "${normalized}" is not writable by the Backroll server (${probe.error ?? 'permission denied'}); fix its owner or mode, or the mount options`,
      } as const;
      const codes = { missing: 'STORAGE.PATH_NOT_FOUND', not_directory: 'STORAGE.PATH_NOT_DIRECTORY', not_writable: 'STORAGE.PATH_NOT_WRITABLE' } as const;
      throw invalid(codes[probe.reason], messages[probe.reason], { path: normalized });
    }
    return { name, path: normalized };
  }

  private async view(rec: StorageRecord): Promise<StorageView> {
    const r = await this.capacities.read(rec.path);
    const cap = r.capacity;
    return { ...rec, capacityBytes: cap?.capacityBytes ?? null, usedBytes: cap?.usedBytes ?? null, freeBytes: cap?.freeBytes ?? null, capacityAt: r.at, capacityError: r.error };
  }
}
