import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseDialect } from '../../src/config/config.js';
import { openDatabase } from '../../src/db/database.js';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { describeUnavailable } from '../support/unavailable.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Waits until the seconds of the current minute are in [from, to), so no occurrence is due
 * while the servers restart (three at once, PostgreSQL and MariaDB migrations included).
 */
async function awayFromMinuteBoundary(from = 5, to = 25): Promise<void> {
  for (;;) {
    const s = new Date().getUTCSeconds();
    if (s >= from && s < to) return;
    await sleep(500);
  }
}

interface Run {
  id: string;
  scheduledFor: string;
  trigger: string;
  outcome: string;
  tasks: Array<{ id: string; state: string }>;
}

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const))) as Record<DatabaseDialect, string | null>;
const available = DIALECTS.filter((d) => reasons[d] === null);
for (const d of DIALECTS) if (reasons[d] !== null) describeUnavailable(`embedded scheduler on ${d}`, reasons[d]!);

/** One server per database; the scenarios below run on all of them at once (they wait for real minutes). */
class Cluster {
  t!: TestServer;
  storageDir = '';
  readonly ids: Record<string, string> = {};
  readonly pools: Record<string, string> = {};
  constructor(readonly dialect: DatabaseDialect) {}

  runsOf = async (policy: string): Promise<Run[]> => (await this.t.api('GET', `/api/v2/policies/${this.ids[policy]}/runs?limit=500`)).body.items;
  tasksOf = async (policy: string) =>
    (await this.t.api('GET', `/api/v2/tasks?kind=pool.backup&startedBy=${encodeURIComponent(`schedule:${this.ids[policy]}`)}&limit=500`)).body.items as Array<{
      id: string;
      state: string;
      payload: { poolId: string; scheduledFor: string; trigger: string };
      scheduleRunId: string;
    }>;

  async start(): Promise<void> {
    const t = (this.t = await startTestServer(this.dialect));
    this.storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
    const storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'sched', path: this.storageDir } })).body.id;
    const policy = async (name: string, schedule: string, enabled = true) => {
      const res = await t.api('POST', '/api/v2/policies', {
        body: { name, schedule, enabled, retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId },
      });
      expect(res.status, res.text).toBe(201);
      this.ids[name] = res.body.id;
    };
    const pool = async (name: string, policyName: string) => {
      const res = await t.api('POST', '/api/v2/pools', { body: { name, policyId: this.ids[policyName] } });
      expect(res.status, res.text).toBe(201);
      this.pools[name] = res.body.id;
    };
    await policy('every-minute', '* * * * *');
    await pool('a', 'every-minute');
    await pool('b', 'every-minute');
    await policy('disabled-later', '* * * * *');
    await pool('c', 'disabled-later');
    await policy('rescheduled', '0 0 1 1 *');
    await pool('d', 'rescheduled');
    await policy('deleted', '* * * * *');
    await policy('catch-up', '* * * * *', false);
    await pool('e', 'catch-up');
    // Changes take effect at once: no restart, no reconcile period.
    expect((await t.api('PATCH', `/api/v2/policies/${this.ids['disabled-later']}`, { body: { enabled: false } })).status).toBe(200);
    expect((await t.api('PATCH', `/api/v2/policies/${this.ids.rescheduled}`, { body: { schedule: '* * * * *' } })).status).toBe(200);
    expect((await t.api('DELETE', `/api/v2/policies/${this.ids.deleted}`)).status).toBe(204);
  }

  /** Stops the server, lets `edit` change its database as a stopped process's would be, starts it again with `env`. */
  async restart(env: Record<string, string>, edit: (db: ReturnType<typeof openDatabase>) => Promise<void>): Promise<void> {
    const { db: testDb, dataDir } = this.t;
    await this.t.server.close();
    const db = openDatabase(testDb.config);
    try {
      await edit(db);
    } finally {
      await db.destroy();
    }
    this.t = await startTestServer(this.dialect, env, { database: testDb, dataDir });
  }

  async close(): Promise<void> {
    await this.t?.close();
    if (this.storageDir) fs.rmSync(this.storageDir, { recursive: true, force: true });
  }
}

/** Runs `fn` on every database at once; a failure names its database. */
async function onEach(clusters: Cluster[], fn: (c: Cluster) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(clusters.map(fn));
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`on ${clusters[i]!.dialect}: ${(r.reason as Error)?.stack ?? String(r.reason)}`] : []));
  if (failed.length > 0) throw new Error(failed.join('\n\n'));
}

/**
 * The embedded scheduler (in-process timers) on SQLite, PostgreSQL and MariaDB: policies fire
 * pool.backup per pool at once after any change; after downtime, missed occurrences are
 * recorded and, with catch-up on, the latest is run once.
 */
