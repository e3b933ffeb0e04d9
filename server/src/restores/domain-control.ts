/**
 * The libvirt operations a restore needs beyond reading (start, stop, define, undefine), over
 * the host's command runner (SSH). Same conventions as the Virsh adapter: `env LC_ALL=C virsh
 * -c <uri> …`, domains addressed by UUID, failures classified by `classifyVirshFailure`.
 */
import { parseDomainXml } from '../adapters/libvirt/domain-xml.js';
import { parseDomainState, classifyVirshFailure, type DomainState } from '../adapters/libvirt/virsh.js';
import { LibvirtErrorCode } from '../adapters/libvirt/libvirt-errors.js';
import type { AppError } from '../errors.js';

export interface HostExec {
  (argv: readonly string[], opts: { timeoutMs: number; stdin?: string }): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** States in which the guest runs (or could resume): a restore must stop it first. */
export const ACTIVE_STATES: ReadonlySet<DomainState> = new Set(['running', 'idle', 'paused', 'in shutdown', 'pmsuspended']);

/** A disk of the VM as its current definition has it. */
export interface CurrentDisk {
  type: string;
  path: string | null;
  format: string | null;
}

/**
 * What an in-place restore does to the VM it restores: read its state and disks, stop it, start
 * it, power it off on a rollback. libvirt (DomainControl) for plain KVM guests; CloudStack's API
 * (CloudStackVmControl) for CloudStack instances, never virsh behind CloudStack's back.
 */
export interface VmControl {
  /** Who stops and starts the VM, for logs: `libvirt` or `CloudStack`. */
  readonly via: string;
  state(uuid: string): Promise<DomainState>;
  /** The VM's disks by target, from its persistent definition (or CloudStack's volumes). */
  disks(uuid: string): Promise<Map<string, CurrentDisk>>;
  start(uuid: string): Promise<void>;
  stop(uuid: string, graceMs: number, log: (m: string) => Promise<void>): Promise<'already' | 'shutdown' | 'destroyed'>;
  /** Power off at once (a rollback's first step when restored disks were already in use). */
  powerOff(uuid: string): Promise<void>;
}

export class DomainControl implements VmControl {
  readonly via = 'libvirt';

  constructor(
    private readonly exec: HostExec,
    readonly uri: string,
    private readonly timeoutMs = 60_000,
  ) {}

  async state(uuid: string): Promise<DomainState> {
    return parseDomainState(await this.virsh(['domstate', '--domain', uuid], uuid));
  }

  /** Whether a domain of that name (or uuid) is defined. */
  async exists(nameOrUuid: string): Promise<boolean> {
    try {
      await this.virsh(['domuuid', '--domain', nameOrUuid], nameOrUuid);
      return true;
    } catch (err) {
      if ((err as AppError).code === LibvirtErrorCode.VM_NOT_FOUND) return false;
      throw err;
    }
  }

  async inactiveXml(uuid: string): Promise<string> {
    return this.virsh(['dumpxml', '--inactive', '--domain', uuid], uuid);
  }

  async disks(uuid: string): Promise<Map<string, CurrentDisk>> {
    const out = new Map<string, CurrentDisk>();
    for (const d of parseDomainXml(await this.inactiveXml(uuid)).disks) out.set(d.target, { type: d.type, path: d.path, format: d.format });
    return out;
  }

  async powerOff(uuid: string): Promise<void> {
    await this.destroy(uuid);
  }

  async start(uuid: string): Promise<void> {
    await this.virsh(['start', '--domain', uuid], uuid);
  }

  async destroy(uuid: string): Promise<void> {
    await this.virsh(['destroy', '--domain', uuid], uuid);
  }

  /** The XML goes on stdin: no temporary file on the host, nothing of it on a command line. */
  async define(xml: string): Promise<void> {
    await this.virsh(['define', '--file', '/dev/stdin'], undefined, xml);
  }

  async undefine(uuid: string): Promise<void> {
    await this.virsh(['undefine', '--domain', uuid], uuid);
  }

  /**
   * ACPI shutdown, wait up to `graceMs`, then destroy (power off). Returns how it stopped.
   * A domain already off is fine.
   */
  async stop(uuid: string, graceMs: number, log: (m: string) => Promise<void>, pollMs = 1000): Promise<'already' | 'shutdown' | 'destroyed'> {
    if (!ACTIVE_STATES.has(await this.state(uuid))) return 'already';
    try {
      await this.virsh(['shutdown', '--domain', uuid], uuid);
    } catch (err) {
      await log(`shutdown request refused (${(err as Error).message}); powering off`);
    }
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      if ((await this.state(uuid)) === 'shut off') return 'shutdown';
      await new Promise((r) => setTimeout(r, pollMs));
    }
    await log(`the guest did not shut down within ${Math.round(graceMs / 1000)} s; powering it off (virsh destroy)`);
    try {
      await this.destroy(uuid);
    } catch (err) {
      if ((await this.state(uuid)) !== 'shut off') throw err;
    }
    return 'destroyed';
  }

  private async virsh(args: string[], domain?: string, stdin?: string): Promise<string> {
    const argv = ['env', 'LC_ALL=C', 'virsh', '-c', this.uri, ...args];
    const r = await this.exec(argv, { timeoutMs: this.timeoutMs, ...(stdin !== undefined ? { stdin } : {}) });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: args[0] ?? '', domain });
    return r.stdout;
  }
}
