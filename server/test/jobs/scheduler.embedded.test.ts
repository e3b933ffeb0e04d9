import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { startTestServer, type TestServer } from '../support/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits until the seconds of the current minute are in [from, to), so no occurrence is due right now. */
async function awayFromMinuteBoundary(from = 10, to = 45): Promise<void> {
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

/**
 * The embedded scheduler (in-process timers, SQLite): policies fire pool.backup per
 * pool at once after any change; after downtime, missed occurrences are recorded
 * and, with catch-up on, the latest is run once.
 */
describe('embedded scheduler', () => {
  let t: TestServer;
  let storageDir: string;
  const ids: Record<string, string> = {};
  const pools: Record<string, string> = {};

  const runsOf = async (server: TestServer, policy: string): Promise<Run[]> => (await server.api('GET', `/api/v2/policies/${ids[policy]}/runs?limit=500`)).body.items;
  const tasksOf = async (server: TestServer, policy: string) =>
    (await server.api('GET', `/api/v2/tasks?kind=pool.backup&startedBy=${encodeURIComponent(`schedule:${ids[policy]}`)}&limit=500`)).body.items as Array<{
      id: string;
      state: string;
      payload: { poolId: string; scheduledFor: string; trigger: string };
      scheduleRunId: string;
    }>;

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
    const storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'sched', path: storageDir } })).body.id;
    const policy = async (name: string, schedule: string, enabled = true) => {
      const res = await t.api('POST', '/api/v2/policies', {
        body: { name, schedule, enabled, retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId },
      });
      expect(res.status, res.text).toBe(201);
      ids[name] = res.body.id;
    };
    const pool = async (name: string, policyName: string) => {
      const res = await t.api('POST', '/api/v2/pools', { body: { name, policyId: ids[policyName] } });
      expect(res.status, res.text).toBe(201);
      pools[name] = res.body.id;
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
    expect((await t.api('PATCH', `/api/v2/policies/${ids['disabled-later']}`, { body: { enabled: false } })).status).toBe(200);
    expect((await t.api('PATCH', `/api/v2/policies/${ids.rescheduled}`, { body: { schedule: '* * * * *' } })).status).toBe(200);
    expect((await t.api('DELETE', `/api/v2/policies/${ids.deleted}`)).status).toBe(204);
  });
  afterAll(async () => {
    await t?.close();
    if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
  });

  it('fires one pool.backup per pool at each occurrence of enabled policies only', async () => {
    const now = Date.now();
    const boundary = new Date(Math.ceil((now + 1000) / 60_000) * 60_000);
    await sleep(boundary.getTime() - Date.now() + 4000);
    const deadline = Date.now() + 15_000;
    let runs: Run[] = [];
    while (Date.now() < deadline) {
      runs = await runsOf(t, 'every-minute');
      if (runs.some((r) => r.scheduledFor === boundary.toISOString() && r.outcome === 'succeeded')) break;
      await sleep(200);
    }
    const fired = runs.find((r) => r.scheduledFor === boundary.toISOString());
    expect(fired, JSON.stringify(runs)).toMatchObject({ trigger: 'schedule', outcome: 'succeeded' });
    expect(fired!.tasks).toHaveLength(2);
    expect(runs.filter((r) => r.scheduledFor === boundary.toISOString())).toHaveLength(1);

    const tasks = await tasksOf(t, 'every-minute');
    expect(tasks).toHaveLength(2 * runs.length);
    const mine = tasks.filter((x) => x.payload.scheduledFor === boundary.toISOString());
    expect(mine.map((x) => x.payload.poolId).sort()).toEqual([pools.a, pools.b].sort());
    expect(mine.every((x) => x.state === 'succeeded' && x.scheduleRunId === fired!.id && x.payload.trigger === 'schedule')).toBe(true);

    const policy = (await t.api('GET', `/api/v2/policies/${ids['every-minute']}`)).body;
    expect(policy.lastRun).toMatchObject({ trigger: 'schedule' });
    expect(new Date(policy.lastRun.scheduledFor).getTime()).toBeGreaterThanOrEqual(boundary.getTime());
    expect(policy.nextRuns).toHaveLength(5);

    expect(await runsOf(t, 'disabled-later')).toEqual([]);
    expect((await runsOf(t, 'rescheduled')).find((r) => r.scheduledFor === boundary.toISOString())?.tasks).toHaveLength(1);
    expect(await runsOf(t, 'catch-up')).toEqual([]);
    const db = t.server.db;
    expect(await db.selectFrom('schedule_runs').selectAll().where('policy_id', '=', ids.deleted!).execute()).toEqual([]);
    expect((await t.api('GET', `/api/v2/policies/${ids['disabled-later']}`)).body.lastRun).toBeNull();
  }, 90_000);

  it('records the occurrences missed while it was down, without running them', async () => {
    await awayFromMinuteBoundary();
    const { db: testDb } = t;
    const tasksBefore = (await tasksOf(t, 'every-minute')).length;
    await t.server.close();
    const down = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000);
    const db = openDatabase(testDb.config);
    // As if the process had stopped ten minutes ago: its cursor still points there.
    await db.updateTable('schedule_cursors').set({ next_run_at: down.toISOString() }).where('policy_id', '=', ids['every-minute']!).execute();
    await db.destroy();
    t = await startTestServer('sqlite', { BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS: '5' }, { database: testDb, dataDir: t.dataDir });
    const runs = await runsOf(t, 'every-minute');
    const missed = runs.filter((r) => r.trigger === 'missed');
    // Ten occurrences since the cursor; those fired before the "downtime" (the first test) keep their record.
    expect(missed.length).toBeGreaterThanOrEqual(8);
    expect(missed.every((r) => r.outcome === 'missed' && r.tasks.length === 0)).toBe(true);
    expect(missed.map((r) => r.scheduledFor)).toContain(down.toISOString());
    // Exactly one record per occurrence.
    expect(new Set(runs.map((r) => r.scheduledFor)).size).toBe(runs.length);
    expect(await tasksOf(t, 'every-minute')).toHaveLength(tasksBefore);
    // The newest occurrence is the one fired before the "downtime"; older ones are now recorded missed.
    expect((await t.api('GET', `/api/v2/policies/${ids['every-minute']}`)).body.lastRun).toMatchObject({ scheduledFor: runs[0]!.scheduledFor });
    expect(runs.find((r) => r.scheduledFor === down.toISOString())).toMatchObject({ trigger: 'missed', outcome: 'missed', tasks: [] });
  }, 90_000);

  it('catches the latest missed occurrence up once when configured', async () => {
    await awayFromMinuteBoundary();
    const { db: testDb, dataDir } = t;
    await t.server.close();
    const down = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000);
    const db = openDatabase(testDb.config);
    await db.updateTable('policies').set({ enabled: 1 }).where('id', '=', ids['catch-up']!).execute();
    await db
      .insertInto('schedule_cursors')
      .values({ policy_id: ids['catch-up']!, schedule: '* * * * *', timezone: 'UTC', next_run_at: down.toISOString(), updated_at: down.toISOString() })
      .execute();
    await db.destroy();
    t = await startTestServer('sqlite', { BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS: '5', BACKROLL_SCHEDULER_CATCH_UP: 'true' }, { database: testDb, dataDir });
    let runs: Run[] = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      runs = await runsOf(t, 'catch-up');
      if (runs[0]?.outcome === 'succeeded') break;
      await sleep(200);
    }
    const [latest, ...older] = runs;
    expect(latest).toMatchObject({ trigger: 'catch_up', outcome: 'succeeded' });
    expect(latest!.tasks).toHaveLength(1);
    expect(older.length).toBeGreaterThanOrEqual(4);
    expect(older.every((r) => r.trigger === 'missed')).toBe(true);
    const tasks = await tasksOf(t, 'catch-up');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.payload).toMatchObject({ poolId: pools.e, trigger: 'catch_up', scheduledFor: latest!.scheduledFor });
  }, 90_000);
});
