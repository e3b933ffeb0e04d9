/**
 * libvirt through `virsh -c <uri> …` run on the host (over SSH in production).
 *
 * Domains are addressed by UUID wherever we choose the identifier: a VM name (possibly hostile)
 * is never put on a command line by `listDomains`; names come out of the XML, entity-decoded.
 * Every command runs under `env LC_ALL=C` so states and errors are not translated.
 */
import type { AppError } from '../../errors.js';
import type { SshExecutor } from '../ssh/ssh-client.js';
import { parseDomainXml, type DomainDisk, type DomainInfo } from './domain-xml.js';
import { LibvirtErrorCode, libvirtError } from './libvirt-errors.js';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv on the host. `SshExecutor.exec` (or `SshPool.executor(id).exec`) fits as is. */
export type CommandRunner = (argv: readonly string[], opts: { timeoutMs: number }) => Promise<CommandResult>;

export type DomainState =
  | 'running'
  | 'idle'
  | 'paused'
  | 'in shutdown'
  | 'shut off'
  | 'crashed'
  | 'pmsuspended'
  | 'no state'
  | 'unknown';

const STATES: ReadonlySet<string> = new Set(['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended', 'no state']);

export interface ListedDomain {
  uuid: string;
  name: string;
  state: DomainState;
}

export interface LibvirtVersion {
  /** e.g. `9.0.0` (virsh's libvirt library). */
  library: string | null;
  /** The daemon answering at the URI. */
  daemon: string | null;
  /** e.g. `QEMU 7.2.0`. */
  hypervisor: string | null;
}

export interface GuestAgentStatus {
  /** The domain has an org.qemu.guest_agent.0 channel. */
  configured: boolean;
  /** Channel state from the live XML (running domains only). */
  channelState: 'connected' | 'disconnected' | null;
  /** guest-ping answered; null when not tried (no channel, or the domain is not running). */
  responding: boolean | null;
}

export interface VirshOptions {
  /** Per virsh command. Default 30 s. */
  timeoutMs?: number;
  /** guest-ping wait, seconds. Default 2. */
  agentTimeoutSeconds?: number;
  /** Parallel per-domain reads while listing. Default 4 (below the SSH pool's channel limit). */
  concurrency?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FailureContext {
  uri: string;
  /** virsh command name, e.g. `dumpxml`. */
  subcommand: string;
  /** The domain identifier the command was about, if any. */
  domain?: string;
}

const NOT_INSTALLED = /virsh: (command )?not found|env: .?virsh.?: No such file/i;
const DOWN =
  /failed to connect to the hypervisor|Failed to connect socket|no connection driver available|unexpected \w+ URI path|Cannot recv data|End of file while reading data|authentication (failed|unavailable)/i;
const NO_DOMAIN = /failed to get domain|Domain not found|no domain with matching/i;

/** Decide what a failed virsh run means (pure). */
export function classifyVirshFailure(r: CommandResult, ctx: FailureContext): AppError {
  const stderr = r.stderr.trim();
  const details = { uri: ctx.uri, subcommand: ctx.subcommand, exitCode: r.code, stderr };
  if (r.code === 127 || NOT_INSTALLED.test(stderr)) {
    return libvirtError(LibvirtErrorCode.LIBVIRT_DOWN, `virsh is not installed on the host (${ctx.uri}): ${firstError(stderr)}`, details);
  }
  if (DOWN.test(stderr)) {
    return libvirtError(LibvirtErrorCode.LIBVIRT_DOWN, `libvirt does not answer at ${ctx.uri}: ${firstError(stderr)}`, details);
  }
  if (NO_DOMAIN.test(stderr)) {
    const which = ctx.domain !== undefined ? `domain ${JSON.stringify(ctx.domain)}` : 'domain';
    return libvirtError(LibvirtErrorCode.VM_NOT_FOUND, `${which} not found at ${ctx.uri}`, { ...details, domain: ctx.domain ?? null });
  }
  return libvirtError(
    LibvirtErrorCode.COMMAND_FAILED,
    `virsh ${ctx.subcommand} failed at ${ctx.uri}: ${firstError(stderr) || `exit code ${r.code}`}`,
    details,
  );
}

function firstError(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^error:\s*/, '').trim())
    .filter((l) => l.length > 0)
    .join('; ');
}

export function parseDomainState(stdout: string): DomainState {
  const s = stdout.split('\n')[0]?.trim() ?? '';
  return STATES.has(s) ? (s as DomainState) : 'unknown';
}

export function parseUuidList(stdout: string): string[] {
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  for (const l of lines) {
    if (!UUID.test(l)) throw libvirtError(LibvirtErrorCode.BAD_OUTPUT, `virsh list --uuid printed ${JSON.stringify(l)}`);
  }
  return lines.map((l) => l.toLowerCase());
}

export function parseVersion(stdout: string): LibvirtVersion {
  const pick = (re: RegExp) => re.exec(stdout)?.[1]?.trim() ?? null;
  return {
    library: pick(/^Using library:\s*libvirt\s+(\S+)/m),
    daemon: pick(/^Running against daemon:\s*(\S+)/m),
    hypervisor: pick(/^Running hypervisor:\s*(.+)$/m),
  };
}

export class Virsh {
  private readonly timeoutMs: number;
  private readonly agentTimeoutSeconds: number;
  private readonly concurrency: number;

