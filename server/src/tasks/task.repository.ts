import type { Transaction } from 'kysely';
import type { Db } from '../db/database.js';
import { isUniqueViolation, parseJson, toBool } from '../db/errors.js';
import type { PageRequest, PageResult } from '../db/page.js';
import type { Database, TaskTable } from '../db/schema.js';
import type { TaskLogLevel, TaskProgress } from './task-context.js';
import { sourcesOf, type TaskState } from './task.state.js';

export interface TaskResources {
  hostId: string | null;
  storageId: string | null;
}

export interface TaskRecord {
  id: string;
  kind: string;
  state: TaskState;
  targetType: string | null;
  targetId: string | null;
  parentId: string | null;
  retryOf: string | null;
  startedBy: string | null;
  payload: unknown;
  resources: TaskResources;
  progress: Required<{ [K in keyof TaskProgress]: TaskProgress[K] | null }>;
  result: unknown;
  error: { code: string; message: string } | null;
  attempts: number;
  cancelRequestedAt: string | null;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  scheduleRunId: string | null;
  awaitingChildren: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface NewTask {
  id: string;
  kind: string;
  payload: unknown;
  targetType: string | null;
  targetId: string | null;
  parentId: string | null;
  retryOf: string | null;
  startedBy: string | null;
  resources: TaskResources;
  scheduleRunId: string | null;
}

export interface TaskFilter {
  states?: TaskState[];
  kind?: string;
  targetType?: string;
  targetId?: string;
  /** A parent id, or null for top-level tasks only. */
  parentId?: string | null;
  startedBy?: string;
  createdAfter?: string;
  createdBefore?: string;
  /** Any of these kinds (in addition to `kind`). */
  kinds?: string[];
  /** Cursor paging: only tasks strictly older than this one (newest-first order). */
  before?: TaskCursor;
}

/** A position in the newest-first task order: `<createdAt>,<id>` in URLs. */
export interface TaskCursor {
  createdAt: string;
  id: string;
}

/** How the total of a task list is counted: exactly, up to TASK_TOTAL_CAP, or not at all (-1). */
export type TaskCount = 'exact' | 'capped' | 'none';
export const TASK_TOTAL_CAP = 10_000;

export interface TaskPage extends PageResult<TaskRecord> {
  totalCapped: boolean;
  /** The cursor of the last item when there may be more, else null. */
  nextCursor: TaskCursor | null;
}

export interface TaskLogLine {
  seq: number;
  at: string;
  level: TaskLogLevel;
  message: string;
}

/** Extra conditions of a state change: only from this state, only by the lease owner, only once the lease expired. */
export interface TransitionGuard {
  from?: TaskState;
  leaseOwner?: string;
  expiredBefore?: string;
}

/** Fields a state change may set besides the state. */
export type TaskStateFields = Partial<Pick<TaskTable, 'result' | 'error_code' | 'error_message' | 'finished_at' | 'awaiting_children' | 'lease_owner' | 'lease_expires_at'>>;

export const toTaskRecord = (r: TaskTable): TaskRecord => ({
  id: r.id,
  kind: r.kind,
  state: r.state as TaskState,
  targetType: r.target_type,
  targetId: r.target_id,
  parentId: r.parent_id,
  retryOf: r.retry_of,
  startedBy: r.started_by,
  payload: parseJson<unknown>(r.payload, null),
  resources: { hostId: r.resource_host_id, storageId: r.resource_storage_id },
  progress: {
    percent: r.progress_percent === null ? null : Number(r.progress_percent),
    bytesDone: r.bytes_done === null ? null : Number(r.bytes_done),
    bytesTotal: r.bytes_total === null ? null : Number(r.bytes_total),
    rateBytesPerSecond: r.rate_bytes_per_second === null ? null : Number(r.rate_bytes_per_second),
    step: r.progress_step,
  },
  result: parseJson<unknown>(r.result, null),
  error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
  attempts: Number(r.attempts),
  cancelRequestedAt: r.cancel_requested_at,
  leaseOwner: r.lease_owner,
  leaseExpiresAt: r.lease_expires_at,
  scheduleRunId: r.schedule_run_id,
  awaitingChildren: toBool(Number(r.awaiting_children)),
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  updatedAt: r.updated_at,
});

const LOG_MESSAGE_MAX = 8000;
const ACTIVE: TaskState[] = ['queued', 'running'];

/**
 * Tasks and their logs. Every state change is a guarded UPDATE (see task.state.ts).
 *
 * Creation order is strict: tasks are listed by `created_at` (then id) and dispatched in
 * that order, and ids are random, so two tasks created in the same millisecond (a
 * `submitMany` batch, two submits in a row) must not share a `created_at`. This repository
 * (one per process) hands out creation times that only move forward, at least 1 ms apart;
 * start and finish times never go behind them, so `started_at >= created_at` still holds.
 */
export class TaskRepository {
  /** The latest time this repository wrote, in epoch ms. */
  private lastMs = 0;

