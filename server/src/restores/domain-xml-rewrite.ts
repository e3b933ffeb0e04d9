/**
 * A restored VM's domain XML, rewritten for "restore as a new VM" (pure): new name and uuid,
 * disks at their new paths, no MAC addresses (libvirt generates fresh ones, so the copy never
 * clashes with the original on the network), no runtime-only parts of a live XML.
 * Element order, unknown elements and comments are kept; escaping is the XML builder's.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { invalid } from '../errors.js';

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  // numeric references only, no HTML named entities (see domain-xml.ts)
  htmlEntities: {} as unknown as boolean,
  commentPropName: '#comment',
});
const builder = new XMLBuilder({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  processEntities: true,
  suppressEmptyNode: true,
  commentPropName: '#comment',
});

/** One element of the preserve-order tree: `{ tag: children[], ':@': attributes }`. */
type El = Record<string, unknown>;

function tagOf(e: El): string | null {
  for (const k of Object.keys(e)) if (k !== ':@') return k;
  return null;
}
function children(e: El): El[] {
  const t = tagOf(e);
  const c = t ? e[t] : undefined;
  return Array.isArray(c) ? (c as El[]) : [];
}
function attrs(e: El): Record<string, string> {
  const a = e[':@'];
  if (!a || typeof a !== 'object') {
    const fresh: Record<string, string> = {};
    e[':@'] = fresh;
    return fresh;
  }
  return a as Record<string, string>;
}
function find(list: El[], tag: string): El | undefined {
  return list.find((e) => tagOf(e) === tag);
}
function setText(e: El, value: string): void {
  const t = tagOf(e)!;
  e[t] = [{ '#text': value }];
}

export interface RewriteOptions {
  name: string;
  uuid: string;
  /** New source path per disk target (`vda` → `/path/new.qcow2`). Disks not listed keep theirs. */
  diskPaths: Record<string, string>;
}

export function rewriteDomainXml(xml: string, opts: RewriteOptions): string {
  let doc: El[];
  try {
    doc = parser.parse(xml) as El[];
  } catch (err) {
    throw invalid('RESTORE.DOMAIN_XML_INVALID', `the restore point's domain XML cannot be parsed: ${(err as Error).message}`);
  }
  const domain = find(doc, 'domain');
  if (!domain) throw invalid('RESTORE.DOMAIN_XML_INVALID', "the restore point's domain XML has no <domain>");
  const a = attrs(domain);
  // A live XML carries the runtime id; a definition must not.
  delete a['@_id'];
  const top = children(domain);
  const name = find(top, 'name');
  if (!name) throw invalid('RESTORE.DOMAIN_XML_INVALID', 'the domain XML has no <name>');
  setText(name, opts.name);
  const uuid = find(top, 'uuid');
  if (uuid) setText(uuid, opts.uuid);
  else top.splice(top.indexOf(name) + 1, 0, { uuid: [{ '#text': opts.uuid }] });

  const devices = find(top, 'devices');
  const seen = new Set<string>();
  if (devices) {
    const list = children(devices);
    for (const dev of list) {
      const tag = tagOf(dev);
      if (tag === 'disk') {
        const dc = children(dev);
        const target = find(dc, 'target');
        const t = target ? attrs(target)['@_dev'] : undefined;
        // libvirt finds the chain from the image itself; a live XML's chain would be stale.
        for (let i = dc.length - 1; i >= 0; i--) if (tagOf(dc[i]!) === 'backingStore') dc.splice(i, 1);
        if (t && opts.diskPaths[t] !== undefined) {
          const source = find(dc, 'source');
          if (!source) throw invalid('RESTORE.DOMAIN_XML_INVALID', `disk ${t} has no <source> in the domain XML`);
          const sa = attrs(source);
          const type = attrs(dev)['@_type'] ?? 'file';
          for (const k of Object.keys(sa)) if (k !== '@_startupPolicy') delete sa[k];
          if (type === 'block') sa['@_dev'] = opts.diskPaths[t]!;
          else {
            attrs(dev)['@_type'] = 'file';
            sa['@_file'] = opts.diskPaths[t]!;
          }
          seen.add(t);
        }
      } else if (tag === 'interface') {
        const ic = children(dev);
        for (let i = ic.length - 1; i >= 0; i--) {
          // the MAC (libvirt makes a new one) and runtime-only names of the original's devices
          if (['mac', 'target', 'alias'].includes(tagOf(ic[i]!) ?? '')) ic.splice(i, 1);
        }
      }
    }
  }
  const missing = Object.keys(opts.diskPaths).filter((t) => !seen.has(t));
  if (missing.length > 0) throw invalid('RESTORE.DOMAIN_XML_INVALID', `the domain XML has no disk ${missing.join(', ')}`);
  // The original's security label and runtime ids would clash with it.
  for (let i = top.length - 1; i >= 0; i--) if (tagOf(top[i]!) === 'seclabel') top.splice(i, 1);
  return builder.build(doc) as string;
}