  constructor(
    private readonly run: CommandRunner,
    /** The host's libvirt URI: `qemu:///system` by default, `qemu:///session` in the lab. */
    readonly uri: string,
    opts: VirshOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.agentTimeoutSeconds = opts.agentTimeoutSeconds ?? 2;
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
  }

  /** Over SSH: `Virsh.overSsh(pool.executor(hostId), host.libvirtUri)`. */
  static overSsh(executor: Pick<SshExecutor, 'exec'>, uri: string, opts?: VirshOptions): Virsh {
    return new Virsh((argv, o) => executor.exec(argv, o), uri, opts);
  }

  /**
   * Checks libvirt answers at the URI: HOST.LIBVIRT_DOWN otherwise, with virsh's stderr.
   * (A session daemon of libvirt 9.0 prints no "Running against daemon" line: `daemon` is then null.)
   */
  async version(): Promise<LibvirtVersion> {
    const out = await this.virsh(['version']);
    const v = parseVersion(out);
    // `virsh version` can print the library line and still fail to reach the daemon.
    if (v.daemon === null && v.hypervisor === null) {
      throw libvirtError(LibvirtErrorCode.LIBVIRT_DOWN, `libvirt at ${this.uri} did not report a daemon version`, { uri: this.uri, stdout: out });
    }
    return v;
  }

  /** UUIDs of all domains (running or not), one virsh call. */
  async listDomainUuids(): Promise<string[]> {
    return parseUuidList(await this.virsh(['list', '--all', '--uuid']));
  }

  /** All domains (running or not). A domain that disappears while being read is skipped. */
  async listDomains(): Promise<ListedDomain[]> {
    const uuids = await this.listDomainUuids();
    const read = async (uuid: string): Promise<ListedDomain | null> => {
      try {
        const [xml, state] = await Promise.all([this.domainXml(uuid), this.domainState(uuid)]);
        return { uuid, name: parseDomainXml(xml).name, state };
      } catch (err) {
        if ((err as AppError).code === LibvirtErrorCode.VM_NOT_FOUND) return null;
        throw err;
      }
    };
    const found = await mapLimit(uuids, this.concurrency, read);
    return found.filter((d): d is ListedDomain => d !== null);
  }

  /** Live XML of a running domain (with its backing chains), else the persistent one. */
  domainXml(uuidOrName: string, opts: { inactive?: boolean } = {}): Promise<string> {
    return this.virsh(['dumpxml', ...(opts.inactive ? ['--inactive'] : []), '--domain', uuidOrName], uuidOrName);
  }

  async domainInfo(uuidOrName: string): Promise<DomainInfo> {
    return parseDomainXml(await this.domainXml(uuidOrName));
  }

  async domainState(uuidOrName: string): Promise<DomainState> {
    return parseDomainState(await this.virsh(['domstate', '--domain', uuidOrName], uuidOrName));
  }

  /**
   * Disks (device=disk) with their backing chains, from the XML. For a domain that is not
   * running libvirt usually does not report the chain (`backingChainKnown` false): ask qemu-img.
   */
  async diskChain(uuidOrName: string): Promise<DomainDisk[]> {
    return (await this.domainInfo(uuidOrName)).disks;
  }

  /** Snapshot names (libvirt metadata; external `--no-metadata` overlays do not appear). */
  async snapshots(uuidOrName: string): Promise<string[]> {
    const out = await this.virsh(['snapshot-list', '--domain', uuidOrName, '--name'], uuidOrName);
    return out.split('\n').filter((l) => l.length > 0);
  }

  async guestAgent(uuidOrName: string): Promise<GuestAgentStatus> {
    const [info, state] = await Promise.all([this.domainInfo(uuidOrName), this.domainState(uuidOrName)]);
    if (!info.guestAgent) return { configured: false, channelState: null, responding: null };
    const channelState = info.guestAgent.state;
    if (state !== 'running') return { configured: true, channelState, responding: null };
    if (channelState === 'disconnected') return { configured: true, channelState, responding: false };
    const r = await this.run(
      this.argv(['qemu-agent-command', '--domain', info.uuid, '--timeout', String(this.agentTimeoutSeconds), '{"execute":"guest-ping"}']),
      { timeoutMs: this.agentTimeoutSeconds * 1000 + 10_000 },
    );
    if (r.code !== 0) {
      const err = classifyVirshFailure(r, { uri: this.uri, subcommand: 'qemu-agent-command', domain: uuidOrName });
      // Only "the agent did not answer" is an answer; libvirt being down or the VM gone is an error.
      if (err.code === LibvirtErrorCode.LIBVIRT_DOWN || err.code === LibvirtErrorCode.VM_NOT_FOUND) throw err;
      return { configured: true, channelState, responding: false };
    }
    return { configured: true, channelState, responding: true };
  }

  /** The guest agent answers right now (so filesystems can be frozen). */
  async hasGuestAgent(uuidOrName: string): Promise<boolean> {
    return (await this.guestAgent(uuidOrName)).responding === true;
  }

  private argv(args: readonly string[]): string[] {
    return ['env', 'LC_ALL=C', 'virsh', '-c', this.uri, ...args];
  }

  private async virsh(args: readonly string[], domain?: string): Promise<string> {
    const argv = this.argv(args);
    const r = await this.run(argv, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw classifyVirshFailure(r, { uri: this.uri, subcommand: args[0] ?? '', domain });
    return r.stdout;
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