  constructor(private readonly db: Db) {}

  /** `now`, or just after the latest time handed out when the clock stood still or went back. */
  private stamp(now: string, strict: boolean): string {
    const ms = Date.parse(now);
    const next = ms > this.lastMs || (!strict && ms === this.lastMs) ? ms : this.lastMs + (strict ? 1 : 0);
    this.lastMs = next;
    return next === ms ? now : new Date(next).toISOString();
  }

  /** Inserts tasks in one transaction, after `before` (run in the same transaction). */
  async insert(tasks: NewTask[], now: string, before?: (trx: Transaction<Database>) => Promise<void>): Promise<void> {
    if (tasks.length === 0 && !before) return;
    const created = tasks.map(() => this.stamp(now, true));
    const rows: TaskTable[] = tasks.map((t, i) => ({
      id: t.id,
      kind: t.kind,
      state: 'queued',
      target_type: t.targetType,
      target_id: t.targetId,
      parent_id: t.parentId,
      progress_percent: null,
      bytes_done: null,
      bytes_total: null,
      rate_bytes_per_second: null,
      started_by: t.startedBy,
      result: null,
      error_code: null,
      error_message: null,
      attempts: 0,
      created_at: created[i]!,
      started_at: null,
      finished_at: null,
      updated_at: created[i]!,
      payload: t.payload === undefined ? null : JSON.stringify(t.payload),
      progress_step: null,
      retry_of: t.retryOf,
      resource_host_id: t.resources.hostId,
      resource_storage_id: t.resources.storageId,
      cancel_requested_at: null,
      lease_owner: null,
      lease_expires_at: null,
      schedule_run_id: t.scheduleRunId,
      awaiting_children: 0,
    }));
    await this.db.transaction().execute(async (trx) => {
      if (before) await before(trx);
      for (const row of rows) await trx.insertInto('tasks').values(row).execute();
    });
  }

  async findById(id: string): Promise<TaskRecord | undefined> {
    const row = await this.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toTaskRecord(row);
  }

  /** The newest task that retries `id` (linked by retry_of). */
  async findRetryOf(id: string): Promise<TaskRecord | undefined> {
    const row = await this.db.selectFrom('tasks').selectAll().where('retry_of', '=', id).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    return row && toTaskRecord(row);
  }

  async findMany(ids: string[]): Promise<TaskRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('tasks').selectAll().where('id', 'in', ids).execute();
    return rows.map(toTaskRecord);
  }

