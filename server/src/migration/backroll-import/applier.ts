/**
 * Creates the planned resources through Backroll's services (every validation applies), in
 * dependency order. A name that already exists in Backroll is reported and left alone, so
 * the import can run again. Without services (dry run) it only predicts: nothing is written.
 */
import type { ConnectorInput } from '../../connectors/connector.service.js';
import type { Db } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { HookInput } from '../../hooks/hook.service.js';
import type { HostInput } from '../../hosts/host.service.js';
import type { PolicyInput } from '../../policies/policy.service.js';
import type { StorageInput } from '../../storages/storage.service.js';
import type { BackrollSource } from './source.js';
import { KINDS, type ImportPlan, type MappedItem, type NotMappedItem, type OperatorAction, type ResourceKind } from './mapper.js';

export type ApplyStatus = 'created' | 'would-create' | 'exists' | 'failed' | 'would-fail' | 'blocked';

export interface ResourceOutcome extends MappedItem {
  status: ApplyStatus;
  /** Backroll id, when it exists or was created. */
  id?: string;
  detail?: string;
}

export interface ImportReport {
  mode: 'dry-run' | 'apply';
  source: { location: string; dialect: string; schemaNotes: string[] };
  summary: Record<ApplyStatus, number>;
  mapped: ResourceOutcome[];
  notMapped: NotMappedItem[];
  operatorActions: OperatorAction[];
}

/** What the import needs of each service: the same calls the API makes. */
export interface ImportTargets {
  storages: { create(input: StorageInput): Promise<{ id: string }> };
  hooks: { create(input: HookInput): Promise<{ id: string }> };
  connectors: { create(input: ConnectorInput): Promise<{ id: string }> };
  policies: { create(input: PolicyInput): Promise<{ id: string }> };
  pools: { create(input: { name: string; policyId: string; connectorId?: string | null }): Promise<{ id: string }> };
  hosts: { create(input: HostInput): Promise<{ id: string }> };
}

export interface ExistingResource {
  id: string;
  name: string;
  /** storages: path; hosts: address — to point out a same-named resource that differs. */
  detail?: string;
}
export type ExistingResources = Record<ResourceKind, Map<string, ExistingResource>>;

export const emptyExisting = (): ExistingResources => Object.fromEntries(KINDS.map((k) => [k, new Map()])) as ExistingResources;

const TABLES = { storage: 'storages', hook: 'hooks', connector: 'connectors', policy: 'policies', pool: 'pools', host: 'hosts' } as const;

/** Names already in Backroll's database (read only). */
export async function loadExisting(db: Db): Promise<ExistingResources> {
  const out = emptyExisting();
  for (const s of await db.selectFrom('storages').select(['id', 'name', 'path']).execute()) out.storage.set(s.name, { id: s.id, name: s.name, detail: s.path });
  for (const h of await db.selectFrom('hosts').select(['id', 'name', 'address']).execute()) out.host.set(h.name, { id: h.id, name: h.name, detail: h.address });
  for (const kind of ['hook', 'connector', 'policy', 'pool'] as const) {
    for (const r of await db.selectFrom(TABLES[kind]).select(['id', 'name']).execute()) out[kind].set(r.name, { id: r.id, name: r.name });
  }
  return out;
}

export interface ApplyOptions {
  existing: ExistingResources;
  /** The services to create through; absent = dry run. */
  targets?: ImportTargets;
  /** Dry run: why a storage path would be refused, or null (read-only check). */
  probePath?: (path: string) => Promise<string | null>;
}

/** The ids the operator needs for the API calls an action names, once the resources exist. */
function withIds(action: OperatorAction, mapped: ResourceOutcome[]): OperatorAction {
  const known = (kind: ResourceKind) => mapped.filter((m) => m.kind === kind && m.id && m.id !== '(new)');
  if (action.id === 'connect-hosts') {
    const hosts = known('host');
    return hosts.length ? { ...action, targets: hosts.map((h) => `${h.name}: POST /api/v2/hosts/${h.id}/connect`) } : action;
  }
  if (action.id === 'enable-policies' && action.targets) {
    const ids = new Map(known('policy').map((p) => [p.name, p.id]));
    return { ...action, targets: action.targets.map((name) => (ids.has(name) ? `${name}: PATCH /api/v2/policies/${ids.get(name)}` : name)) };
  }
  return action;
}

