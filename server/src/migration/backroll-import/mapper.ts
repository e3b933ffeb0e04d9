/**
 * BackROLL rows → Backroll create requests and a report (pure: no I/O, no clock).
 *
 * References between resources go by the Backroll name they get here, so an import run
 * again (or after an operator created a missing resource by hand under that name) links
 * to what already exists. Secrets (CloudStack keys, Slack URLs) go into the requests only,
 * never into the report.
 */
import path from 'node:path';
import { AppError } from '../../errors.js';
import type { ConnectorInput } from '../../connectors/connector.service.js';
import type { HookInput } from '../../hooks/hook.service.js';
import type { HookEvent } from '../../hooks/hook.repository.js';
import type { HostInput } from '../../hosts/host.service.js';
import { checkAddress, checkTags, checkUsername } from '../../hosts/host.rules.js';
import type { PolicyInput } from '../../policies/policy.service.js';
import { checkTimeZone } from '../../policies/policy.rules.js';
import type { StorageInput } from '../../storages/storage.service.js';
import { checkHttpUrl } from '../../shared/urls.js';
import { convertSchedule } from './schedule.js';
import type { BackrollSource } from './source.js';

export type ResourceKind = 'storage' | 'hook' | 'connector' | 'policy' | 'pool' | 'host';
export const KINDS: ResourceKind[] = ['storage', 'hook', 'connector', 'policy', 'pool', 'host'];

/** One BackROLL resource and the Backroll resource it becomes (no secret in `fields`). */
export interface MappedItem {
  kind: ResourceKind;
  name: string;
  sourceId: string;
  fields: Record<string, unknown>;
  notes: string[];
}

/** Something BackROLL had that Backroll does not get (a whole resource or one field), and why. */
export interface NotMappedItem {
  kind: string;
  name: string;
  sourceId?: string;
  field?: string;
  reason: string;
}

export interface OperatorAction {
  id: string;
  title: string;
  detail: string;
  command?: string;
  targets?: string[];
}

/** A create request; references to other resources by their Backroll name. */
export type CreateRequest =
  | { kind: 'storage'; request: StorageInput }
  | { kind: 'hook'; request: HookInput }
  | { kind: 'connector'; request: ConnectorInput }
  | { kind: 'policy'; request: Omit<PolicyInput, 'storageId' | 'hookId'>; storage: string; hook: string | null }
  | { kind: 'pool'; request: { name: string }; policy: string; connector: string | null }
  | { kind: 'host'; request: Omit<HostInput, 'poolId'>; pool: string };

export interface PlannedResource {
  item: MappedItem;
  create: CreateRequest;
}

export interface ImportPlan {
  /** In creation order: storages, hooks, connectors, policies, pools, hosts. */
  resources: PlannedResource[];
  notMapped: NotMappedItem[];
  operatorActions: OperatorAction[];
}

export interface MapOptions {
  /** Time zone of the schedules: BackROLL's Celery ran them in Europe/Paris. */
  timezone: string;
  /** Keep BackROLL's enabled flag; by default policies are imported disabled (both schedulers must not run at once). */
  keepEnabled: boolean;
  now: Date;
  /** The command that authorises Backroll's SSH keys on a host, when known (from the data dir). */
  installCommand?: string;
}

export const DEFAULT_TIMEZONE = 'Europe/Paris';
/** BackROLL notified Slack of single-VM backups and disk restores, succeeded or failed. */
export const HOOK_EVENTS: HookEvent[] = ['backup.succeeded', 'backup.failed', 'restore.succeeded', 'restore.failed'];
const NAME_MAX = 255;
const DESCRIPTION_MAX = 2000;

const short = (id: string) => id.slice(0, 8);

/** Backroll names are unique per kind; BackROLL's were not (and pools' could be null). */
function namer(kind: ResourceKind) {
  const taken = new Set<string>();
  return (raw: string | null, sourceId: string, notes: string[]): string => {
    let name = (raw ?? '').trim().replace(/\s+/g, ' ');
    if (name === '') {
      name = `${kind}-${short(sourceId)}`;
      notes.push(`had no name in BackROLL; named "${name}"`);
    } else if (raw !== name) {
      notes.push(`name ${JSON.stringify(raw)} written without extra spaces`);
    }
    if (name.length > NAME_MAX) {
      name = name.slice(0, NAME_MAX - 9).trimEnd();
      notes.push(`name shortened to ${NAME_MAX} characters`);
    }
    if (taken.has(name)) {
      const unique = `${name.slice(0, NAME_MAX - 9)}-${short(sourceId)}`;
      notes.push(`another BackROLL ${kind} is named "${name}"; this one is "${unique}"`);
      name = unique;
    }
    taken.add(name);
    return name;
  };
}

