import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unavailableReason } from '../support/databases.js';
import { startBackroll, type BackrollProcess } from '../support/processes.js';
import { dropPrefix, REDIS_URL, redisUnavailableReason, uniquePrefix } from '../support/redis.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { describeUnavailable } from '../support/unavailable.js';

const redis = await redisUnavailableReason();
const DIALECTS = ['postgres', 'mysql'] as const;
type Dialect = (typeof DIALECTS)[number];
const reasons = { postgres: redis ?? (await unavailableReason('postgres')), mysql: redis ?? (await unavailableReason('mysql')) };
const available = DIALECTS.filter((d) => reasons[d] === null);
for (const d of DIALECTS) if (reasons[d] !== null) describeUnavailable(`distributed scheduler on ${d}`, reasons[d]!);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MINUTE = 60_000;

interface Run {
  id: string;
  scheduledFor: string;
  trigger: string;
  outcome: string;
  tasks: Array<{ id: string; state: string }>;
}

/** One installation: an API process, two worker+scheduler processes, one database, one Redis prefix. */
class Cluster {
  readonly prefix = uniquePrefix();
  api!: TestServer;
  storageDir = '';
  readonly procs: BackrollProcess[] = [];
  readonly ids: Record<string, string> = {};
  readonly pools: Record<string, string> = {};
  constructor(readonly dialect: Dialect) {}

  async start(): Promise<void> {
    const env = { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: this.prefix };
    const api = (this.api = await startTestServer(this.dialect, env, { roles: ['api'] }));
    for (let i = 0; i < 2; i++) {
      this.procs.push(startBackroll('worker,scheduler', { ...env, BACKROLL_DATA_DIR: api.dataDir, BACKROLL_DATABASE_URL: api.db.config.url }));
    }
    await Promise.all(this.procs.map((p) => p.waitFor('"msg":"scheduler started"')));
    this.storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
    const storageId = (await api.api('POST', '/api/v2/storages', { body: { name: 'dist', path: this.storageDir } })).body.id;
    const policy = async (name: string, schedule: string) => {
      const res = await api.api('POST', '/api/v2/policies', { body: { name, schedule, retention: { daily: 1, weekly: 0, monthly: 0, yearly: 0 }, storageId } });
      expect(res.status, res.text).toBe(201);
      this.ids[name] = res.body.id;
    };
    const pool = async (name: string, policyName: string) => {
      const res = await api.api('POST', '/api/v2/pools', { body: { name, policyId: this.ids[policyName] } });
      expect(res.status, res.text).toBe(201);
      this.pools[name] = res.body.id;
    };
    // Policies are created while the schedulers run: the API process updates the BullMQ job schedulers itself.
    await policy('every-minute', '* * * * *');
    await pool('a', 'every-minute');
    await pool('b', 'every-minute');
    await policy('disabled', '* * * * *');
    await pool('c', 'disabled');
    await policy('rescheduled', '0 0 1 1 *');
    await pool('d', 'rescheduled');
    await policy('deleted', '* * * * *');
    expect((await api.api('PATCH', `/api/v2/policies/${this.ids.disabled}`, { body: { enabled: false } })).status).toBe(200);
    expect((await api.api('PATCH', `/api/v2/policies/${this.ids.rescheduled}`, { body: { schedule: '* * * * *' } })).status).toBe(200);
    expect((await api.api('DELETE', `/api/v2/policies/${this.ids.deleted}`)).status).toBe(204);
  }

  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    await this.api?.close();
    await dropPrefix(this.prefix);
    if (this.storageDir) fs.rmSync(this.storageDir, { recursive: true, force: true });
  }

  /** Every occurrence in `expected` ran exactly once, one pool.backup per pool, on the worker processes. */
  async check(expected: string[]): Promise<void> {
    const { api, ids, pools, procs } = this;
    const runsOf = async (name: string): Promise<Run[]> => (await api.api('GET', `/api/v2/policies/${ids[name]}/runs?limit=500`)).body.items;
    const runs = await runsOf('every-minute');
    const inWindow = runs.filter((r) => expected.includes(r.scheduledFor));
    // One record per occurrence, each with one pool.backup per pool, all run to the end.
    expect(inWindow.map((r) => r.scheduledFor).sort()).toEqual(expected);
    expect(new Set(runs.map((r) => r.scheduledFor)).size).toBe(runs.length);
    for (const r of inWindow) {
      expect(r.trigger).toBe('schedule');
      expect(r.tasks).toHaveLength(2);
    }
    const tasks = (await api.api('GET', `/api/v2/tasks?kind=pool.backup&startedBy=${encodeURIComponent(`schedule:${ids['every-minute']}`)}&limit=500`)).body.items as Array<{
      id: string;
      state: string;
      payload: { poolId: string; scheduledFor: string };
    }>;
    expect(tasks).toHaveLength(2 * runs.length);
    for (const at of expected) {
      const mine = tasks.filter((x) => x.payload.scheduledFor === at);
      expect(mine.map((x) => x.payload.poolId).sort(), at).toEqual([pools.a, pools.b].sort());
    }
    const done = tasks.filter((x) => expected.includes(x.payload.scheduledFor));
    expect(done.every((x) => x.state === 'succeeded')).toBe(true);
    // The pool backups ran on the worker processes (whichever took the job): "started on <host>:<pid>:…".
    for (const x of done) {
      const first = (await api.server.services.tasks.logs(x.id)).items[0]!.message;
      expect(procs.some((p) => first.includes(`:${p.pid}:`)), first).toBe(true);
    }

    expect(await runsOf('disabled')).toEqual([]);
    const rescheduled = (await runsOf('rescheduled')).filter((r) => expected.includes(r.scheduledFor));
    expect(rescheduled.map((r) => r.scheduledFor).sort()).toEqual(expected);
    expect(rescheduled.every((r) => r.tasks.length === 1)).toBe(true);
    expect(await api.server.db.selectFrom('schedule_runs').selectAll().where('policy_id', '=', ids.deleted!).execute()).toEqual([]);

    const policy = (await api.api('GET', `/api/v2/policies/${ids['every-minute']}`)).body;
    expect(policy.lastRun.scheduledFor >= expected.at(-1)!).toBe(true);
    expect(['succeeded', 'running']).toContain(policy.lastRun.outcome);
    // BullMQ holds one job scheduler per enabled policy.
    expect((await api.server.services.jobs.bullQueues()[1]!.getJobSchedulers()).map((s) => s.key).sort()).toEqual(
      [`policy-${ids['every-minute']}`, `policy-${ids.rescheduled}`].sort(),
    );
  }
}

