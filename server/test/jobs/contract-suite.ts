import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseDialect } from '../../src/config/config.js';
import type { TaskView } from '../../src/tasks/task.service.js';
import { dropPrefix, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { Probe, registerTestHandlers } from '../support/test-handlers.js';

export type Mode = 'embedded' | 'distributed';

/** Reads a Server-Sent Events stream with a bearer token until it ends. */
export async function readEvents(url: string, token: string, onEvent?: (e: { event: string; id?: string; data: unknown }) => void) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
  const events: Array<{ event: string; id?: string; data: unknown }> = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let idx: number;
    while ((idx = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, idx);
      buffer = buffer.slice(idx + 2);
      const e: { event: string; id?: string; data: unknown } = { event: 'message', data: undefined };
      let hasData = false;
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) e.event = line.slice(7);
        else if (line.startsWith('id: ')) e.id = line.slice(4);
        else if (line.startsWith('data: ')) {
          e.data = JSON.parse(line.slice(6));
          hasData = true;
        }
      }
      if (hasData) {
        events.push(e);
        onEvent?.(e);
      }
    }
  }
  return { status: res.status, contentType: res.headers.get('content-type'), events };
}

const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000) => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * The job-system contract: the same tests against the embedded runner and
 * against BullMQ, through the real API with real tokens and real databases.
 */
