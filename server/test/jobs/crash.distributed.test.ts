import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unavailableReason } from '../support/databases.js';
import { startBackroll, type BackrollProcess } from '../support/processes.js';
import { dropPrefix, REDIS_URL, redisUnavailableReason, uniquePrefix } from '../support/redis.js';
import { startTestServer, type TestServer } from '../support/server.js';

const redisReason = await redisUnavailableReason();

/**
 * kill -9 of a real worker process mid-task (BullMQ on Redis, tasks on PostgreSQL or MariaDB):
 * the task never stays `running`; another worker marks it interrupted once the lease
 * runs out, runs the kind's recovery, and retries it when the kind asks for that.
 */
for (const dialect of ['postgres', 'mysql'] as const) {
  const reason = redisReason ?? (await unavailableReason(dialect));
  describe.skipIf(reason !== null)(`a killed distributed worker (${dialect})${reason ? ` (skipped: ${reason})` : ''}`, () => {
    const prefix = uniquePrefix();
    const markers = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-markers-'));
    const env = { BACKROLL_REDIS_PREFIX: prefix, BACKROLL_TASK_LEASE_SECONDS: '4', BACKROLL_MAX_CONCURRENT_TASKS: '4' };
    let api: TestServer;
    const workers: BackrollProcess[] = [];

    const spawnWorker = async () => {
      const w = startBackroll('worker', {
        ...env,
        BACKROLL_REDIS_URL: REDIS_URL,
        BACKROLL_DATA_DIR: api.dataDir,
        BACKROLL_DATABASE_URL: api.db.config.url,
        BACKROLL_TEST_MARKER_DIR: markers,
      });
      workers.push(w);
      await w.waitFor('"msg":"worker started"');
      return w;
    };
    const tasks = () => api.server.services.tasks;
    const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
      const end = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; worker logs:\n${workers.map((w) => w.output().slice(-2000)).join('\n---\n')}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const runningOn = async (id: string): Promise<BackrollProcess> => {
      await until(`task ${id} running`, async () => (await tasks().get(id)).state === 'running' && fs.existsSync(path.join(markers, `${id}.started`)));
      const pid = Number(fs.readFileSync(path.join(markers, `${id}.started`), 'utf8'));
      const w = workers.find((x) => x.pid === pid);
      expect(w, `task ran on pid ${pid}, not one of the workers`).toBeDefined();
      expect((await tasks().get(id)).worker).toContain(`:${pid}:`);
      return w!;
    };

    beforeAll(async () => {
      api = await startTestServer(dialect, { ...env, BACKROLL_REDIS_URL: REDIS_URL }, { roles: ['api'] });
      await spawnWorker();
      await spawnWorker();
    });
    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await api?.close();
      await dropPrefix(prefix);
      fs.rmSync(markers, { recursive: true, force: true });
    });

    it('marks the task interrupted and recovers it on the surviving worker', async () => {
      const task = await tasks().submit('test.block', {});
      const victim = await runningOn(task.id);
      const killedAt = Date.now();
      await victim.kill9();
      const ended = await tasks().waitFor(task.id, 30_000);
      expect(ended).toMatchObject({ state: 'interrupted', error: { code: 'TASK.INTERRUPTED' } });
      // Within the lease (4 s) plus a reaper period, not "forever".
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      await until('recovery', async () => fs.existsSync(path.join(markers, `${task.id}.recovered`)));
      const recoveredBy = Number(fs.readFileSync(path.join(markers, `${task.id}.recovered`), 'utf8'));
      expect(recoveredBy).not.toBe(victim.pid);
      const log = (await tasks().logs(task.id)).items.map((l) => l.message);
      expect(log).toEqual(expect.arrayContaining([expect.stringMatching(/^interrupted: its worker stopped renewing the lease/), 'recovery finished']));
    });

    it('retries an interrupted task automatically when its kind asks for it', async () => {
      await spawnWorker();
      const task = await tasks().submit('test.block-retry', {});
      const victim = await runningOn(task.id);
      await victim.kill9();
      expect((await tasks().waitFor(task.id, 30_000)).state).toBe('interrupted');
      let retryId = '';
      await until('the automatic retry', async () => {
        const page = await tasks().list({ kind: 'test.block-retry' }, { limit: 10, offset: 0 });
        retryId = page.items.find((t) => t.retryOf === task.id)?.id ?? '';
        return retryId !== '';
      });
      const survivor = await runningOn(retryId);
      expect(survivor.pid).not.toBe(victim.pid);
      expect((await tasks().cancel(retryId, 'test')).cancelRequested).toBe(true);
      expect((await tasks().waitFor(retryId, 20_000)).state).toBe('canceled');
    });

    it('never runs an interrupted task again when BullMQ redelivers its stalled job', async () => {
      // By now the stalled checker (every 4 s) has handed the killed workers' jobs to the others.
      await new Promise((r) => setTimeout(r, 9000));
      expect(workers.some((w) => w.output().includes('task job stalled'))).toBe(true);
      const interrupted = await tasks().list({ states: ['interrupted'] }, { limit: 10, offset: 0 });
      expect(interrupted.total).toBe(2);
      for (const t of interrupted.items) expect(t.attempts).toBe(1);
      expect((await tasks().list({ states: ['running', 'queued'] }, { limit: 10, offset: 0 })).total).toBe(0);
    });
  });
}
