/** Pure parsing of `virsh dumpxml` output into what backups need. */
import { XMLParser } from 'fast-xml-parser';
import { LibvirtErrorCode, libvirtError } from './libvirt-errors.js';

export interface BackingImage {
  /** `file`, `block`, `network`, … */
  type: string;
  /** File path or block device; null for network/volume sources. */
  path: string | null;
  /** Image format (`qcow2`, `raw`), null when libvirt did not record it. */
  format: string | null;
}

export interface DomainDisk {
  /** Guest device name: `vda`, `sda`. */
  target: string;
  bus: string | null;
  /** Disk source type: `file`, `block`, `network`, `volume`, `nvme`… Backups handle file and block. */
  type: string;
  /** File path (type file) or device node (type block); null otherwise. */
  path: string | null;
  /** For sources without a path: `rbd:pool/image`, `volume:pool/vol`… */
  sourceDescription: string | null;
  /** driver type: `qcow2`, `raw`. */
  format: string | null;
  readonly: boolean;
  shareable: boolean;
  /**
   * The images below the top one, nearest first. libvirt only reports the chain of a running
   * domain (or one configured explicitly): see `backingChainKnown`.
   */
  backingChain: BackingImage[];
  /** True when the XML states the whole chain (it ends with an empty `<backingStore/>`). */
  backingChainKnown: boolean;
}

export interface SysinfoEntry {
  /** `system`, `bios`, `baseBoard`, `chassis`, `oemStrings`… */
  section: string;
  /** Entry name (`manufacturer`, `product`); null for oemStrings. */
  name: string | null;
  value: string;
}

export interface GuestAgentChannel {
  /** Only in the XML of a running domain: whether an agent is listening in the guest. */
  state: 'connected' | 'disconnected' | null;
}

export interface DomainInfo {
  uuid: string;
  name: string;
  /** `kvm` or `qemu` (TCG). */
  domainType: string;
  /** libvirt's runtime id: present only when the domain runs. */
  id: number | null;
  vcpus: number;
  vcpusCurrent: number;
  memoryBytes: number;
  currentMemoryBytes: number;
  disks: DomainDisk[];
  sysinfo: SysinfoEntry[];
  /** An Apache CloudStack instance: some SMBIOS entry mentions CloudStack. */
  cloudStack: boolean;
  /** The org.qemu.guest_agent.0 channel, or null when the domain has none. */
  guestAgent: GuestAgentChannel | null;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Everything stays a string: a VM named "0012" must not become 12.
  parseTagValue: false,
  parseAttributeValue: false,
  // Names may have leading/trailing spaces; whitespace-only text between elements is ignored below.
  trimValues: false,
  processEntities: true,
  // An (empty) object enables numeric references (&#36;) without any HTML named entity; the
  // typings only say boolean, `true` would also decode &nbsp; and friends, which XML has not.
  htmlEntities: {} as unknown as boolean,
});

type Node = Record<string, unknown>;

function asArray(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function asNode(v: unknown): Node | null {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Node;
  // `<backingStore/>` parses as "": an element without attributes or children.
  if (v === '') return {};
  return null;
}

function attr(n: Node | null, name: string): string | null {
  const v = n?.[`@_${name}`];
  return typeof v === 'string' ? v : null;
}

/** Text content of an element (a plain string, or `#text` when it has attributes). */
function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  const n = asNode(v);
  const t = n?.['#text'];
  return typeof t === 'string' ? t : t === undefined ? (n ? '' : null) : String(t);
}

/** First child element `name`, raw: a string for a text-only element, else a node. */
function first(n: Node | null, name: string): unknown {
  return asArray(n?.[name])[0];
}

function child(n: Node | null, name: string): Node | null {
  return asNode(first(n, name));
}

const UNIT_POWERS: Record<string, number> = { b: 0, k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/**
 * libvirt's scaled integers: `b`/`bytes`; `k`, `KiB` = 1024; `KB` = 1000; likewise M, G, T, P, E.
 * The unit defaults to KiB for memory.
 */
export function scaledToBytes(value: string, unit: string | null, defaultUnit = 'KiB'): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw libvirtError(LibvirtErrorCode.BAD_XML, `not an integer: ${JSON.stringify(value)}`);
  }
  const u = (unit ?? defaultUnit).trim().toLowerCase();
  if (u === 'bytes' || u === 'b') return n;
  const m = /^([kmgtpe])(ib|b)?$/.exec(u);
  const power = m ? UNIT_POWERS[m[1]!] : undefined;
  if (!m || power === undefined) throw libvirtError(LibvirtErrorCode.BAD_XML, `unknown unit ${JSON.stringify(unit)}`);
  const base = m[2] === 'b' ? 1000 : 1024;
  const bytes = n * base ** power;
  if (!Number.isSafeInteger(bytes)) throw libvirtError(LibvirtErrorCode.BAD_XML, `size too large: ${value} ${unit}`);
  return bytes;
}

