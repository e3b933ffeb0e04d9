/**
 * VmControl for a CloudStack instance: its state is CloudStack's, it is stopped and started with
 * stopVirtualMachine/startVirtualMachine (asynchronous jobs polled to their end), never with
 * virsh. Its disks are the libvirt definition's while CloudStack runs it, else its volumes'
 * files on the primary storage (paths checked strictly, see cloudstack-access.ts).
 */
import type { CloudStackClient } from '../adapters/cloudstack/cloudstack-client.js';
import type { DomainState } from '../adapters/libvirt/virsh.js';
import type { CloudStackAccess } from '../cloudstack/cloudstack-access.js';
import { CloudStackVmErrorCode, isStopped, isTransitional, type CloudStackVmInfo } from '../cloudstack/cloudstack-vm.rules.js';
import { AppError } from '../errors.js';
import type { CurrentDisk, DomainControl, VmControl } from './domain-control.js';

/** CloudStack's own stop may wait for the guest; Backroll then forces it. */
const STOP_MARGIN_MS = 60_000;

export class CloudStackVmControl implements VmControl {
  readonly via = 'CloudStack';

  constructor(
    private readonly client: CloudStackClient,
    private readonly access: Pick<CloudStackAccess, 'settledInstance' | 'instance' | 'volumeDisks'>,
    private readonly libvirt: DomainControl,
    private readonly info: Pick<CloudStackVmInfo, 'id'>,
    private readonly vmName: string,
    private readonly jobTimeoutMs = 15 * 60_000,
  ) {}

  async state(_uuid: string): Promise<DomainState> {
    const vm = await this.access.instance(this.client, this.info.id);
    if (!vm) throw new AppError('not_found', CloudStackVmErrorCode.VM_UNKNOWN, `CloudStack (${this.client.where}) has no instance ${this.info.id} (VM ${JSON.stringify(this.vmName)})`, { id: this.info.id });
    const s = String(vm.state);
    if (s === 'Running') return 'running';
    if (isStopped(s)) return 'shut off';
    if (isTransitional(s)) throw new AppError('conflict', CloudStackVmErrorCode.VM_BUSY, `CloudStack instance ${JSON.stringify(this.vmName)} is ${s}: retry when CloudStack has finished`, { id: this.info.id, state: s });
    throw new AppError('conflict', CloudStackVmErrorCode.VM_BUSY, `CloudStack instance ${JSON.stringify(this.vmName)} is in state ${s}: Backroll restores Running or Stopped instances only`, { id: this.info.id, state: s });
  }

  async disks(uuid: string): Promise<Map<string, CurrentDisk>> {
    if (await this.libvirt.exists(uuid)) return this.libvirt.disks(uuid);
    const vm = await this.access.settledInstance(this.client, this.info.id, this.vmName);
    const out = new Map<string, CurrentDisk>();
    for (const d of await this.access.volumeDisks(this.client, vm, { check: true })) out.set(d.target, { type: 'file', path: d.path, format: d.format });
    return out;
  }

  async start(_uuid: string): Promise<void> {
    const vm = await this.client.startVirtualMachine(this.info.id, { timeoutMs: this.jobTimeoutMs });
    if (String(vm.state) !== 'Running') throw new AppError('conflict', CloudStackVmErrorCode.VM_BUSY, `CloudStack reports ${JSON.stringify(this.vmName)} as ${vm.state} after starting it`, { id: this.info.id, state: vm.state });
  }

  async stop(uuid: string, graceMs: number, log: (m: string) => Promise<void>): Promise<'already' | 'shutdown' | 'destroyed'> {
    if ((await this.state(uuid)) === 'shut off') return 'already';
    await log(`stopping ${this.vmName} through CloudStack (stopVirtualMachine)`);
    try {
      await this.client.stopVirtualMachine(this.info.id, { timeoutMs: graceMs + STOP_MARGIN_MS });
      return 'shutdown';
    } catch (err) {
      await log(`CloudStack could not stop it gracefully (${(err as Error).message}); forcing the stop through CloudStack`);
      await this.client.stopVirtualMachine(this.info.id, { forced: true, timeoutMs: this.jobTimeoutMs });
      return 'destroyed';
    }
  }

  async powerOff(_uuid: string): Promise<void> {
    await this.client.stopVirtualMachine(this.info.id, { forced: true, timeoutMs: this.jobTimeoutMs });
  }
}