  /** Newest first. */
  async list(filter: TaskFilter, page: PageRequest, count: TaskCount = 'exact'): Promise<TaskPage> {
    let q = this.db.selectFrom('tasks');
    if (filter.states && filter.states.length > 0) q = q.where('state', 'in', filter.states);
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    if (filter.kinds && filter.kinds.length > 0) q = q.where('kind', 'in', filter.kinds);
    if (filter.targetType) q = q.where('target_type', '=', filter.targetType);
    if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
    if (filter.parentId === null) q = q.where('parent_id', 'is', null);
    else if (filter.parentId) q = q.where('parent_id', '=', filter.parentId);
    if (filter.startedBy) q = q.where('started_by', '=', filter.startedBy);
    if (filter.createdAfter) q = q.where('created_at', '>=', filter.createdAfter);
    if (filter.createdBefore) q = q.where('created_at', '<', filter.createdBefore);
    // The total ignores the cursor: it is the size of the whole filtered list.
    let total = -1;
    let totalCapped = false;
    if (count === 'exact') {
      const row = await q.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
      total = Number(row?.n ?? 0);
    } else if (count === 'capped') {
      // Counting stops after the cap: a deep list costs at most TASK_TOTAL_CAP index entries.
      const row = await this.db
        .selectFrom(q.select('id').limit(TASK_TOTAL_CAP + 1).as('capped'))
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .executeTakeFirst();
      total = Math.min(Number(row?.n ?? 0), TASK_TOTAL_CAP);
      totalCapped = Number(row?.n ?? 0) > TASK_TOTAL_CAP;
    }
    const before = filter.before;
    if (before) {
      // The plain bound first: it lets every database seek the created_at index.
      q = q
        .where('created_at', '<=', before.createdAt)
        .where((eb) => eb.or([eb('created_at', '<', before.createdAt), eb.and([eb('created_at', '=', before.createdAt), eb('id', '<', before.id)])]));
    }
    const rows = await q.selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute();
    const last = rows.length === page.limit ? rows[rows.length - 1] : undefined;
    return {
      items: rows.map(toTaskRecord),
      total,
      totalCapped,
      limit: page.limit,
      offset: page.offset,
      nextCursor: last ? { createdAt: last.created_at, id: last.id } : null,
    };
  }