function sourceOf(type: string, source: Node | null): { path: string | null; description: string | null } {
  if (!source) return { path: null, description: null };
  if (type === 'file') return { path: attr(source, 'file'), description: null };
  if (type === 'block') return { path: attr(source, 'dev'), description: null };
  if (type === 'network') {
    const protocol = attr(source, 'protocol') ?? 'network';
    return { path: null, description: `${protocol}:${attr(source, 'name') ?? ''}` };
  }
  if (type === 'volume') return { path: null, description: `volume:${attr(source, 'pool') ?? ''}/${attr(source, 'volume') ?? ''}` };
  if (type === 'dir') return { path: attr(source, 'dir'), description: null };
  return { path: null, description: type };
}

function backingChainOf(disk: Node): { chain: BackingImage[]; known: boolean } {
  const chain: BackingImage[] = [];
  let bs = child(disk, 'backingStore');
  // Depth guard: the XML comes from a remote host.
  for (let depth = 0; bs && depth < 256; depth++) {
    const type = attr(bs, 'type');
    if (type === null) return { chain, known: true }; // `<backingStore/>`: end of the chain
    const src = sourceOf(type, child(bs, 'source'));
    chain.push({ type, path: src.path ?? src.description, format: attr(child(bs, 'format'), 'type') });
    bs = child(bs, 'backingStore');
  }
  return { chain, known: false };
}

function parseDisk(d: Node): DomainDisk | null {
  if ((attr(d, 'device') ?? 'disk') !== 'disk') return null; // cdrom, floppy, lun
  const target = attr(child(d, 'target'), 'dev');
  if (target === null) return null;
  const type = attr(d, 'type') ?? 'file';
  const src = sourceOf(type, child(d, 'source'));
  const { chain, known } = backingChainOf(d);
  return {
    target,
    bus: attr(child(d, 'target'), 'bus'),
    type,
    path: src.path,
    sourceDescription: src.description,
    format: attr(child(d, 'driver'), 'type'),
    readonly: d.readonly !== undefined,
    shareable: d.shareable !== undefined,
    backingChain: chain,
    backingChainKnown: known,
  };
}

function parseSysinfo(domain: Node): SysinfoEntry[] {
  const out: SysinfoEntry[] = [];
  for (const si of asArray(domain.sysinfo)) {
    const s = asNode(si);
    if (!s || attr(s, 'type') !== 'smbios') continue;
    for (const [section, content] of Object.entries(s)) {
      if (section.startsWith('@_') || section === '#text') continue;
      for (const sec of asArray(content)) {
        for (const e of asArray(asNode(sec)?.entry)) {
          const value = text(e);
          if (value !== null) out.push({ section, name: attr(asNode(e), 'name'), value });
        }
      }
    }
  }
  return out;
}

function parseGuestAgent(devices: Node | null): GuestAgentChannel | null {
  for (const c of asArray(devices?.channel)) {
    const target = child(asNode(c), 'target');
    if (attr(target, 'name') === 'org.qemu.guest_agent.0') {
      const state = attr(target, 'state');
      return { state: state === 'connected' || state === 'disconnected' ? state : null };
    }
  }
  return null;
}

function int(v: string | null, what: string): number {
  if (v === null || !/^\d+$/.test(v.trim())) throw libvirtError(LibvirtErrorCode.BAD_XML, `domain XML has no valid ${what}`);
  return Number(v.trim());
}

export function parseDomainXml(xml: string): DomainInfo {
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (err) {
    throw libvirtError(LibvirtErrorCode.BAD_XML, `invalid domain XML: ${(err as Error).message}`, undefined, err);
  }
  const domain = child(doc, 'domain');
  if (!domain) throw libvirtError(LibvirtErrorCode.BAD_XML, 'not a libvirt domain XML (no <domain>)');
  const name = text(first(domain, 'name'));
  const uuid = text(first(domain, 'uuid'))?.trim().toLowerCase() ?? null;
  if (!name || !uuid) throw libvirtError(LibvirtErrorCode.BAD_XML, 'domain XML lacks <name> or <uuid>');

  const memory = first(domain, 'memory');
  const memoryBytes = scaledToBytes(text(memory) ?? '', attr(asNode(memory), 'unit'));
  const current = first(domain, 'currentMemory');
  const vcpuRaw = first(domain, 'vcpu');
  const vcpu = asNode(vcpuRaw);
  const vcpus = int(text(vcpuRaw), '<vcpu>');
  const idAttr = attr(domain, 'id');
  const devices = child(domain, 'devices');
  const sysinfo = parseSysinfo(domain);

  return {
    uuid,
    name,
    domainType: attr(domain, 'type') ?? 'unknown',
    id: idAttr !== null && /^\d+$/.test(idAttr) ? Number(idAttr) : null,
    vcpus,
    vcpusCurrent: attr(vcpu, 'current') !== null ? int(attr(vcpu, 'current'), 'vcpu current') : vcpus,
    memoryBytes,
    currentMemoryBytes: current !== undefined ? scaledToBytes(text(current) ?? '', attr(asNode(current), 'unit')) : memoryBytes,
    disks: asArray(devices?.disk)
      .map((d) => asNode(d))
      .filter((d): d is Node => d !== null)
      .map(parseDisk)
      .filter((d): d is DomainDisk => d !== null),
    sysinfo,
    cloudStack: sysinfo.some((e) => /cloudstack/i.test(e.value)),
    guestAgent: parseGuestAgent(devices),
  };
}
