import { isoNow, type Clock } from '../clock.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { invalid } from '../errors.js';
import type { Result } from '../policies/policy.rules.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import type { DiskAccess, HostData, HostRecord, HostRepository } from './host.repository.js';
import { checkAddress, checkLibvirtUri, checkTags, checkUsername } from './host.rules.js';

export interface HostInput {
  name: string;
  address: string;
  sshPort?: number;
  username?: string;
  poolId: string;
  tags?: string[];
  libvirtUri?: string;
  diskAccess?: DiskAccess;
}

export interface HostReferences {
  poolExists(id: string): Promise<boolean>;
}

function must<T>(r: Result<T>, field: string): T {
  if (!r.ok) throw invalid(r.code, r.message, { field });
  return r.value;
}

export class HostService {
  constructor(
    private readonly repo: HostRepository,
    private readonly refs: HostReferences,
    private readonly clock: Clock,
    /** The host's SSH target (address, port, user) changed or it was deleted: drop its pooled connection. */
    private readonly onConnectionChanged: (id: string) => void = () => {},
  ) {}

  async create(input: HostInput): Promise<HostRecord> {
    const data = await this.validate({
      name: input.name,
      address: input.address,
      sshPort: input.sshPort ?? 22,
      username: input.username ?? 'root',
      poolId: input.poolId,
      tags: input.tags ?? [],
      libvirtUri: input.libvirtUri ?? 'qemu:///system',
      diskAccess: input.diskAccess ?? 'auto',
    });
    return uniqueName('host', data.name, () => this.repo.insert(data, isoNow(this.clock)));
  }

  async update(id: string, patch: Partial<HostData>): Promise<HostRecord> {
    const current = found(await this.repo.findById(id), 'host', id);
    const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<HostData>;
    const data = await this.validate({ ...current, ...defined });
    const moved = data.address !== current.address || data.sshPort !== current.sshPort;
    await uniqueName('host', data.name, () => this.repo.update(id, data, isoNow(this.clock), moved));
    if (moved || data.username !== current.username) this.onConnectionChanged(id);
    return this.get(id);
  }

  async get(id: string): Promise<HostRecord> {
    return found(await this.repo.findById(id), 'host', id);
  }

  async list(page: PageRequest, filter: { name?: string; poolId?: string; tag?: string } = {}): Promise<PageResult<HostRecord>> {
    return this.repo.list(page, filter);
  }

  async delete(id: string): Promise<void> {
    const current = found(await this.repo.findById(id), 'host', id);
    const vms = await this.repo.vmsWithRestorePoints(id);
    assertUnreferenced('host', current.name, vms.map((v) => ({ type: 'virtual machine with restore points', ...v })));
    await this.repo.delete(id);
    this.onConnectionChanged(id);
  }

  private async validate(d: HostData): Promise<HostData> {
    const data: HostData = {
      name: d.name.trim(),
      address: must(checkAddress(d.address), 'address'),
      sshPort: d.sshPort,
      username: must(checkUsername(d.username), 'username'),
      poolId: d.poolId,
      tags: must(checkTags(d.tags), 'tags'),
      libvirtUri: must(checkLibvirtUri(d.libvirtUri), 'libvirtUri'),
      diskAccess: d.diskAccess ?? 'auto',
    };
    if (!(await this.refs.poolExists(d.poolId))) {
      throw invalid('HOST.POOL_NOT_FOUND', `pool ${d.poolId} does not exist; create it first (POST /api/v2/pools) or pick another`, { poolId: d.poolId });
    }
    return data;
  }
}
