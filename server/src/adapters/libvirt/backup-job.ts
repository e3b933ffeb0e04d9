/**
 * libvirt's backup API (`virsh backup-begin`, pull mode) and checkpoints, run on the host as
 * argv (quoted once by buildCommand over SSH). Domains are addressed by UUID only.
 *
 * Pull mode: QEMU serves a point-in-time view of each disk over NBD on a unix socket on the
 * host (export name = disk target), with a copy-before-write scratch file per disk. With
 * `<incremental>CP</incremental>` the blocks changed since checkpoint CP are the NBD metadata
 * context `qemu:dirty-bitmap:backup-<target>`. The job lasts until `domjobabort`.
 *
 * XML files for backup-begin are written on the host through stdin (`tee`), never on a
 * command line.
 */
import { AppError } from '../../errors.js';
import type { SshExecutor } from '../ssh/ssh-client.js';
import { classifyVirshFailure } from './virsh.js';

export interface PullDisk {
  target: string;
  /** Scratch file (qcow2) for copy-before-write; on the host, in a directory the host user owns. */
  scratch: string;
}

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;').replaceAll('"', '&quot;');
}

/** `<domainbackup mode='pull'>` for the given disks; every other disk of the domain is excluded (pure). */
export function pullBackupXml(o: { socket: string; disks: readonly PullDisk[]; excluded: readonly string[]; incremental: string | null }): string {
  const disks = [
    ...o.disks.map((d) => `    <disk name='${esc(d.target)}' backup='yes' type='file'><driver type='qcow2'/><scratch file='${esc(d.scratch)}'/></disk>`),
    ...o.excluded.map((t) => `    <disk name='${esc(t)}' backup='no'/>`),
  ];
  return [
    `<domainbackup mode='pull'>`,
    ...(o.incremental ? [`  <incremental>${esc(o.incremental)}</incremental>`] : []),
    `  <server transport='unix' socket='${esc(o.socket)}'/>`,
    '  <disks>',
    ...disks,
    '  </disks>',
    '</domainbackup>',
    '',
  ].join('\n');
}

/** `<domaincheckpoint>` with a bitmap in each tracked disk (pure). */
export function checkpointXml(o: { name: string; description: string; targets: readonly string[]; excluded: readonly string[] }): string {
  return [
    '<domaincheckpoint>',
    `  <name>${esc(o.name)}</name>`,
    `  <description>${esc(o.description)}</description>`,
    '  <disks>',
    ...o.targets.map((t) => `    <disk name='${esc(t)}' checkpoint='bitmap'/>`),
    ...o.excluded.map((t) => `    <disk name='${esc(t)}' checkpoint='no'/>`),
    '  </disks>',
    '</domaincheckpoint>',
    '',
  ].join('\n');
}