describe.skipIf(available.length === 0)(`embedded scheduler on ${available.join(', ')}`, () => {
  const clusters = available.map((d) => new Cluster(d));

  // One server at a time: starting several at once on a loaded 2-core machine can exceed Fastify's plugin timeout.
  beforeAll(async () => {
    for (const c of clusters) await c.start();
  }, 180_000);
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.close()));
  });

  it('fires one pool.backup per pool at each occurrence of enabled policies only', async () => {
    const now = Date.now();
    const boundary = new Date(Math.ceil((now + 1000) / 60_000) * 60_000);
    await sleep(boundary.getTime() - Date.now() + 4000);
    await onEach(clusters, async (c) => {
      const deadline = Date.now() + 15_000;
      let runs: Run[] = [];
      while (Date.now() < deadline) {
        runs = await c.runsOf('every-minute');
        if (runs.some((r) => r.scheduledFor === boundary.toISOString() && r.outcome === 'succeeded')) break;
        await sleep(200);
      }
      const fired = runs.find((r) => r.scheduledFor === boundary.toISOString());
      expect(fired, JSON.stringify(runs)).toMatchObject({ trigger: 'schedule', outcome: 'succeeded' });
      expect(fired!.tasks).toHaveLength(2);
      expect(runs.filter((r) => r.scheduledFor === boundary.toISOString())).toHaveLength(1);

      const tasks = await c.tasksOf('every-minute');
      expect(tasks).toHaveLength(2 * runs.length);
      const mine = tasks.filter((x) => x.payload.scheduledFor === boundary.toISOString());
      expect(mine.map((x) => x.payload.poolId).sort()).toEqual([c.pools.a, c.pools.b].sort());
      expect(mine.every((x) => x.state === 'succeeded' && x.scheduleRunId === fired!.id && x.payload.trigger === 'schedule')).toBe(true);

      const policy = (await c.t.api('GET', `/api/v2/policies/${c.ids['every-minute']}`)).body;
      expect(policy.lastRun).toMatchObject({ trigger: 'schedule' });
      expect(new Date(policy.lastRun.scheduledFor).getTime()).toBeGreaterThanOrEqual(boundary.getTime());
      expect(policy.nextRuns).toHaveLength(5);

      expect(await c.runsOf('disabled-later')).toEqual([]);
      expect((await c.runsOf('rescheduled')).find((r) => r.scheduledFor === boundary.toISOString())?.tasks).toHaveLength(1);
      expect(await c.runsOf('catch-up')).toEqual([]);
      expect(await c.t.server.db.selectFrom('schedule_runs').selectAll().where('policy_id', '=', c.ids.deleted!).execute()).toEqual([]);
      expect((await c.t.api('GET', `/api/v2/policies/${c.ids['disabled-later']}`)).body.lastRun).toBeNull();
    });
  }, 90_000);

  it('records the occurrences missed while it was down, without running them', async () => {
    await awayFromMinuteBoundary();
    const down = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000);
    const tasksBefore = new Map<Cluster, number>();
    for (const c of clusters) {
      tasksBefore.set(c, (await c.tasksOf('every-minute')).length);
      // As if the process had stopped ten minutes ago: its cursor still points there.
      await c.restart({ BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS: '5' }, async (db) => {
        await db.updateTable('schedule_cursors').set({ next_run_at: down.toISOString() }).where('policy_id', '=', c.ids['every-minute']!).execute();
      });
    }
    await onEach(clusters, async (c) => {
      const runs = await c.runsOf('every-minute');
      const missed = runs.filter((r) => r.trigger === 'missed');
      // Ten occurrences since the cursor; those fired before the "downtime" (the first test) keep their record.
      expect(missed.length, JSON.stringify(runs.map((r) => [r.scheduledFor, r.trigger, r.outcome]))).toBeGreaterThanOrEqual(8);
      expect(missed.every((r) => r.outcome === 'missed' && r.tasks.length === 0)).toBe(true);
      expect(missed.map((r) => r.scheduledFor)).toContain(down.toISOString());
      // Exactly one record per occurrence.
      expect(new Set(runs.map((r) => r.scheduledFor)).size).toBe(runs.length);
      expect(await c.tasksOf('every-minute')).toHaveLength(tasksBefore.get(c)!);
      // The newest occurrence is the one fired before the "downtime"; older ones are now recorded missed.
      expect((await c.t.api('GET', `/api/v2/policies/${c.ids['every-minute']}`)).body.lastRun).toMatchObject({ scheduledFor: runs[0]!.scheduledFor });
      expect(runs.find((r) => r.scheduledFor === down.toISOString())).toMatchObject({ trigger: 'missed', outcome: 'missed', tasks: [] });
    });
  }, 90_000);

  it('catches the latest missed occurrence up once when configured', async () => {
    await awayFromMinuteBoundary();
    const down = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000);
    for (const c of clusters) {
      await c.restart({ BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS: '5', BACKROLL_SCHEDULER_CATCH_UP: 'true' }, async (db) => {
        await db.updateTable('policies').set({ enabled: 1 }).where('id', '=', c.ids['catch-up']!).execute();
        await db
          .insertInto('schedule_cursors')
          .values({ policy_id: c.ids['catch-up']!, schedule: '* * * * *', timezone: 'UTC', next_run_at: down.toISOString(), updated_at: down.toISOString() })
          .execute();
      });
    }
    await onEach(clusters, async (c) => {
      let runs: Run[] = [];
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        runs = await c.runsOf('catch-up');
        if (runs[0]?.outcome === 'succeeded') break;
        await sleep(200);
      }
      const [latest, ...older] = runs;
      expect(latest, JSON.stringify(runs)).toMatchObject({ trigger: 'catch_up', outcome: 'succeeded' });
      expect(latest!.tasks).toHaveLength(1);
      expect(older.length).toBeGreaterThanOrEqual(4);
      expect(older.every((r) => r.trigger === 'missed')).toBe(true);
      const tasks = await c.tasksOf('catch-up');
      expect(tasks, JSON.stringify(tasks.map((x) => x.payload))).toHaveLength(1);
      expect(tasks[0]!.payload).toMatchObject({ poolId: c.pools.e, trigger: 'catch_up', scheduledFor: latest!.scheduledFor });
    });
  }, 90_000);
});
