/**
 * Task creation order on every database: tasks created in the same millisecond (one
 * `submitMany` batch, or two submits in a row) are listed newest first and dispatched
 * oldest first in the order they were created, never by their random ids.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { DIALECTS, createTestDatabase, unavailableReason, type TestDatabase } from '../../test/support/databases.js';
import { describeWhenAvailable } from '../../test/support/unavailable.js';
import { TaskRepository, type NewTask } from './task.repository.js';

const reasons: Record<string, string | null> = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

/** Ids chosen so that id order is the reverse of creation order: a tie broken by id shows. */
const idFor = (n: number) => `${(0xffffffff - n).toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`;
const task = (n: number, targetId: string): NewTask => ({
  id: idFor(n),
  kind: 'test.order',
  payload: { n },
  targetType: 'test',
  targetId,
  parentId: null,
  retryOf: null,
  startedBy: null,
  resources: { hostId: null, storageId: null },
  scheduleRunId: null,
});

for (const dialect of DIALECTS) {
  describeWhenAvailable(`task creation order on ${dialect}`, reasons[dialect] ?? null, () => {
    let tdb: TestDatabase;
    let db: Db;
    let repo: TaskRepository;
    const SAME_MS = '2026-03-01T12:00:00.000Z';

    beforeAll(async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateToLatest(db);
      repo = new TaskRepository(db);
    });
    afterAll(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('two tasks inserted one after the other in the same millisecond list newest first', async () => {
      await repo.insert([task(1, 'pair')], SAME_MS);
      await repo.insert([task(2, 'pair')], SAME_MS);
      const page = await repo.list({ targetId: 'pair' }, { limit: 10, offset: 0 });
      expect(page.items.map((t) => t.id)).toEqual([idFor(2), idFor(1)]);
      const [second, first] = page.items;
      expect(second!.createdAt > first!.createdAt).toBe(true);
      // Still the clock's millisecond or just after it: no invented time far from now.
      expect(Date.parse(second!.createdAt) - Date.parse(SAME_MS)).toBeLessThan(10);
    });

    it('a batch keeps its order: listed newest first, dispatched oldest first', async () => {
      const later = '2026-03-01T12:00:01.000Z';
      const batch = [3, 4, 5, 6, 7].map((n) => task(n, 'batch'));
      await repo.insert(batch, later);
      const listed = await repo.list({ targetId: 'batch' }, { limit: 10, offset: 0 });
      expect(listed.items.map((t) => t.id)).toEqual([7, 6, 5, 4, 3].map(idFor));
      const page2 = await repo.list({ targetId: 'batch' }, { limit: 2, offset: 2 });
      expect(page2.items.map((t) => t.id)).toEqual([5, 4].map(idFor));
      const queued = (await repo.queued(100)).map((t) => t.id);
      expect(queued).toEqual([1, 2, 3, 4, 5, 6, 7].map(idFor));
    });

    it('a clock that stands still or goes back does not reorder: creation times only move forward', async () => {
      await repo.insert([task(8, 'back')], '2026-03-01T12:00:00.500Z');
      const all = await repo.list({ kind: 'test.order' }, { limit: 100, offset: 0 });
      expect(all.items[0]!.id).toBe(idFor(8));
      const created = all.items.map((t) => t.createdAt);
      expect(new Set(created).size).toBe(created.length);
      expect([...created].sort().reverse()).toEqual(created);
    });

    it('a task never starts or finishes before it was created', async () => {
      const [t1] = await repo.queued(1);
      expect(await repo.claim(t1!.id, 'owner', '2026-03-01T13:00:00.000Z', SAME_MS)).toBe(true);
      expect(await repo.transition(t1!.id, 'succeeded', SAME_MS, { finished_at: SAME_MS })).toBe(true);
      const done = (await repo.findById(t1!.id))!;
      expect(done.startedAt! >= done.createdAt).toBe(true);
      expect(done.finishedAt! >= done.startedAt!).toBe(true);
    });
  });
}
