/**
 * Discovers every domain of every host and caches it in the database (upsert by host and
 * uuid). One host failing never stops the others: its error is recorded on the host and in
 * the summary, and its VMs are left as they were (not marked absent).
 *
 * Per host: one `virsh list --all --uuid`, then per domain `dumpxml` + `domstate` and one
 * `qemu-img info --backing-chain` per local disk, `concurrencyPerHost` domains at a time over
 * the host's one pooled SSH connection. Domains are addressed by uuid only: a VM's name,
 * hostile or not, never reaches a command line.
 */
import type { DomainDisk } from '../adapters/libvirt/domain-xml.js';
import { parseDomainXml } from '../adapters/libvirt/domain-xml.js';
import { LibvirtErrorCode } from '../adapters/libvirt/libvirt-errors.js';
import type { Virsh } from '../adapters/libvirt/virsh.js';
import type { QemuImg } from '../adapters/qemu-img/qemu-img.js';
import { SshErrorCode } from '../adapters/ssh/ssh-errors.js';
import { isoNow, type Clock } from '../clock.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError } from '../errors.js';
import type { HostRecord, HostRepository } from '../hosts/host.repository.js';
import { found } from '../shared/service-helpers.js';
import type { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { asDomainDisk } from '../cloudstack/cloudstack-access.js';
import { indexInstances, isStopped, matchInstance, vmInfo } from '../cloudstack/cloudstack-vm.rules.js';
import type { CsVirtualMachine } from '../adapters/cloudstack/cloudstack-client.js';
import { buildDisk, discoveredVm, inspectable, isSystemVm, planInventory, type DiscoveredVm, type KnownVm, type VmDisk } from './inventory.rules.js';
import type { VmRepository } from './vm.repository.js';

/** What the inventory needs from the host layer (HostConnections in production). */
export interface HostAccess {
  virsh(host: HostRecord): Virsh;
  qemuImg(hostId: string): QemuImg;
  recordSuccess(hostId: string): Promise<void>;
  /** Records the failure on the host; returns the explained error. */
  recordFailure(host: HostRecord, err: unknown): Promise<AppError>;
}

export interface HostRefreshSummary {
  hostId: string;
  hostName: string;
  ok: boolean;
  /** Domains read on the host. */
  found: number;
  added: number;
  updated: number;
  /** Known VMs no longer on the host: marked present=false. */
  disappeared: number;
  /** Listed but gone before they could be read (undefined meanwhile): skipped. */
  vanished: number;
  /** Domains that could not be read (left as they were). */
  vmErrors: Array<{ uuid: string; code: string; message: string }>;
  /** Why the host could not be inventoried (then nothing of it changed). */
  error: { code: string; message: string } | null;
  /** Present when the host's pool has a CloudStack connector. */
  cloudStack?: { ok: boolean; instances: number; stopped: number; error: { code: string; message: string } | null };
  durationMs: number;
}

export interface RefreshSummary {
  startedAt: string;
  finishedAt: string;
  hosts: HostRefreshSummary[];
}

export interface InventoryDeps {
  vms: VmRepository;
  hosts: HostRepository;
  access: HostAccess;
  clock: Clock;
  /** Domains read at once on one host. */
  concurrencyPerHost: number;
  /** Hosts refreshed at once by `refreshAll`. Default 8. */
  hostConcurrency?: number;
  /** The pools' CloudStack connectors: enrichment and VMs CloudStack stopped. Without it, SMBIOS recognition only. */
  cloudStack?: Pick<CloudStackAccess, 'clientForPool' | 'volumeDisks'>;
  /** Where diagnostics of the CloudStack side go (a connector failing never fails the host). */
  warn?: (message: string) => void;
}

/** Errors about one domain; anything else (SSH, libvirt down, timeouts) is about the host. */
const DOMAIN_ERRORS: ReadonlySet<string> = new Set([LibvirtErrorCode.BAD_XML, LibvirtErrorCode.COMMAND_FAILED, LibvirtErrorCode.BAD_OUTPUT]);

const CONNECTION_ERRORS: ReadonlySet<string> = new Set([
  SshErrorCode.CONNECTION_LOST,
  SshErrorCode.SSH_FAILED,
  SshErrorCode.UNREACHABLE,
  SshErrorCode.AUTH_FAILED,
  SshErrorCode.KEY_CHANGED,
]);

export class InventoryService {
  /** A refresh of a host already running in this process: callers share it. */
  private readonly running = new Map<string, Promise<HostRefreshSummary>>();

  constructor(private readonly deps: InventoryDeps) {}

  async refreshAll(): Promise<RefreshSummary> {
    const startedAt = isoNow(this.deps.clock);
    const ids = await this.deps.hosts.allIds();
    const hosts = await mapLimit(ids, this.deps.hostConcurrency ?? 8, (id) => this.refreshHostSafe(id));
    return { startedAt, finishedAt: isoNow(this.deps.clock), hosts: hosts.filter((h): h is HostRefreshSummary => h !== null) };
  }

  /** Refreshes one host (404 when it does not exist). A failing host is a summary with `ok: false`, not a throw. */
  async refreshHost(id: string): Promise<RefreshSummary> {
    const startedAt = isoNow(this.deps.clock);
    const host = found(await this.deps.hosts.findById(id), 'host', id);
    const summary = await this.refreshOnce(host);
    return { startedAt, finishedAt: isoNow(this.deps.clock), hosts: [summary] };
  }

  private async refreshHostSafe(id: string): Promise<HostRefreshSummary | null> {
    const host = await this.deps.hosts.findById(id);
    return host ? this.refreshOnce(host) : null; // deleted meanwhile
  }

  private refreshOnce(host: HostRecord): Promise<HostRefreshSummary> {
    let p = this.running.get(host.id);
    if (!p) {
      p = this.refresh(host).finally(() => this.running.delete(host.id));
      this.running.set(host.id, p);
    }
    return p;
  }

  private async refresh(host: HostRecord): Promise<HostRefreshSummary> {
    const t0 = Date.now();
    const summary: HostRefreshSummary = {
      hostId: host.id,
      hostName: host.name,
      ok: false,
      found: 0,
      added: 0,
      updated: 0,
      disappeared: 0,
      vanished: 0,
      vmErrors: [],
      error: null,
      durationMs: 0,
    };
    try {
      const { vms, vanished, unreadable } = await this.discover(host);
      summary.found = vms.length;
      summary.vanished = vanished;
      summary.vmErrors = unreadable;
      const unreadableUuids = new Set(unreadable.map((u) => u.uuid));
      const all = await this.withCloudStack(host, vms, unreadableUuids, summary);
      // Another process may insert the same new VMs at the same moment: re-plan once on a conflict.
      for (let attempt = 0; ; attempt++) {
        const plan = planInventory(await this.deps.vms.knownOnHost(host.id), all, unreadableUuids);
        try {
          await this.deps.vms.apply(host.id, plan, isoNow(this.deps.clock));
        } catch (err) {
          if (attempt === 0 && isUniqueViolation(err)) continue;
          throw err;
        }
        summary.added = plan.added.length;
        summary.updated = plan.updated.length;
        summary.disappeared = plan.disappearedIds.length;
        break;
      }
      await this.deps.access.recordSuccess(host.id);
      summary.ok = true;
    } catch (err) {
      if (!(err instanceof AppError)) {
        // Deleted while being refreshed (its VMs then break a foreign key): nothing left to report on.
        if (!(await this.deps.hosts.findById(host.id))) {
          summary.error = { code: 'HOST.NOT_FOUND', message: `host "${host.name}" was deleted during the refresh` };
          summary.durationMs = Date.now() - t0;
          return summary;
        }
        throw err; // a bug or the database: not the host's fault
      }
      const e = await this.deps.access.recordFailure(host, err);
      summary.error = { code: e.code, message: e.message };
    }
    summary.durationMs = Date.now() - t0;
    return summary;
  }

  /**
   * With the pool's CloudStack connector: each domain CloudStack knows gets CloudStack's view
   * (instance id, display name, account, domain, project, state), and the VMs CloudStack stopped
   * (undefined from libvirt) that belong to this host (the pool host that saw them last, else the
   * pool's first host by name) are added, with their volumes as disks. A connector that fails
   * changes nothing CloudStack said before and never fails the host.
   */
  private async withCloudStack(host: HostRecord, vms: DiscoveredVm[], unreadable: Set<string>, summary: HostRefreshSummary): Promise<DiscoveredVm[]> {
    const cs = this.deps.cloudStack;
    if (!cs) return vms;
    let instances: CsVirtualMachine[];
    let client;
    try {
      client = await cs.clientForPool(host.poolId);
      if (!client) return vms;
      instances = await client.listVirtualMachines();
    } catch (err) {
      const e = err instanceof AppError ? { code: err.code, message: err.message } : { code: 'CONNECTOR.FAILED', message: String(err) };
      summary.cloudStack = { ok: false, instances: 0, stopped: 0, error: e };
      this.deps.warn?.(`inventory of host ${host.name}: the pool's CloudStack connector failed (${e.code}: ${e.message}); CloudStack's view of its VMs is left as it was`);
      // Keep what CloudStack said before; the VMs only it knows are not marked absent.
      const known = new Map((await this.deps.vms.knownOnHost(host.id)).map((k) => [k.uuid, k] as const));
      for (const v of vms) v.cloudStack = known.get(v.uuid)?.cloudStack ?? null;
      for (const k of known.values()) if (k.cloudStack?.stoppedOutsideLibvirt && k.present) unreadable.add(k.uuid);
      return vms;
    }
    const { byId, byInstanceName } = indexInstances(instances);
    const matched = new Set<string>();
    let enriched = 0;
    for (const v of vms) {
      const m = matchInstance(v, byId, byInstanceName);
      if (!m) continue;
      matched.add(m.id.toLowerCase());
      v.cloudStack = vmInfo(m, false);
      v.cloudStackManaged = true;
      v.systemVm = isSystemVm(v.name, true);
      enriched++;
    }
    const stopped = [...byId.values()].filter((m) => isStopped(String(m.state)) && !matched.has(m.id.toLowerCase()));
    const { lastHostOf, hostIds } = await this.deps.vms.poolPlacement(host.poolId, stopped.map((m) => m.id));
    const mine = stopped.filter((m) => (lastHostOf.get(m.id.toLowerCase()) ?? hostIds[0]) === host.id);
    const added: DiscoveredVm[] = [];
    for (const m of mine) {
      let disks: VmDisk[] = [];
      try {
        disks = (await cs.volumeDisks(client, m, { check: false })).map((d) => ({ ...buildDisk(asDomainDisk(d), null, null), virtualSizeBytes: d.sizeBytes }));
      } catch (err) {
        const e = err instanceof AppError ? err : new AppError('internal', 'CONNECTOR.FAILED', String(err));
        summary.vmErrors.push({ uuid: m.id.toLowerCase(), code: e.code, message: e.message });
      }
      added.push(stoppedVm(m, disks));
    }
    summary.cloudStack = { ok: true, instances: enriched, stopped: added.length, error: null };
    return [...vms, ...added];
  }

  private async discover(host: HostRecord): Promise<{ vms: DiscoveredVm[]; vanished: number; unreadable: HostRefreshSummary['vmErrors'] }> {
    const virsh = this.deps.access.virsh(host);
    const qemuImg = this.deps.access.qemuImg(host.id);
    const uuids = await virsh.listDomainUuids();
    const vms: DiscoveredVm[] = [];
    const unreadable: HostRefreshSummary['vmErrors'] = [];
    let vanished = 0;
    await mapLimit(uuids, this.deps.concurrencyPerHost, async (uuid) => {
      try {
        const vm = await this.readDomain(virsh, qemuImg, uuid);
        if (vm) vms.push(vm);
        else vanished++;
      } catch (err) {
        if (err instanceof AppError && DOMAIN_ERRORS.has(err.code)) unreadable.push({ uuid, code: err.code, message: err.message });
        else throw err;
      }
    });
    return { vms, vanished, unreadable };
  }

  /** null: the domain was undefined between listing and reading. */
  private async readDomain(virsh: Virsh, qemuImg: QemuImg, uuid: string): Promise<DiscoveredVm | null> {
    let xml: string;
    let state: Awaited<ReturnType<Virsh['domainState']>>;
    try {
      [xml, state] = await Promise.all([virsh.domainXml(uuid), virsh.domainState(uuid)]);
    } catch (err) {
      if (err instanceof AppError && err.code === LibvirtErrorCode.VM_NOT_FOUND) return null;
      throw err;
    }
    const info = parseDomainXml(xml);
    const disks: VmDisk[] = [];
    for (const d of info.disks) disks.push(await this.inspectDisk(qemuImg, d));
    return discoveredVm(info, state, disks);
  }

  /** Sizes and chain from qemu-img; its failure is the disk's problem, not the VM's or the host's. */
  private async inspectDisk(qemuImg: QemuImg, d: DomainDisk): Promise<VmDisk> {
    if (!inspectable(d)) return buildDisk(d, null, null);
    try {
      return buildDisk(d, await qemuImg.info(d.path!, { format: d.format }), null);
    } catch (err) {
      // A stalled mount (timeout) or a missing image is the disk's problem; a lost connection is the host's.
      if (!(err instanceof AppError) || CONNECTION_ERRORS.has(err.code)) throw err;
      return buildDisk(d, null, { code: err.code, message: err.message });
    }
  }
}

/** A VM CloudStack stopped, as the inventory lists it: shut off, its volumes as disks. */
function stoppedVm(m: CsVirtualMachine, disks: VmDisk[]): DiscoveredVm {
  const name = typeof m.instancename === 'string' && m.instancename !== '' ? m.instancename : String(m.name);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  return {
    uuid: m.id.toLowerCase(),
    name: [...name].slice(0, 255).join(''),
    state: 'shut off',
    vcpus: num(m.cpunumber),
    memoryBytes: num(m.memory) * 1024 * 1024,
    disks,
    cloudStackManaged: true,
    systemVm: false,
    cloudStack: vmInfo(m, true),
  };
}

export type { KnownVm };

/** At most `limit` at once; after a failure no new item starts (the first error is thrown). */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
