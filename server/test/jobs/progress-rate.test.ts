import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

const MiB = 1024 ** 2;

/**
 * The executor adds a measured rate when a handler reports bytes without one, as the
 * incremental reader does ("vda: incremental: 6 MiB of 1 GiB read", bytes read / to read).
 * A real server (SQLite, embedded jobs), the task read back through the API.
 */
describe('task progress rate', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite', {}, {
      handlers: (tasks) =>
        tasks.registerHandler('test.read', async (_p, ctx) => {
          ctx.progress({ step: 'vda: incremental: 0 B of 1.0 GiB read (8.0 MiB to read)', bytesDone: 0, bytesTotal: 8 * MiB });
          await new Promise((r) => setTimeout(r, 1500));
          ctx.progress({ step: 'vda: incremental: 6.0 MiB of 1.0 GiB read (8.0 MiB to read)', bytesDone: 6 * MiB, bytesTotal: 8 * MiB });
          await new Promise((r) => setTimeout(r, 1200)); // past the progress throttle
          return {};
        }),
    });
  });
  afterAll(async () => t?.close());

  it('shows bytes read / to read and a rate for a handler that reports no rate', async () => {
    const res = await t.api('POST', '/api/v2/tasks', { body: { kind: 'test.read', payload: {} } });
    expect(res.status, res.text).toBe(201);
    let task = res.body;
    for (let i = 0; i < 100 && !['succeeded', 'failed'].includes(task.state); i++) {
      await new Promise((r) => setTimeout(r, 100));
      task = (await t.api('GET', `/api/v2/tasks/${res.body.id}`)).body;
    }
    expect(task.state).toBe('succeeded');
    expect(task.progress).toMatchObject({ bytesDone: 6 * MiB, bytesTotal: 8 * MiB, step: 'vda: incremental: 6.0 MiB of 1.0 GiB read (8.0 MiB to read)' });
    // 6 MiB in a little over 1.5 s.
    expect(task.progress.rateBytesPerSecond).toBeGreaterThan(2 * MiB);
    expect(task.progress.rateBytesPerSecond).toBeLessThanOrEqual(4 * MiB);
  });
});
