import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { startBackroll, type BackrollProcess } from '../support/processes.js';
import { startTestServer, type TestServer } from '../support/server.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

/**
 * Embedded mode across a crash: a real `backroll start` (SQLite, PostgreSQL, MariaDB) is killed with
 * SIGKILL while a task runs and another is queued; the next start marks the
 * running one interrupted, runs its kind's recovery, and runs the queued one.
 */
for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  describe.skipIf(reason !== null)(`an embedded process killed mid-task (${dialect})${reason ? ` (skipped: ${reason})` : ''}`, () => {
    const markers = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-markers-'));
    let api: TestServer;
    const procs: BackrollProcess[] = [];
    const start = async () => {
      const p = startBackroll('worker,scheduler', { BACKROLL_DATA_DIR: api.dataDir, BACKROLL_DATABASE_URL: dialect === 'sqlite' ? `sqlite:${api.db.config.url}` : api.db.config.url, BACKROLL_TEST_MARKER_DIR: markers });
      procs.push(p);
      await p.waitFor('"msg":"worker started"');
      return p;
    };
    const tasks = () => api.server.services.tasks;

    beforeAll(async () => {
      // The test submits through an api-only server on the same SQLite file.
      api = await startTestServer(dialect, {}, { roles: ['api'] });
    });
    afterAll(async () => {
      await Promise.all(procs.map((p) => p.stop()));
      await api?.close();
      fs.rmSync(markers, { recursive: true, force: true });
    });

    it('interrupts and recovers the running task at the next start and runs the queued one', async () => {
      const first = await start();
      const running = await tasks().submit('test.block', {});
      const end = Date.now() + 20_000;
      while (!fs.existsSync(path.join(markers, `${running.id}.started`))) {
        if (Date.now() > end) throw new Error(`never started:\n${first.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await tasks().get(running.id)).state).toBe('running');
      await first.kill9();
      const queued = await tasks().submit('test.quick', { after: 'crash' });
      expect((await tasks().get(running.id)).state).toBe('running');

      const second = await start();
      const ended = await tasks().waitFor(running.id, 20_000);
      expect(ended).toMatchObject({ state: 'interrupted', error: { code: 'TASK.INTERRUPTED', message: 'the process running it stopped before it ended (found at start)' } });
      expect(Number(fs.readFileSync(path.join(markers, `${running.id}.recovered`), 'utf8'))).toBe(second.pid);
      expect((await tasks().logs(running.id)).items.map((l) => l.message)).toEqual(
        expect.arrayContaining(['recovery: cleaning up after the interrupted run', 'recovery finished']),
      );
      expect(await tasks().waitFor(queued.id, 20_000)).toMatchObject({ state: 'succeeded', result: { pid: second.pid, payload: { after: 'crash' } } });
      expect(second.output()).toContain('tasks left running by the previous process were marked interrupted');
    });

    it('on SIGTERM aborts running handlers through their signal and records them interrupted', async () => {
      const p = procs.at(-1)!;
      const task = await tasks().submit('test.block', {});
      const end = Date.now() + 20_000;
      while (!fs.existsSync(path.join(markers, `${task.id}.started`))) {
        if (Date.now() > end) throw new Error(`never started:\n${p.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await p.stop();
      expect(p.child.exitCode).toBe(0);
      const ended = await tasks().get(task.id);
      expect(ended).toMatchObject({ state: 'interrupted', error: { code: 'TASK.INTERRUPTED' } });
      expect(ended.error!.message).toMatch(/shut down while the task ran$/);
      // The handler cleaned up itself (its signal aborted): no recovery needed.
      expect(fs.existsSync(path.join(markers, `${task.id}.recovered`))).toBe(false);
    });
  });
}
