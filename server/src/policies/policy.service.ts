import { isoNow, type Clock } from '../clock.js';
import type { PageRequest, PageResult } from '../db/page.js';
import { invalid } from '../errors.js';
import { assertUnreferenced, found, uniqueName } from '../shared/service-helpers.js';
import type { PolicyData, PolicyRecord, PolicyRepository } from './policy.repository.js';
import { checkRetention, checkTimeZone, nextRuns, parseCompression, type Result } from './policy.rules.js';

/** The latest occurrence of a policy's schedule and how it went (see src/scheduler). */
export interface PolicyLastRun {
  id: string;
  scheduledFor: string;
  recordedAt: string;
  trigger: 'schedule' | 'catch_up' | 'missed';
  outcome: string;
  tasks: Array<{ id: string; state: string }>;
}

export interface PolicyView extends PolicyRecord {
  /** The next five run times (ISO, UTC) of the schedule in its time zone. */
  nextRuns: string[];
  /** The latest occurrence (fired or missed) with its outcome; null before the first. */
  lastRun: PolicyLastRun | null;
}

/** Who listens to policy changes (the scheduler) and knows past runs. */
export interface PolicyObservers {
  /** After a create, update or delete is saved; must not throw. */
  changed?(policyId: string): Promise<void>;
  lastRuns?(policyIds: string[]): Promise<Map<string, PolicyLastRun>>;
}

type PolicyOptional = 'description' | 'timezone' | 'hookId' | 'enabled' | 'quiesce' | 'compression' | 'encryption' | 'changedBlockTracking' | 'fullEveryDays';
export type PolicyInput = Omit<PolicyData, PolicyOptional> & Partial<Pick<PolicyData, PolicyOptional>>;

/** What a policy refers to; checked before every write so a bad id is a 400, not a foreign-key crash. */
export interface PolicyReferences {
  storageExists(id: string): Promise<boolean>;
  hookExists(id: string): Promise<boolean>;
}

const DEFAULTS = { description: '', timezone: 'UTC', hookId: null, enabled: true, quiesce: 'preferred', compression: 'lz4', encryption: 'none', changedBlockTracking: true, fullEveryDays: 30 } as const;

function must<T>(r: Result<T>, field: string): T {
  if (!r.ok) throw invalid(r.code, r.message, { field });
  return r.value;
}

export class PolicyService {
  constructor(
    private readonly repo: PolicyRepository,
    private readonly refs: PolicyReferences,
    private readonly clock: Clock,
    private readonly observers: PolicyObservers = {},
  ) {}

  async create(input: PolicyInput): Promise<PolicyView> {
    const data = await this.validate({ ...DEFAULTS, ...input });
    const rec = await uniqueName('policy', data.name, () => this.repo.insert(data, isoNow(this.clock)));
    await this.observers.changed?.(rec.id);
    return this.view(rec);
  }

  async update(id: string, patch: Partial<PolicyData>): Promise<PolicyView> {
    const current = found(await this.repo.findById(id), 'policy', id);
    const merged: PolicyData = {
      ...current,
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
      retention: { ...current.retention, ...(patch.retention ?? {}) },
    };
    const data = await this.validate(merged);
    await uniqueName('policy', data.name, () => this.repo.update(id, data, isoNow(this.clock)));
    await this.observers.changed?.(id);
    return this.get(id);
  }

  async get(id: string): Promise<PolicyView> {
    return this.view(found(await this.repo.findById(id), 'policy', id), await this.lastRuns([id]));
  }

  async find(id: string): Promise<PolicyRecord | undefined> {
    return this.repo.findById(id);
  }

  async list(page: PageRequest, filter: { name?: string; storageId?: string; enabled?: boolean } = {}): Promise<PageResult<PolicyView>> {
    const res = await this.repo.list(page, filter);
    const lastRuns = await this.lastRuns(res.items.map((r) => r.id));
    return { ...res, items: res.items.map((r) => this.view(r, lastRuns)) };
  }

  async delete(id: string): Promise<void> {
    const current = found(await this.repo.findById(id), 'policy', id);
    const pools = await this.repo.referencingPools(id);
    assertUnreferenced('policy', current.name, pools.map((p) => ({ type: 'pool', ...p })));
    await this.repo.delete(id);
    await this.observers.changed?.(id);
  }

  /** Next runs of a schedule without saving anything (for forms that preview a schedule). */
  preview(schedule: string, timezone: string): string[] {
    must(checkTimeZone(timezone), 'timezone');
    return must(nextRuns(schedule, timezone, this.clock.now()), 'schedule').map((d) => d.toISOString());
  }

  private async validate(d: PolicyData): Promise<PolicyData> {
    const timezone = must(checkTimeZone(d.timezone), 'timezone');
    const schedule = d.schedule.trim().split(/\s+/).join(' ');
    must(nextRuns(schedule, timezone, this.clock.now()), 'schedule');
    must(checkRetention(d.retention), 'retention');
    must(parseCompression(d.compression), 'compression');
    if (!(await this.refs.storageExists(d.storageId))) {
      throw invalid('POLICY.STORAGE_NOT_FOUND', `storage ${d.storageId} does not exist; create it first (POST /api/v2/storages) or pick another`, { storageId: d.storageId });
    }
    if (d.hookId !== null && !(await this.refs.hookExists(d.hookId))) {
      throw invalid('POLICY.HOOK_NOT_FOUND', `hook ${d.hookId} does not exist; create it first (POST /api/v2/hooks) or set hookId to null`, { hookId: d.hookId });
    }
    return { ...d, name: d.name.trim(), schedule, compression: d.compression.trim() };
  }

  private async lastRuns(ids: string[]): Promise<Map<string, PolicyLastRun>> {
    return this.observers.lastRuns ? this.observers.lastRuns(ids) : new Map();
  }

  private view(rec: PolicyRecord, lastRuns: Map<string, PolicyLastRun> = new Map()): PolicyView {
    const runs = nextRuns(rec.schedule, rec.timezone, this.clock.now());
    return { ...rec, nextRuns: runs.ok ? runs.value.map((d) => d.toISOString()) : [], lastRun: lastRuns.get(rec.id) ?? null };
  }
}
