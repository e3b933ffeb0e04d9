import type { PageRequest, PageResult } from '../db/page.js';
import { notFound } from '../errors.js';
import type { VmFilter, VmRecord, VmRepository } from './vm.repository.js';

/** Reads of the inventory cache: never touches a host, so it answers quickly. */
export class VmService {
  constructor(private readonly repo: VmRepository) {}

  list(page: PageRequest, filter: VmFilter = {}): Promise<PageResult<VmRecord>> {
    return this.repo.list(page, filter);
  }

  /** By libvirt uuid (CloudStack's VM uuid); undefined when the inventory does not know it. */
  findByUuid(uuid: string): Promise<VmRecord | undefined> {
    return this.repo.findByUuid(uuid);
  }

  async get(id: string): Promise<VmRecord> {
    const vm = await this.repo.findById(id);
    if (!vm) throw notFound('VM.NOT_FOUND', `no virtual machine with id ${id} in the inventory`, { id });
    return vm;
  }
}
