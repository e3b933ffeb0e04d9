import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/config.js';
import { migrateToLatest, openDatabase, type Db } from '../../src/db/database.js';
import { AppError } from '../../src/errors.js';
import { scopesOf } from '../../src/tasks/task-slots.js';
import { createJobSystem } from '../../src/app/job-system.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

/** The job system's start-up rules, on a real SQLite database. */
describe('job system start-up', () => {
  let tdb: TestDatabase;
  let db: Db;
  const config = loadConfig({});
  const make = () =>
    createJobSystem({
      db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      jobs: config.jobs,
      scheduler: config.scheduler,
      policies: { find: async () => undefined, listEnabled: async () => [], poolsOf: async () => [] },
    });

  beforeAll(async () => {
    tdb = await createTestDatabase('sqlite');
    db = openDatabase(tdb.config);
    await migrateToLatest(db);
  });
  afterAll(async () => {
    await db.destroy();
    await tdb.drop();
  });

  it('refuses to start a worker or scheduler without a handler for the scheduled kind', async () => {
    for (const roles of [{ worker: true, scheduler: false }, { worker: false, scheduler: true }]) {
      const jobs = make();
      const err = await jobs.start(roles).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ code: 'TASK.HANDLER_MISSING', details: { missing: ['pool.backup'] } });
      expect((err as Error).message).toContain('pool.backup');
      await jobs.close();
    }
    // An API-only process starts nothing and needs no handler.
    const api = make();
    await expect(api.start({ worker: false, scheduler: false })).resolves.toBeUndefined();
    await api.close();
    const ok = make();
    ok.tasks.registerHandler('pool.backup', async () => ({}));
    await expect(ok.start({ worker: true, scheduler: true })).resolves.toBeUndefined();
    await ok.close();
  });

  it('takes exactly one handler per well-formed kind', () => {
    const jobs = make();
    jobs.tasks.registerHandler('vm.backup', async () => ({}));
    expect(() => jobs.tasks.registerHandler('vm.backup', async () => ({}))).toThrow(expect.objectContaining({ code: 'TASK.HANDLER_DUPLICATE' }));
    expect(() => jobs.tasks.registerHandler('VM Backup', async () => ({}))).toThrow(expect.objectContaining({ code: 'TASK.KIND_INVALID' }));
    expect(jobs.tasks.handlerKinds()).toEqual(['vm.backup']);
  });

  it('counts a task against the global, host and storage limits it names', () => {
    const limits = { global: 4, perHost: 2, perStorage: 3 };
    expect(scopesOf({}, limits)).toEqual([{ scope: 'global', limit: 4 }]);
    expect(scopesOf({ hostId: 'h', storageId: 's' }, limits)).toEqual([
      { scope: 'global', limit: 4 },
      { scope: 'host:h', limit: 2 },
      { scope: 'storage:s', limit: 3 },
    ]);
  });
});