export async function applyPlan(source: BackrollSource, plan: ImportPlan, opts: ApplyOptions): Promise<ImportReport> {
  const existing = opts.existing;
  const dry = opts.targets === undefined;
  const mapped: ResourceOutcome[] = [];
  const idOf = (kind: ResourceKind, name: string | null) => (name === null ? undefined : existing[kind].get(name)?.id);

  for (const { item, create } of plan.resources) {
    const already = existing[item.kind].get(item.name);
    if (already) {
      const differs = already.detail !== undefined && (item.kind === 'storage' ? item.fields.path : item.fields.address) !== already.detail;
      mapped.push({
        ...item,
        status: 'exists',
        id: already.id,
        ...(differs ? { detail: `a ${item.kind} named "${item.name}" already exists with ${item.kind === 'storage' ? 'path' : 'address'} ${already.detail}; left as it is` } : {}),
      });
      continue;
    }
    const missing = (kind: ResourceKind, name: string) => `its ${kind} "${name}" is not in Backroll (not imported, or failed above)`;
    let blocked: string | undefined;
    const notes = [...item.notes];
    let run: (() => Promise<{ id: string }>) | undefined;
    switch (create.kind) {
      case 'storage':
        run = () => opts.targets!.storages.create(create.request);
        break;
      case 'hook':
        run = () => opts.targets!.hooks.create(create.request);
        break;
      case 'connector':
        run = () => opts.targets!.connectors.create(create.request);
        break;
      case 'policy': {
        const storageId = idOf('storage', create.storage);
        const hookId = idOf('hook', create.hook) ?? null;
        if (create.hook !== null && hookId === null) notes.push(`hook "${create.hook}" is not in Backroll: created without notifications`);
        if (!storageId) blocked = missing('storage', create.storage);
        run = () => opts.targets!.policies.create({ ...create.request, storageId: storageId!, hookId });
        break;
      }
      case 'pool': {
        const policyId = idOf('policy', create.policy);
        const connectorId = idOf('connector', create.connector) ?? null;
        if (!policyId) blocked = missing('policy', create.policy);
        else if (create.connector !== null && connectorId === null) blocked = missing('connector', create.connector);
        run = () => opts.targets!.pools.create({ ...create.request, policyId: policyId!, connectorId });
        break;
      }
      case 'host': {
        const poolId = idOf('pool', create.pool);
        if (!poolId) blocked = missing('pool', create.pool);
        run = () => opts.targets!.hosts.create({ ...create.request, poolId: poolId! });
        break;
      }
    }
    if (blocked) {
      mapped.push({ ...item, notes, status: 'blocked', detail: blocked });
      continue;
    }
    if (dry) {
      const problem = create.kind === 'storage' && opts.probePath ? await opts.probePath(create.request.path) : null;
      if (problem) {
        mapped.push({ ...item, notes, status: 'would-fail', detail: problem });
        continue;
      }
      // Dependents resolve against it as if it had been created.
      existing[item.kind].set(item.name, { id: '(new)', name: item.name });
      mapped.push({ ...item, notes, status: 'would-create' });
      continue;
    }
    try {
      const created = await run!();
      existing[item.kind].set(item.name, { id: created.id, name: item.name });
      mapped.push({ ...item, notes, status: 'created', id: created.id });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      mapped.push({ ...item, notes, status: 'failed', detail: `${err.code}: ${err.message}` });
    }
  }

  const summary = { created: 0, 'would-create': 0, exists: 0, failed: 0, 'would-fail': 0, blocked: 0 } as Record<ApplyStatus, number>;
  for (const m of mapped) summary[m.status]++;
  return {
    mode: dry ? 'dry-run' : 'apply',
    source: { location: source.location, dialect: source.dialect, schemaNotes: source.schemaNotes },
    summary,
    mapped,
    notMapped: plan.notMapped,
    operatorActions: plan.operatorActions.map((a) => withIds(a, mapped)),
  };
}