  /** Moves a task to `to` if it is in a state that allows it; false when another change won. */
  async transition(id: string, to: TaskState, now: string, fields: TaskStateFields = {}, extra: TransitionGuard = {}): Promise<boolean> {
    const sources = sourcesOf(to).filter((s) => extra.from === undefined || s === extra.from);
    if (sources.length === 0) return false;
    if (fields.finished_at === now) fields = { ...fields, finished_at: (now = this.stamp(now, false)) };
    let q = this.db
      .updateTable('tasks')
      .set({ ...fields, state: to, updated_at: now })
      .where('id', '=', id)
      .where('state', 'in', sources);
    if (extra.leaseOwner !== undefined) q = q.where('lease_owner', '=', extra.leaseOwner);
    if (extra.expiredBefore !== undefined) q = q.where('lease_expires_at', '<', extra.expiredBefore);
    const res = await q.executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** queued → running for one worker, with a lease; false when someone else took it or it was canceled. */
  async claim(id: string, owner: string, leaseUntil: string, now: string): Promise<boolean> {
    now = this.stamp(now, false);
    const res = await this.db
      .updateTable('tasks')
      .set((eb) => ({
        state: 'running',
        started_at: now,
        updated_at: now,
        lease_owner: owner,
        lease_expires_at: leaseUntil,
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', id)
      .where('state', '=', 'queued')
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Extends the lease of a task this worker runs; false when it is no longer ours (reaped, finished). */
  async renewLease(id: string, owner: string, leaseUntil: string, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tasks')
      .set({ lease_expires_at: leaseUntil, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async setProgress(id: string, p: TaskProgress, now: string): Promise<void> {
    await this.db
      .updateTable('tasks')
      .set({
        ...(p.percent !== undefined ? { progress_percent: p.percent } : {}),
        ...(p.bytesDone !== undefined ? { bytes_done: p.bytesDone } : {}),
        ...(p.bytesTotal !== undefined ? { bytes_total: p.bytesTotal } : {}),
        ...(p.rateBytesPerSecond !== undefined ? { rate_bytes_per_second: p.rateBytesPerSecond } : {}),
        ...(p.step !== undefined ? { progress_step: p.step.slice(0, 255) } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .execute();
  }

  /** Marks a cancel request on a queued or running task; false when it has already ended. */
  async requestCancel(id: string, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tasks')
      .set({ cancel_requested_at: now, updated_at: now })
      .where('id', '=', id)
      .where('state', 'in', ACTIVE)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async cancelRequested(id: string): Promise<boolean> {
    const row = await this.db.selectFrom('tasks').select('cancel_requested_at').where('id', '=', id).executeTakeFirst();
    return row?.cancel_requested_at != null;
  }

  /** The handler returned but children run on: the task keeps `running` with no lease. */
  async awaitChildren(id: string, owner: string, result: string | null, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tasks')
      .set({ awaiting_children: 1, result, lease_owner: null, lease_expires_at: null, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async childStates(parentId: string): Promise<TaskState[]> {
    const rows = await this.db.selectFrom('tasks').select('state').where('parent_id', '=', parentId).execute();
    return rows.map((r) => r.state as TaskState);
  }

  async hasChildren(parentId: string): Promise<boolean> {
    const row = await this.db.selectFrom('tasks').select('id').where('parent_id', '=', parentId).limit(1).executeTakeFirst();
    return row !== undefined;
  }

  async childSummary(parentId: string): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('tasks')
      .select(['state', (eb) => eb.fn.countAll<number | string>().as('n')])
      .where('parent_id', '=', parentId)
      .groupBy('state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  async activeChildIds(parentId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('tasks').select('id').where('parent_id', '=', parentId).where('state', 'in', ACTIVE).execute();
    return rows.map((r) => r.id);
  }

  /** Oldest first: the order the embedded runner starts them and the queue is refilled. */
  async queued(limit: number, olderThan?: string): Promise<Array<Pick<TaskRecord, 'id' | 'kind' | 'resources' | 'createdAt'>>> {
    let q = this.db.selectFrom('tasks').select(['id', 'kind', 'resource_host_id', 'resource_storage_id', 'created_at']).where('state', '=', 'queued');
    if (olderThan) q = q.where('created_at', '<', olderThan);
    const rows = await q.orderBy('created_at').orderBy('id').limit(limit).execute();
    return rows.map((r) => ({ id: r.id, kind: r.kind, resources: { hostId: r.resource_host_id, storageId: r.resource_storage_id }, createdAt: r.created_at }));
  }

  /** Running tasks whose worker stopped renewing the lease (all running ones when `before` is undefined). */
  async orphanedRunning(before: string | undefined): Promise<string[]> {
    let q = this.db.selectFrom('tasks').select('id').where('state', '=', 'running').where('awaiting_children', '=', 0);
    if (before !== undefined) q = q.where('lease_expires_at', '<', before);
    return (await q.execute()).map((r) => r.id);
  }

  /** Parents waiting for children that have all ended (a finalisation lost in a crash). */
  async awaitingParents(): Promise<string[]> {
    const rows = await this.db.selectFrom('tasks').select('id').where('state', '=', 'running').where('awaiting_children', '=', 1).execute();
    return rows.map((r) => r.id);
  }

  async tasksOfScheduleRuns(runIds: string[]): Promise<Array<{ runId: string; state: TaskState; id: string }>> {
    if (runIds.length === 0) return [];
    const rows = await this.db.selectFrom('tasks').select(['id', 'state', 'schedule_run_id']).where('schedule_run_id', 'in', runIds).execute();
    return rows.map((r) => ({ runId: r.schedule_run_id ?? '', state: r.state as TaskState, id: r.id }));
  }

  // --- logs -------------------------------------------------------------

  async maxSeq(taskId: string): Promise<number> {
    const row = await this.db
      .selectFrom('task_logs')
      .select((eb) => eb.fn.max<number | string | null>('seq').as('m'))
      .where('task_id', '=', taskId)
      .executeTakeFirst();
    return row?.m == null ? 0 : Number(row.m);
  }

  /**
   * Appends a line; `seqHint` is the writer's guess of the next number. Several
   * processes may append to one task (the worker, a cancel, the reaper): a taken
   * number is retried with the next free one. Returns the number used.
   */
  async appendLog(taskId: string, line: { at: string; level: TaskLogLevel; message: string }, seqHint?: number): Promise<number> {
    let seq = seqHint ?? (await this.maxSeq(taskId)) + 1;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.db
          .insertInto('task_logs')
          .values({ task_id: taskId, seq, at: line.at, level: line.level, message: line.message.slice(0, LOG_MESSAGE_MAX) })
          .execute();
        return seq;
      } catch (err) {
        if (!isUniqueViolation(err) || attempt >= 20) throw err;
        seq = (await this.maxSeq(taskId)) + 1;
      }
    }
  }

  async logsAfter(taskId: string, after: number, limit: number): Promise<TaskLogLine[]> {
    const rows = await this.db
      .selectFrom('task_logs')
      .select(['seq', 'at', 'level', 'message'])
      .where('task_id', '=', taskId)
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ seq: Number(r.seq), at: r.at, level: r.level as TaskLogLevel, message: r.message }));
  }
}