/** Checkpoint names in `virsh checkpoint-list --name` output (pure). */
export function parseNameList(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

export class DomainBackupJobs {
  constructor(
    private readonly exec: SshExecutor['exec'],
    readonly uri: string,
    private readonly timeoutMs = 120_000,
  ) {}

  /** Writes a file on the host from stdin (mode 0600 by umask of the job directory). */
  async writeHostFile(file: string, content: string): Promise<void> {
    const r = await this.exec(['tee', '--', file], { timeoutMs: this.timeoutMs, stdin: content });
    if (r.code !== 0) throw new AppError('unavailable', 'HOST.COMMAND_FAILED', `could not write ${file} on the host: ${r.stderr.trim()}`, { file });
  }

  async mkdir(dir: string): Promise<void> {
    const r = await this.exec(['mkdir', '-m', '0700', '--', dir], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new AppError('unavailable', 'HOST.COMMAND_FAILED', `could not create ${dir} on the host: ${r.stderr.trim()}`, { dir });
  }

  /** `rm -rf -- dir` on the host (the job directory Backroll created). */
  async removeDir(dir: string): Promise<void> {
    const r = await this.exec(['rm', '-rf', '--', dir], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new AppError('unavailable', 'HOST.COMMAND_FAILED', `could not remove ${dir} on the host: ${r.stderr.trim()}`, { dir });
  }

  /** Entries of a host directory (`ls -1A`); empty when it does not exist. */
  async listDir(dir: string): Promise<string[]> {
    const r = await this.exec(['ls', '-1A', '--', dir], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) return [];
    return parseNameList(r.stdout);
  }

  /**
   * Serves a shut-off VM's disk read-only over NBD on a unix socket (`qemu-nbd --read-only`,
   * daemonised, pid in `pidFile`). qemu-nbd holds the image's shared lock: QEMU cannot start
   * the VM on it ("Failed to get 'write' lock") until `stopNbdServer`, so what is read is one
   * consistent image; and it cannot open a disk a running QEMU writes.
   */
  async startNbdServer(o: { file: string; format: string; socket: string; exportName: string; pidFile: string }): Promise<void> {
    const r = await this.exec(
      ['qemu-nbd', '--read-only', '--persistent', '--fork', '--shared=8', `--pid-file=${o.pidFile}`, `--socket=${o.socket}`, `--export-name=${o.exportName}`, `--format=${o.format}`, '--', o.file],
      { timeoutMs: this.timeoutMs },
    );
    if (r.code !== 0) {
      const locked = /lock/i.test(r.stderr);
      throw new AppError(locked ? 'conflict' : 'unavailable', locked ? 'BACKUP.DISK_IN_USE' : 'HOST.COMMAND_FAILED', locked ? `${o.file} is in use (the VM was started meanwhile?): ${r.stderr.trim()}` : `qemu-nbd could not serve ${o.file} on the host: ${r.stderr.trim()}`, { file: o.file });
    }
  }

  /**
   * Stops the qemu-nbd whose pid is in `pidFile`, only when that process is a qemu-nbd serving
   * `socket` (a stale pid file never kills another process); waits until it is gone, so the
   * image lock is released when this returns. False when there was nothing to stop.
   */
  async stopNbdServer(pidFile: string, socket: string): Promise<boolean> {
    const p = await this.exec(['cat', '--', pidFile], { timeoutMs: this.timeoutMs });
    const pid = p.code === 0 ? p.stdout.trim() : '';
    if (!/^[1-9]\d{0,9}$/.test(pid)) return false;
    const cmd = await this.exec(['cat', '--', `/proc/${pid}/cmdline`], { timeoutMs: this.timeoutMs });
    const args = cmd.code === 0 ? cmd.stdout.split('\0') : [];
    if (!args.some((a) => a.endsWith('qemu-nbd')) || !args.includes(`--socket=${socket}`)) return false;
    await this.exec(['kill', '-TERM', '--', pid], { timeoutMs: this.timeoutMs });
    for (let i = 0; i < 100; i++) {
      const alive = await this.exec(['kill', '-0', '--', pid], { timeoutMs: this.timeoutMs });
      if (alive.code !== 0) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.exec(['kill', '-KILL', '--', pid], { timeoutMs: this.timeoutMs });
    return true;
  }

  /** Starts a pull-mode backup job, creating the checkpoint atomically with it. */
  async begin(uuid: string, backupXmlFile: string, checkpointXmlFile: string | null): Promise<void> {
    await this.virsh(['backup-begin', '--domain', uuid, '--backupxml', backupXmlFile, ...(checkpointXmlFile ? ['--checkpointxml', checkpointXmlFile] : [])], uuid);
  }

  /** Ends the domain's backup job (pull mode jobs run until aborted); false when there was none. */
  async abort(uuid: string): Promise<boolean> {
    const r = await this.exec(['env', 'LC_ALL=C', 'virsh', '-c', this.uri, 'domjobabort', '--domain', uuid], { timeoutMs: this.timeoutMs });
    if (r.code === 0) return true;
    if (/no job is active|not active|no active job/i.test(r.stderr)) return false;
    throw classifyVirshFailure(r, { uri: this.uri, subcommand: 'domjobabort', domain: uuid });
  }

  /** True when the domain runs a backup job now. */
  async hasBackupJob(uuid: string): Promise<boolean> {
    const r = await this.exec(['env', 'LC_ALL=C', 'virsh', '-c', this.uri, 'domjobinfo', '--domain', uuid], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: 'domjobinfo', domain: uuid });
    const type = /^Job type:\s*(\S+)/m.exec(r.stdout)?.[1] ?? 'None';
    const op = /^Operation:\s*(.+)$/m.exec(r.stdout)?.[1]?.trim() ?? '';
    return type !== 'None' && (op === '' || /backup/i.test(op));
  }

  async checkpoints(uuid: string): Promise<string[]> {
    return parseNameList(await this.virsh(['checkpoint-list', '--domain', uuid, '--name'], uuid));
  }

  /** The checkpoint's full XML (with `<domain>`), as `--redefine` needs it. */
  async checkpointXml(uuid: string, name: string): Promise<string> {
    return this.virsh(['checkpoint-dumpxml', '--domain', uuid, '--checkpointname', name], uuid);
  }

  /** Redefines checkpoint metadata libvirt lost; `--redefine-validate` checks the bitmaps in the disks. */
  async redefine(uuid: string, xml: string): Promise<void> {
    const argv = ['env', 'LC_ALL=C', 'virsh', '-c', this.uri, 'checkpoint-create', '--domain', uuid, '--xmlfile', '/dev/stdin', '--redefine', '--redefine-validate'];
    const r = await this.exec(argv, { timeoutMs: this.timeoutMs, stdin: xml });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: 'checkpoint-create', domain: uuid });
  }

  /** Deletes a checkpoint (its bitmap is merged into its parent's: later incrementals stay correct). */
  async deleteCheckpoint(uuid: string, name: string, metadataOnly = false): Promise<void> {
    await this.virsh(['checkpoint-delete', '--domain', uuid, '--checkpointname', name, ...(metadataOnly ? ['--metadata'] : [])], uuid);
  }

  private async virsh(args: string[], domain: string, timeoutMs = this.timeoutMs): Promise<string> {
    const r = await this.exec(['env', 'LC_ALL=C', 'virsh', '-c', this.uri, ...args], { timeoutMs });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: args[0] ?? '', domain });
    return r.stdout;
  }
}