/**
 * Exactly once, cluster-wide: per database (PostgreSQL and MariaDB, each with its own Redis
 * prefix), two real `backroll start --roles worker,scheduler` processes, a policy firing every
 * minute, watched for at least three minutes (both installations in the same window). Every
 * occurrence starts one pool.backup per pool, once.
 */
describe.skipIf(available.length === 0)(`distributed scheduler on ${available.join(', ')}`, () => {
  const clusters = available.map((d) => new Cluster(d));

  beforeAll(async () => {
    await Promise.all(clusters.map((c) => c.start()));
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.close()));
  });

  it('fires each occurrence exactly once across two scheduler processes for three minutes', async () => {
    const watchFrom = Date.now();
    const first = Math.ceil((watchFrom + 1000) / MINUTE) * MINUTE;
    // At least three occurrences and at least three minutes of watching.
    const watchUntil = Math.max(watchFrom + 3 * MINUTE, first + 2 * MINUTE + 15_000);
    await sleep(watchUntil - Date.now());
    const expected: string[] = [];
    for (let at = first; at <= watchUntil - 15_000; at += MINUTE) expected.push(new Date(at).toISOString());
    expect(expected.length).toBeGreaterThanOrEqual(3);

    const results = await Promise.allSettled(clusters.map((c) => c.check(expected)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`on ${clusters[i]!.dialect}: ${(r.reason as Error)?.stack ?? String(r.reason)}`] : []));
    if (failed.length > 0) throw new Error(failed.join('\n\n'));
  }, 330_000);
});