export function jobContractSuite(mode: Mode, dialect: DatabaseDialect): void {
  describe(`job system contract: ${mode} on ${dialect}`, () => {
    const probe = new Probe();
    const prefix = uniquePrefix();
    const env = {
      BACKROLL_MAX_CONCURRENT_TASKS: '3',
      BACKROLL_MAX_TASKS_PER_HOST: '2',
      BACKROLL_MAX_TASKS_PER_STORAGE: '2',
      BACKROLL_TASK_LEASE_SECONDS: '5',
      ...(mode === 'distributed' ? { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: prefix, BACKROLL_WORKER_CONCURRENCY: '4' } : {}),
    };
    let t: TestServer;
    /** A second worker process-equivalent (its own BullMQ worker, lease owner and executor) in distributed mode. */
    let second: TestServer | undefined;
    const tasks = () => t.server.services.tasks;
    const wait = (id: string, ms = 20_000) => tasks().waitFor(id, ms);

    beforeAll(async () => {
      t = await startTestServer(dialect, env, { handlers: (ts) => registerTestHandlers(ts, probe) });
      if (mode === 'distributed') {
        second = await startTestServer(dialect, env, { roles: ['worker'], database: t.db, dataDir: t.dataDir, handlers: (ts) => registerTestHandlers(ts, probe) });
      }
    });
    afterAll(async () => {
      await second?.close();
      await t?.close();
      if (mode === 'distributed') await dropPrefix(prefix);
    });

    it(`runs in ${mode} mode`, async () => {
      const res = await t.api('GET', '/api/v2/tasks/kinds');
      expect(res.body.mode).toBe(mode);
      expect(res.body.kinds).toEqual(expect.arrayContaining(['pool.backup', 'test.echo', 'test.wait']));
    });

    it('runs a task to success with result, progress, timings, log and who started it', async () => {
      const res = await t.api('POST', '/api/v2/tasks', { body: { kind: 'test.echo', payload: { value: 42 }, target: { type: 'vm', id: 'vm-1' } } });
      expect(res.status, res.text).toBe(201);
      expect(['queued', 'running', 'succeeded']).toContain(res.body.state);
      expect(res.body.startedBy).toMatch(/^client:/);
      const done = await wait(res.body.id);
      expect(done.state).toBe('succeeded');
      const detail = (await t.api('GET', `/api/v2/tasks/${res.body.id}`)).body;
      expect(detail).toMatchObject({
        kind: 'test.echo',
        state: 'succeeded',
        target: { type: 'vm', id: 'vm-1' },
        payload: { value: 42 },
        result: { echoed: 42, startedBy: res.body.startedBy },
        error: null,
        attempts: 1,
        progress: { percent: 100, bytesDone: 1024, bytesTotal: 1024, rateBytesPerSecond: 2048, step: 'done' },
        children: { total: 0, byState: {} },
        worker: null,
      });
      expect(new Date(detail.startedAt).getTime()).toBeGreaterThanOrEqual(new Date(detail.createdAt).getTime());
      expect(new Date(detail.finishedAt).getTime()).toBeGreaterThanOrEqual(new Date(detail.startedAt).getTime());

      const log = (await t.api('GET', `/api/v2/tasks/${res.body.id}/log`)).body;
      const messages = log.items.map((l: { message: string }) => l.message);
      expect(messages).toEqual(expect.arrayContaining(['echo: starting', 'echo: second line']));
      expect(log.items.map((l: { seq: number }) => l.seq)).toEqual(log.items.map((_: unknown, i: number) => i + 1));
      expect(log.items.find((l: { message: string }) => l.message === 'echo: second line').level).toBe('warn');
      const after = (await t.api('GET', `/api/v2/tasks/${res.body.id}/log?after=${log.lastSeq - 1}`)).body;
      expect(after.items).toHaveLength(1);
      expect(after.items[0].seq).toBe(log.lastSeq);
      expect((await t.api('GET', `/api/v2/tasks/${res.body.id}/log?after=${log.lastSeq}`)).body).toEqual({ items: [], lastSeq: log.lastSeq });
    });

    it('records failures with the handler error code', async () => {
      const coded = await tasks().submit('test.fail', { code: 'TEST.DISK_FULL' });
      expect(await wait(coded.id)).toMatchObject({ state: 'failed', error: { code: 'TEST.DISK_FULL', message: 'the test handler failed on purpose' } });
      const plain = await tasks().submit('test.fail', { plain: true });
      expect(await wait(plain.id)).toMatchObject({ state: 'failed', error: { code: 'TASK.FAILED', message: 'plain failure' } });
      const log = await tasks().logs(plain.id);
      expect(log.items.at(-1)).toMatchObject({ level: 'error', message: 'failed: plain failure' });
    });

    it('fails a task of an unknown kind with a clear code; the API refuses the kind up front', async () => {
      const task = await tasks().submit('no.such-kind', {});
      const done = await wait(task.id);
      expect(done.state).toBe('failed');
      expect(done.error?.code).toBe('TASK.UNKNOWN_KIND');
      expect(done.error?.message).toContain('no.such-kind');
      const res = await t.api('POST', '/api/v2/tasks', { body: { kind: 'no.such-kind' } });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('TASK.UNKNOWN_KIND');
      expect((await t.api('POST', '/api/v2/tasks', { body: { kind: 'Bad Kind!' } })).body.code).toBe('TASK.KIND_INVALID');
    });

    it('cancels a queued task at once and a running one through its signal', async () => {
      const host = randomUUID();
      const gate = `gate-${randomUUID()}`;
      // Per-host limit 2: the third task on the host stays queued.
      const running = await Promise.all([1, 2].map(() => tasks().submit('test.wait', { gate }, { resources: { hostId: host } })));
      await until('both running', async () => (await Promise.all(running.map((r) => tasks().get(r.id)))).every((x) => x.state === 'running'));
      const queued = await tasks().submit('test.wait', { gate }, { resources: { hostId: host } });
      await new Promise((r) => setTimeout(r, 700));
      expect((await tasks().get(queued.id)).state).toBe('queued');

      const c1 = await t.api('POST', `/api/v2/tasks/${queued.id}/cancel`);
      expect(c1.status, c1.text).toBe(200);
      expect(c1.body).toMatchObject({ state: 'canceled', attempts: 0, cancelRequested: true, error: { code: 'TASK.CANCELED' } });

      const c2 = await t.api('POST', `/api/v2/tasks/${running[0]!.id}/cancel`);
      expect(c2.status).toBe(200);
      expect(c2.body.cancelRequested).toBe(true);
      const ended = await wait(running[0]!.id);
      expect(ended).toMatchObject({ state: 'canceled', error: { code: 'TASK.CANCELED' } });
      const log = (await tasks().logs(running[0]!.id)).items.map((l) => l.message);
      expect(log).toEqual(expect.arrayContaining([expect.stringMatching(/^cancel requested by client:/), 'clean-up ran']));

      const again = await t.api('POST', `/api/v2/tasks/${running[0]!.id}/cancel`);
      expect(again.status).toBe(409);
      expect(again.body.code).toBe('TASK.NOT_CANCELABLE');
      expect((await t.api('POST', `/api/v2/tasks/${running[1]!.id}/cancel`, { token: t.viewerToken })).status).toBe(403);
      probe.open(gate);
      expect((await wait(running[1]!.id)).state).toBe('succeeded');
    });

    it('retries a task as a new linked task with the same payload', async () => {
      const failed = await tasks().submit('test.fail', { code: 'TEST.ONCE' }, { target: { type: 'vm', id: 'vm-9' } });
      await wait(failed.id);
      const res = await t.api('POST', `/api/v2/tasks/${failed.id}/retry`);
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ kind: 'test.fail', retryOf: failed.id, payload: { code: 'TEST.ONCE' }, target: { type: 'vm', id: 'vm-9' } });
      expect(res.body.id).not.toBe(failed.id);
      expect(res.body.startedBy).toMatch(/^client:/);
      expect((await wait(res.body.id)).state).toBe('failed');
      const ok = await tasks().submit('test.echo', {});
      await wait(ok.id);
      const refused = await t.api('POST', `/api/v2/tasks/${ok.id}/retry`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('TASK.NOT_RETRYABLE');
      expect((await t.api('POST', `/api/v2/tasks/${randomUUID()}/retry`)).body.code).toBe('TASK.NOT_FOUND');
    });

    it('streams progress, log lines and the final state over Server-Sent Events', async () => {
      const gate = `sse-${randomUUID()}`;
      const task = await tasks().submit('test.wait', { gate });
      await until('running', async () => (await tasks().get(task.id)).state === 'running');
      let opened = false;
      const stream = readEvents(`${t.url}/api/v2/tasks/${task.id}/events`, t.adminToken, (e) => {
        if (!opened && e.event === 'log' && String((e.data as { message: string }).message).startsWith('waiting for gate')) {
          opened = true;
          probe.open(gate);
        }
      });
      const { status, contentType, events } = await stream;
      expect(status).toBe(200);
      expect(contentType).toMatch(/^text\/event-stream/);
      const kinds = events.map((e) => e.event);
      expect(kinds[0]).toBe('task');
      expect(kinds.at(-1)).toBe('end');
      expect((events.at(-1)!.data as TaskView).state).toBe('succeeded');
      const logs = events.filter((e) => e.event === 'log');
      expect(logs.map((e) => Number(e.id))).toEqual(logs.map((e) => (e.data as { seq: number }).seq));
      expect(logs.map((e) => (e.data as { message: string }).message)).toEqual(expect.arrayContaining([`waiting for gate ${gate}`, 'clean-up ran']));
      expect(events.some((e) => e.event === 'task' && (e.data as TaskView).progress.step === 'waiting')).toBe(true);
      // Resuming after a seq only sends the later lines; an ended task ends the stream at once.
      const resumed = await readEvents(`${t.url}/api/v2/tasks/${task.id}/events?after=${logs.at(-2)!.id}`, t.adminToken);
      expect(resumed.events.filter((e) => e.event === 'log').map((e) => e.id)).toEqual([logs.at(-1)!.id]);
      expect((await fetch(`${t.url}/api/v2/tasks/${task.id}/events`)).status).toBe(401);
      expect((await t.api('GET', `/api/v2/tasks/${randomUUID()}/events`)).status).toBe(404);
    });

    it('ends a parent from its children: partial when some fail', async () => {
      const parent = await tasks().submit('test.parent', {
        children: [
          { kind: 'test.echo', payload: { value: 1 } },
          { kind: 'test.echo', payload: { value: 2 } },
          { kind: 'test.fail', payload: {} },
        ],
      });
      const done = await wait(parent.id);
      expect(done).toMatchObject({ state: 'partial', error: { code: 'TASK.SOME_CHILDREN_FAILED' } });
      const detail = (await t.api('GET', `/api/v2/tasks/${parent.id}`)).body;
      expect(detail.children).toEqual({ total: 3, byState: { succeeded: 2, failed: 1 } });
      expect(detail.result.children).toHaveLength(3);
      const children = (await t.api('GET', `/api/v2/tasks?parentId=${parent.id}`)).body;
      expect(children.total).toBe(3);
      expect(children.items.every((c: TaskView) => c.parentId === parent.id)).toBe(true);
      const all = await tasks().submit('test.parent', { children: [{ kind: 'test.echo', payload: {} }] });
      expect((await wait(all.id)).state).toBe('succeeded');
      const none = await tasks().submit('test.parent', { children: [{ kind: 'test.fail', payload: {} }] });
      expect((await wait(none.id)).state).toBe('failed');
    });

    it('lists tasks with filters and pagination', async () => {
      const since = new Date().toISOString();
      const target = randomUUID();
      const a = await tasks().submit('test.echo', {}, { target: { type: 'pool', id: target } });
      const b = await tasks().submit('test.fail', {}, { target: { type: 'pool', id: target } });
      await wait(a.id);
      await wait(b.id);
      const q = (s: string) => t.api('GET', `/api/v2/tasks?${s}`).then((r) => r.body);
      expect((await q(`targetType=pool&targetId=${target}`)).items.map((x: TaskView) => x.id)).toEqual([b.id, a.id]);
      expect((await q(`targetId=${target}&state=failed`)).items.map((x: TaskView) => x.id)).toEqual([b.id]);
      expect((await q(`targetId=${target}&state=failed,succeeded&kind=test.echo`)).items.map((x: TaskView) => x.id)).toEqual([a.id]);
      const page = await q(`createdAfter=${encodeURIComponent(since)}&limit=1&offset=1`);
      expect(page).toMatchObject({ total: 2, limit: 1, offset: 1 });
      expect(page.items.map((x: TaskView) => x.id)).toEqual([a.id]);
      expect((await q(`createdBefore=${encodeURIComponent(since)}&targetId=${target}`)).total).toBe(0);
      expect((await q('parentId=none&limit=500')).items.every((x: TaskView) => x.parentId === null)).toBe(true);
      expect((await t.api('GET', '/api/v2/tasks?state=done')).body.code).toBe('REQUEST.INVALID');
      expect((await t.api('GET', '/api/v2/tasks', { token: t.viewerToken })).status).toBe(200);
    });

    it('reaches and holds the concurrency limits (3 in all, 2 per host) with 50 tasks queued at once', async () => {
      probe.reset();
      const hosts = [randomUUID(), randomUUID()];
      const submitted = await tasks().submitMany(
        Array.from({ length: 50 }, (_, i) => ({ kind: 'test.slow', payload: { ms: 120, host: hosts[i % 2] }, opts: { resources: { hostId: hosts[i % 2] } } })),
      );
      await Promise.all(submitted.map((s) => wait(s.id, 60_000)));
      expect(probe.maxInFlight).toBe(3);
      expect(probe.maxPerHost).toBe(2);
      const states = await Promise.all(submitted.map(async (s) => (await tasks().get(s.id)).state));
      expect(states.every((s) => s === 'succeeded')).toBe(true);
      if (second) {
        // Both workers took a share.
        const workers = new Set((await Promise.all(submitted.map((s) => tasks().logs(s.id)))).map((l) => l.items[0]?.message.split(' ')[2]));
        expect(workers.size).toBe(2);
      }
    }, 90_000);

    it('runs tasks of one storage exactly two at a time (the per-storage limit), below the global limit of 3', async () => {
      probe.reset();
      const storage = randomUUID();
      const submitted = await tasks().submitMany(
        Array.from({ length: 8 }, () => ({ kind: 'test.slow', payload: { ms: 150, storage }, opts: { resources: { storageId: storage } } })),
      );
      await Promise.all(submitted.map((s) => wait(s.id, 30_000)));
      // Reached, not only respected: two ran at once, never a third (the global limit would allow 3).
      expect(probe.maxPerStorage).toBe(2);
      expect(probe.maxInFlight).toBe(2);
      expect((await Promise.all(submitted.map(async (s) => (await tasks().get(s.id)).state))).every((s) => s === 'succeeded')).toBe(true);
    });

    it('keeps queued tasks across a restart', async () => {
      // Its own database and queue: a process without the worker role queues a task and
      // stops; a worker process comes up later and runs it.
      const own = { ...env, ...(mode === 'distributed' ? { BACKROLL_REDIS_PREFIX: `${prefix}-restart` } : {}) };
      const producer = await startTestServer(dialect, own, { roles: ['api'], handlers: (ts) => registerTestHandlers(ts, probe) });
      try {
        const queued = await producer.server.services.tasks.submit('test.echo', { value: 'persisted' });
        await producer.server.close();
        const worker = await startTestServer(dialect, own, { roles: ['worker'], database: producer.db, dataDir: producer.dataDir, handlers: (ts) => registerTestHandlers(ts, probe) });
        try {
          expect(await worker.server.services.tasks.waitFor(queued.id, 20_000)).toMatchObject({ state: 'succeeded', result: { echoed: 'persisted' } });
        } finally {
          await worker.close();
        }
      } finally {
        await producer.db.drop();
        await import('node:fs').then((fs) => fs.rmSync(producer.dataDir, { recursive: true, force: true }));
        if (mode === 'distributed') await dropPrefix(`${prefix}-restart`);
      }
    });
  });
}
