import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createTestDatabase, DIALECTS, unavailableReason, type TestDatabase } from '../../test/support/databases.js';
import { CompactionLedger } from './compaction.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  describe.skipIf(reason !== null)(`compaction ledger (${dialect})${reason ? ` (skipped: ${reason})` : ''}`, () => {
    let tdb: TestDatabase;
    let db: Db;
    beforeAll(async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateToLatest(db);
    });
    afterAll(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('keeps the first deletion until a compaction, per repository (long paths included)', async () => {
      const ledger = new CompactionLedger(db);
      const repo = `/srv/backup/${'x'.repeat(900)}/vm-a`;
      const other = '/srv/backup/vm-b';
      expect(await ledger.state(repo)).toEqual({ compactedAt: null, deletedSince: null });
      await ledger.deleted(repo, new Date('2026-12-01T00:00:00Z'));
      await ledger.deleted(repo, new Date('2026-12-02T00:00:00Z'));
      expect(await ledger.state(repo)).toEqual({ compactedAt: null, deletedSince: new Date('2026-12-01T00:00:00Z') });
      expect(await ledger.state(other)).toEqual({ compactedAt: null, deletedSince: null });
      await ledger.compacted(repo, new Date('2026-12-03T00:00:00Z'));
      expect(await ledger.state(repo)).toEqual({ compactedAt: new Date('2026-12-03T00:00:00Z'), deletedSince: null });
      await ledger.deleted(repo, new Date('2026-12-04T00:00:00Z'));
      expect(await ledger.state(repo)).toEqual({ compactedAt: new Date('2026-12-03T00:00:00Z'), deletedSince: new Date('2026-12-04T00:00:00Z') });
      // A compaction of a repository without a row (e.g. a restore point deleted by hand first).
      await ledger.compacted(other, new Date('2026-12-05T00:00:00Z'));
      expect(await ledger.state(other)).toEqual({ compactedAt: new Date('2026-12-05T00:00:00Z'), deletedSince: null });
      expect(await db.selectFrom('repository_compactions').select('repository').where('repository', '=', repo).execute()).toHaveLength(1);
    });

    it('two writers racing on a new repository leave one row', async () => {
      const repo = '/srv/backup/race';
      const a = new CompactionLedger(db);
      const b = new CompactionLedger(db);
      await Promise.all([a.deleted(repo, new Date('2026-12-01T00:00:00Z')), b.compacted(repo, new Date('2026-12-01T00:00:01Z'))]);
      const rows = await db.selectFrom('repository_compactions').selectAll().where('repository', '=', repo).execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.compacted_at).not.toBeNull();
    });
  });
}
