import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { createJobSystem } from '../../src/app/job-system.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

/**
 * A worker whose task-lease renewals keep failing (its database connection is gone) stops the
 * handler before the lease can run out: past it another worker declares the task dead and
 * recovers it, which must never overlap a handler still mutating the VM.
 */
describe('task lease renewal failures', () => {
  let tdb: TestDatabase;

  beforeAll(async () => {
    tdb = await createTestDatabase('sqlite');
    const db = openDatabase(tdb.config);
    await migrateToLatest(db);
    await db.destroy();
  });
  afterAll(async () => {
    await tdb.drop();
  });

  it('abort the running handler before its lease runs out', async () => {
    const db: Db = openDatabase(tdb.config);
    const config = loadConfig({ BACKROLL_TASK_LEASE_SECONDS: '3' });
    const jobs = createJobSystem({
      db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      jobs: config.jobs,
      scheduler: config.scheduler,
      policies: { find: async () => undefined, listEnabled: async () => [], poolsOf: async () => [] },
    });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let aborted: { after: number; reason: unknown } | undefined;
    let lostAt = 0;
    jobs.tasks.registerHandler('pool.backup', async () => ({}));
    jobs.tasks.registerHandler('test.hold', async (_p, ctx) => {
      started();
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = { after: Date.now() - lostAt, reason: ctx.signal.reason };
          resolve();
        }, { once: true });
        setTimeout(resolve, 8000);
      });
    });
    await jobs.start({ worker: true, scheduler: false });
    await jobs.tasks.submit('test.hold', {});
    await running;
    // Every renewal from now on fails.
    await db.destroy();
    lostAt = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    expect(aborted, 'the handler was not aborted').toBeDefined();
    expect(aborted!.reason).toMatchObject({ code: 'TASK.INTERRUPTED', message: 'the task lease was lost' });
    // The lease (3 s from the last renewal, at most 1 s before the loss) had not run out yet.
    expect(aborted!.after).toBeLessThan(3000);
    await jobs.close().catch(() => undefined);
  }, 20_000);
});