function urlProblem(value: string, what: string): string | null {
  if (value.length < 8 || value.length > 2048) return `its ${what} is not a URL of 8 to 2048 characters`;
  try {
    checkHttpUrl(value, 'IMPORT.URL_INVALID', what);
    return null;
  } catch (err) {
    if (err instanceof AppError) return err.message;
    throw err;
  }
}

const CLOUDSTACK_KEY = /^\S{8,512}$/;

export function mapBackroll(src: BackrollSource, opts: MapOptions): ImportPlan {
  const tz = checkTimeZone(opts.timezone);
  if (!tz.ok) throw new AppError('invalid', 'IMPORT.TIMEZONE_INVALID', tz.message);
  const resources: PlannedResource[] = [];
  const notMapped: NotMappedItem[] = [];
  const add = (item: MappedItem, create: CreateRequest) => resources.push({ item, create });
  /** BackROLL id → the Backroll name it has (or would have): references follow it. */
  const names = { storage: new Map<string, string>(), hook: new Map<string, string>(), connector: new Map<string, string>(), policy: new Map<string, string>(), pool: new Map<string, string>() };
  const mappedHooks = new Set<string>();

  const storageName = namer('storage');
  for (const s of src.storages) {
    const notes: string[] = [];
    const name = storageName(s.name, s.id, notes);
    names.storage.set(s.id, name);
    if (!path.posix.isAbsolute(s.path)) {
      notMapped.push({ kind: 'storage', name, sourceId: s.id, reason: `its path "${s.path}" is not absolute; Backroll needs the directory where the backup storage is mounted` });
      continue;
    }
    notes.push('VM repositories stay at <path>/<VM name>, as in BackROLL');
    add({ kind: 'storage', name, sourceId: s.id, fields: { path: s.path }, notes }, { kind: 'storage', request: { name, path: s.path } });
  }

  const hookName = namer('hook');
  for (const h of src.hooks) {
    const notes: string[] = [];
    const name = hookName(h.name, h.id, notes);
    names.hook.set(h.id, name);
    if (h.provider !== null && h.provider.toLowerCase() !== 'slack') {
      notMapped.push({ kind: 'hook', name, sourceId: h.id, reason: `its provider "${h.provider}" is not one BackROLL sent to (only Slack)` });
      continue;
    }
    const problem = urlProblem(h.value.trim(), 'Slack webhook URL');
    if (problem) {
      notMapped.push({ kind: 'hook', name, sourceId: h.id, reason: problem });
      continue;
    }
    mappedHooks.add(h.id);
    notes.push('the Slack URL is stored encrypted (never shown)');
    add(
      { kind: 'hook', name, sourceId: h.id, fields: { kind: 'slack', events: HOOK_EVENTS }, notes },
      { kind: 'hook', request: { name, kind: 'slack', url: h.value.trim(), events: [...HOOK_EVENTS] } },
    );
  }

  const connectorName = namer('connector');
  for (const c of src.connectors) {
    const notes: string[] = [];
    const name = connectorName(c.name, c.id, notes);
    names.connector.set(c.id, name);
    const endpointUrl = c.url.trim();
    const problem = urlProblem(endpointUrl, 'CloudStack endpoint URL');
    const badKey = !CLOUDSTACK_KEY.test(c.login) ? 'API key' : !CLOUDSTACK_KEY.test(c.password) ? 'secret key' : null;
    if (problem || badKey) {
      notMapped.push({ kind: 'connector', name, sourceId: c.id, reason: problem ?? `its ${badKey} is not a CloudStack key (8 to 512 characters, no spaces)` });
      continue;
    }
    notes.push('API and secret keys are stored encrypted (never shown); TLS certificates are verified');
    add(
      { kind: 'connector', name, sourceId: c.id, fields: { endpointUrl, verifyTls: true }, notes },
      { kind: 'connector', request: { name, kind: 'cloudstack', endpointUrl, apiKey: c.login, secretKey: c.password, verifyTls: true } },
    );
  }

  const policyName = namer('policy');
  const disabledOnImport: string[] = [];
  const inexact: string[] = [];
  const byHand: string[] = [];
  for (const p of src.policies) {
    const notes: string[] = [];
    const name = policyName(p.name, p.id, notes);
    names.policy.set(p.id, name);
    const skip = (reason: string, field?: string) => {
      notMapped.push({ kind: 'policy', name, sourceId: p.id, ...(field ? { field } : {}), reason });
      byHand.push(`policy "${name}"`);
    };
    const storage = p.storageId === null ? undefined : names.storage.get(p.storageId);
    if (storage === undefined) {
      skip(p.storageId === null ? 'it has no storage in BackROLL' : `its storage (BackROLL id ${p.storageId}) does not exist in BackROLL`, 'storage');
      continue;
    }
    const conv = convertSchedule(p.schedule ?? '', opts.timezone, opts.now);
    if (!conv.ok) {
      skip(conv.reason, 'schedule');
      continue;
    }
    notes.push(...conv.notes.map((n) => `schedule: ${n}`));
    if (!conv.exact) {
      notMapped.push({ kind: 'policy', name, sourceId: p.id, field: 'schedule', reason: conv.reason });
      inexact.push(`policy "${name}": "${p.schedule}" → "${conv.schedule}"`);
    }
    const r = p.retention;
    const clamp = (v: number, field: string) => {
      if (Number.isInteger(v) && v >= 0) return v;
      notes.push(`retention ${field} ${v} read as 0, as BackROLL's prune did`);
      return 0;
    };
    const retention = { daily: clamp(r.day, 'day'), weekly: clamp(r.week, 'week'), monthly: clamp(r.month, 'month'), yearly: clamp(r.year, 'year') };
    if (retention.daily + retention.weekly + retention.monthly + retention.yearly === 0) {
      skip('its retention is 0 day, 0 week, 0 month, 0 year: BackROLL then never pruned (kept every backup); Backroll needs a retention that keeps something', 'retention');
      continue;
    }
    let hook: string | null = null;
    if (p.hookId !== null) {
      if (mappedHooks.has(p.hookId)) hook = names.hook.get(p.hookId)!;
      else notMapped.push({ kind: 'policy', name, sourceId: p.id, field: 'externalhook', reason: `its hook (BackROLL id ${p.hookId}) is not imported; the policy is created without notifications` });
    }
    let description = (p.description ?? '').trim();
    if (description.length > DESCRIPTION_MAX) {
      description = description.slice(0, DESCRIPTION_MAX);
      notes.push(`description shortened to ${DESCRIPTION_MAX} characters`);
    }
    const enabled = opts.keepEnabled ? p.enabled : false;
    if (p.enabled && !enabled) {
      notes.push('enabled in BackROLL, imported disabled');
      disabledOnImport.push(name);
    }
    notes.push('quiesce required, lz4, unencrypted: as BackROLL (it always asked libvirt to quiesce through the guest agent)');
    const request = { name, description, schedule: conv.schedule, timezone: opts.timezone, retention, enabled, quiesce: 'required' as const, compression: 'lz4', encryption: 'none' as const };
    add(
      { kind: 'policy', name, sourceId: p.id, fields: { schedule: conv.schedule, backrollSchedule: p.schedule, timezone: opts.timezone, retention, storage, hook, enabled, quiesce: 'required' }, notes },
      { kind: 'policy', request, storage, hook },
    );
  }

  const poolName = namer('pool');
  for (const p of src.pools) {
    const notes: string[] = [];
    const name = poolName(p.name, p.id, notes);
    names.pool.set(p.id, name);
    const policy = p.policyId === null ? undefined : names.policy.get(p.policyId);
    if (policy === undefined) {
      notMapped.push({ kind: 'pool', name, sourceId: p.id, field: 'policy', reason: p.policyId === null ? 'it has no policy in BackROLL; Backroll pools need one' : `its policy (BackROLL id ${p.policyId}) does not exist in BackROLL` });
      byHand.push(`pool "${name}"`);
      continue;
    }
    let connector: string | null = null;
    if (p.connectorId !== null) {
      connector = names.connector.get(p.connectorId) ?? null;
      if (connector === null) {
        notMapped.push({ kind: 'pool', name, sourceId: p.id, field: 'connector', reason: `its connector (BackROLL id ${p.connectorId}) does not exist in BackROLL; the pool is created without one` });
      }
    }
    add({ kind: 'pool', name, sourceId: p.id, fields: { policy, connector }, notes }, { kind: 'pool', request: { name }, policy, connector });
  }

  const hostName = namer('host');
  const hostTargets: string[] = [];
  for (const h of src.hosts) {
    const notes: string[] = [];
    const name = hostName(h.hostname, h.id, notes);
    const skip = (reason: string, field?: string) => notMapped.push({ kind: 'host', name, sourceId: h.id, ...(field ? { field } : {}), reason });
    const pool = h.poolId === null ? undefined : names.pool.get(h.poolId);
    if (pool === undefined) {
      skip(h.poolId === null ? 'it is in no pool in BackROLL; Backroll hosts belong to a pool' : `its pool (BackROLL id ${h.poolId}) does not exist in BackROLL`, 'pool');
      continue;
    }
    const address = checkAddress(h.ipaddress);
    if (!address.ok) {
      skip(address.message, 'ipaddress');
      continue;
    }
    let username = (h.username ?? '').trim();
    if (username === '') {
      username = 'root';
      notes.push('no SSH user in BackROLL (it never connected to this host): root assumed');
    }
    const user = checkUsername(username);
    if (!user.ok) {
      skip(user.message, 'username');
      continue;
    }
    const tags: string[] = [];
    for (const t of (h.tags ?? '').split(/[\s,;]+/).filter(Boolean)) {
      if (checkTags([t]).ok) tags.push(t);
      else notMapped.push({ kind: 'host', name, sourceId: h.id, field: 'tags', reason: `tag "${t}" is not a Backroll tag (up to 64 letters, digits, . _ : = -)` });
    }
    if (!h.ssh) notes.push('BackROLL had not installed its key on this host');
    notes.push('libvirt qemu:///system on the host (BackROLL: qemu+ssh://user@host/system), SSH port 22');
    hostTargets.push(`${username}@${address.value} (host "${name}", port 22)`);
    const request = { name, address: address.value, sshPort: 22, username, tags: [...new Set(tags)], libvirtUri: 'qemu:///system' };
    add({ kind: 'host', name, sourceId: h.id, fields: { address: address.value, sshPort: 22, username, tags: request.tags, libvirtUri: 'qemu:///system', pool }, notes }, { kind: 'host', request, pool });
  }

  if (src.userCount > 0) {
    notMapped.push({ kind: 'user', name: `${src.userCount} account(s)`, reason: "BackROLL's own login accounts are not imported: Backroll's accounts live in its OpenID provider (or yours)" });
  }

  const operatorActions: OperatorAction[] = [];
  if (hostTargets.length) {
    operatorActions.push({
      id: 'authorize-ssh-key',
      title: "Authorise Backroll's SSH public keys on every imported host",
      detail:
        "Backroll uses its own SSH keys (not BackROLL's). Run the install command once on each host, as the user listed: " +
        'it appends the keys to ~/.ssh/authorized_keys (idempotent). The command is also returned by GET /api/v2/ssh/public-keys ' +
        '(field installCommand; e.g. curl -s -H "Authorization: Bearer $TOKEN" "$BACKROLL_URL/api/v2/ssh/public-keys" | jq -r .installCommand), ' +
        "and the keys are in <data dir>/ssh/id_ed25519.pub and id_rsa.pub.",
      ...(opts.installCommand ? { command: opts.installCommand } : {}),
      targets: hostTargets,
    });
    operatorActions.push({
      id: 'connect-hosts',
      title: 'Connect each host, then refresh the inventory',
      detail:
        'POST /api/v2/hosts/{id}/connect pins the host key on first use and checks libvirt; then POST /api/v2/virtual-machines/refresh lists the VMs. ' +
        'A HOST.AUTH_FAILED answer means the key is not authorised yet.',
    });
  }
  if (disabledOnImport.length) {
    operatorActions.push({
      id: 'enable-policies',
      title: "Stop BackROLL's scheduler, then enable the policies",
      detail:
        'Policies are imported disabled so BackROLL and Backroll never back up the same VMs into the same repositories at once. ' +
        'Stop BackROLL (its Celery beat and workers), then PATCH /api/v2/policies/{id} {"enabled": true} for each. ' +
        '(--keep-enabled imports BackROLL\'s enabled flag as is.)',
      targets: disabledOnImport,
    });
  }
  if (inexact.length) {
    operatorActions.push({
      id: 'review-schedules',
      title: 'Review the schedules that could not be converted exactly',
      detail: 'They now run on every day BackROLL ran them and on more; PATCH /api/v2/policies/{id} {"schedule": "..."} to narrow them.',
      targets: inexact,
    });
  }
  if (byHand.length) {
    operatorActions.push({
      id: 'create-by-hand',
      title: 'Create what could not be imported, under the same name, and run the import again',
      detail: 'The import links to resources that already exist by name, so the pools and hosts that depend on them are imported on the next run.',
      targets: byHand,
    });
  }
  if (resources.some((r) => r.item.kind === 'connector')) {
    operatorActions.push({
      id: 'test-connectors',
      title: 'Test the CloudStack connectors',
      detail: 'POST /api/v2/connectors/{id}/test; an endpoint behind a private CA needs its certificate (PATCH caCertificate) or verifyTls false.',
    });
  }
  if (resources.some((r) => r.item.kind === 'storage')) {
    operatorActions.push({
      id: 'reindex',
      title: "List BackROLL's existing backups as restore points",
      detail:
        'Mount each storage at the same path on the Backroll server. Once the hosts are connected and the inventory refreshed, run ' +
        '`backroll repair reindex` (when your Backroll has it): it reads the borg repositories <storage>/<VM name> BackROLL wrote.',
    });
  }
  return { resources, notMapped, operatorActions };
}
