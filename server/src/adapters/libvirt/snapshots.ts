/**
 * The mutating virsh commands a backup needs (external disk-only snapshots and
 * block-commit), run on the host as argv (quoted once by buildCommand over SSH).
 * Domains are addressed by UUID only.
 */
import { AppError } from '../../errors.js';
import type { SshExecutor } from '../ssh/ssh-client.js';
import { classifyVirshFailure } from './virsh.js';

export interface SnapshotDisk {
  target: string;
  /** Overlay file to create; null: leave this disk out of the snapshot (`snapshot=no`). */
  overlay: string | null;
}

/** virsh `--diskspec` splits on `,`: a literal comma in a path is written `,,`. */
export function diskspec(d: SnapshotDisk): string {
  const target = d.target.replaceAll(',', ',,');
  if (d.overlay === null) return `${target},snapshot=no`;
  return `${target},snapshot=external,driver=qcow2,file=${d.overlay.replaceAll(',', ',,')}`;
}

export function snapshotArgv(uuid: string, name: string, disks: readonly SnapshotDisk[], quiesce: boolean): string[] {
  return [
    'snapshot-create-as',
    '--domain',
    uuid,
    '--name',
    name,
    '--disk-only',
    '--atomic',
    '--no-metadata',
    ...(quiesce ? ['--quiesce'] : []),
    ...disks.flatMap((d) => ['--diskspec', diskspec(d)]),
  ];
}

export class DomainSnapshots {
  constructor(
    private readonly exec: SshExecutor['exec'],
    readonly uri: string,
    private readonly timeoutMs = 120_000,
  ) {}

  /** External, disk-only, atomic snapshot: the guest then writes to the overlays. */
  async createDiskOnly(uuid: string, name: string, disks: readonly SnapshotDisk[], quiesce: boolean): Promise<void> {
    await this.virsh(snapshotArgv(uuid, name, disks, quiesce), uuid);
  }

  /**
   * Merges the active overlay of `target` into its IMMEDIATE backing file and pivots the
   * domain back to it. `--shallow` matters: without a base, blockcommit merges down to the
   * bottom of the chain, i.e. into a shared template image.
   */
  async blockCommitActive(uuid: string, target: string, timeoutMs = 3_600_000): Promise<void> {
    await this.virsh(['blockcommit', '--domain', uuid, target, '--active', '--shallow', '--pivot', '--wait'], uuid, timeoutMs);
  }

  /** Aborts a block job left running (e.g. by a crashed commit); no error when there is none. */
  async blockJobAbort(uuid: string, target: string): Promise<void> {
    const r = await this.exec(['env', 'LC_ALL=C', 'virsh', '-c', this.uri, 'blockjob', '--domain', uuid, target, '--abort'], { timeoutMs: this.timeoutMs });
    void r;
  }

  /** Redefines the persistent domain from XML (on stdin: the XML never touches a command line). */
  async define(xml: string): Promise<void> {
    const argv = ['env', 'LC_ALL=C', 'virsh', '-c', this.uri, 'define', '--file', '/dev/stdin'];
    const r = await this.exec(argv, { timeoutMs: this.timeoutMs, stdin: xml });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: 'define' });
  }

  /** `rm -f -- <file>` on the host (the host user created the overlay). */
  async removeFile(file: string): Promise<void> {
    const r = await this.exec(['rm', '-f', '--', file], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new AppError('unavailable', 'HOST.COMMAND_FAILED', `could not remove ${file} on the host: ${r.stderr.trim()}`, { file });
  }

  /** `qemu-img commit` on the host, for an overlay of a domain that is not running. */
  async qemuImgCommit(overlay: string): Promise<void> {
    const r = await this.exec(['qemu-img', 'commit', '--', overlay], { timeoutMs: 3_600_000 });
    if (r.code !== 0) throw new AppError('unavailable', 'HOST.COMMAND_FAILED', `qemu-img commit of ${overlay} failed on the host: ${r.stderr.trim()}`, { file: overlay });
  }

  private async virsh(args: string[], domain: string, timeoutMs = this.timeoutMs): Promise<string> {
    const r = await this.exec(['env', 'LC_ALL=C', 'virsh', '-c', this.uri, ...args], { timeoutMs });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: args[0] ?? '', domain });
    return r.stdout;
  }
}
