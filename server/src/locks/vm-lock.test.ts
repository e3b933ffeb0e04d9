import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { createTestDatabase, DIALECTS, unavailableReason, type TestDatabase } from '../../test/support/databases.js';
import { DEFAULT_VM_LOCK_LEASE_MS, VmLocks } from './vm-lock.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

const until = async (what: string, check: () => boolean, timeoutMs = 5000) => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  describe.skipIf(reason !== null)(`VM lock (lease row in ${dialect})${reason ? ` (skipped: ${reason})` : ''}`, () => {
    let tdb: TestDatabase;
    let db: Db;
    let now = new Date('2026-01-01T00:00:00Z').getTime();
    const clock = { now: () => new Date(now) };
    const realClock = { now: () => new Date() };

    const task = async (id: string, state: string) => {
      const at = new Date().toISOString();
      await db
        .insertInto('tasks')
        .values({ id, kind: 'vm.backup', state, attempts: 1, created_at: at, updated_at: at, awaiting_children: 0, payload: null, target_type: null, target_id: null, parent_id: null, progress_percent: null, bytes_done: null, bytes_total: null, rate_bytes_per_second: null, started_by: null, result: null, error_code: null, error_message: null, started_at: at, finished_at: null, progress_step: null, retry_of: null, resource_host_id: null, resource_storage_id: null, cancel_requested_at: null, lease_owner: null, lease_expires_at: null, schedule_run_id: null })
        .execute();
    };
    const setState = (id: string, state: string) => db.updateTable('tasks').set({ state }).where('id', '=', id).execute();

    beforeAll(async () => {
      tdb = await createTestDatabase(dialect);
      db = openDatabase(tdb.config);
      await migrateToLatest(db);
    });
    afterAll(async () => {
      await db?.destroy();
      await tdb?.drop();
    });

    it('refuses a second holder with VM.LOCKED, then frees the lock', async () => {
      const locks = new VmLocks(db, clock);
      let release!: () => void;
      const first = locks.withVmLock('vm-1', 'task:a', () => new Promise<string>((r) => (release = () => r('done'))), { purpose: 'backup' });
      await new Promise((r) => setTimeout(r, 50));
      await expect(locks.withVmLock('vm-1', 'task:b', async () => 'x')).rejects.toMatchObject({ code: 'VM.LOCKED', details: { holder: { owner: 'task:a', purpose: 'backup' } } });
      // Another VM is independent.
      await expect(locks.withVmLock('vm-2', 'task:b', async () => 'y')).resolves.toBe('y');
      release();
      await expect(first).resolves.toBe('done');
      await expect(locks.withVmLock('vm-1', 'task:b', async () => 'z')).resolves.toBe('z');
    });

    it('releases on error', async () => {
      const locks = new VmLocks(db, clock);
      await expect(locks.withVmLock('vm-3', 'a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      expect(await locks.holder('vm-3')).toBeUndefined();
    });

    it('takes over a lease whose holder died (expired)', async () => {
      const locks = new VmLocks(db, clock);
      // A crashed holder: its row stays, nobody renews it.
      await db.insertInto('vm_locks').values({ vm_id: 'vm-4', token: 't', owner: 'dead', purpose: 'backup', acquired_at: new Date(now).toISOString(), expires_at: new Date(now + 60_000).toISOString() }).execute();
      await expect(locks.withVmLock('vm-4', 'b', async () => 1)).rejects.toMatchObject({ code: 'VM.LOCKED' });
      now += 61_000;
      await expect(locks.withVmLock('vm-4', 'b', async () => 2)).resolves.toBe(2);
    });

    it('heartbeats keep the lease alive past its first expiry', async () => {
      const real = new VmLocks(db, realClock, { leaseMs: 300 });
      await real.withVmLock('vm-5', 'a', async () => {
        await new Promise((r) => setTimeout(r, 700));
        await expect(real.withVmLock('vm-5', 'b', async () => 1)).rejects.toMatchObject({ code: 'VM.LOCKED' });
      });
    });

    it('defaults to a lease as long as the default task lease', async () => {
      expect(DEFAULT_VM_LOCK_LEASE_MS).toBe(30_000);
      const locks = new VmLocks(db, clock);
      await locks.withVmLock('vm-6', 'a', async () => {
        const h = await locks.holder('vm-6');
        expect(Date.parse(h!.expiresAt) - Date.parse(h!.acquiredAt)).toBe(30_000);
      });
    });

    it('replaces at once the unexpired lock of a task that has ended, and fences that holder', async () => {
      const dead = `t-${dialect}-dead`;
      await task(dead, 'running');
      const locks = new VmLocks(db, realClock, { leaseMs: 300 });
      let fencedWith: unknown;
      let releaseOld!: () => void;
      // The old holder: alive as a process (a stalled worker), but its task is declared dead.
      const old = locks.withVmLock(`vm-7-${dialect}`, `task:${dead}`, async (lock) => {
        lock.signal.addEventListener('abort', () => (fencedWith = lock.signal.reason), { once: true });
        await new Promise<void>((r) => (releaseOld = r));
      }, { purpose: 'backup' });
      await new Promise((r) => setTimeout(r, 50));
      const longLease = new VmLocks(db, realClock);
      // While its task runs, the lock is its own.
      await expect(longLease.withVmLock(`vm-7-${dialect}`, `recovery:task:${dead}`, async () => 1)).rejects.toMatchObject({ code: 'VM.LOCKED' });
      await setState(dead, 'interrupted');
      // Its successor (the recovery of the interrupted task) takes it over without waiting for the lease.
      let recovered = false;
      await longLease.withVmLock(`vm-7-${dialect}`, `recovery:task:${dead}`, async () => {
        recovered = true;
        await until('the old holder to be fenced', () => fencedWith !== undefined);
        // A newcomer cannot take it from the recovery: that holder is not a dead task.
        await expect(longLease.withVmLock(`vm-7-${dialect}`, 'task:other', async () => 2)).rejects.toMatchObject({ code: 'VM.LOCKED', details: { holder: { owner: `recovery:task:${dead}` } } });
      }, { purpose: 'recovery' });
      expect(recovered).toBe(true);
      expect(fencedWith).toMatchObject({ code: 'VM.LOCK_LOST' });
      releaseOld();
      await old;
      // The fenced holder's release did not remove anybody else's row.
      expect(await longLease.holder(`vm-7-${dialect}`)).toBeUndefined();
    });

    it('treats the lock of a finished (succeeded, failed, canceled) task as stale too, but not of a queued or unknown one', async () => {
      const locks = new VmLocks(db, realClock);
      for (const [i, state] of ['succeeded', 'failed', 'canceled', 'queued', 'unknown'].entries()) {
        const id = `t-${dialect}-${state}`;
        if (state !== 'unknown') await task(id, state);
        const at = new Date();
        await db.insertInto('vm_locks').values({ vm_id: `vm-8-${i}`, token: `tok-${i}`, owner: `task:${id}`, purpose: 'backup', acquired_at: at.toISOString(), expires_at: new Date(at.getTime() + 60_000).toISOString() }).execute();
        const taking = locks.withVmLock(`vm-8-${i}`, 'task:next', async () => 'taken');
        if (state === 'queued' || state === 'unknown') await expect(taking, state).rejects.toMatchObject({ code: 'VM.LOCKED' });
        else await expect(taking, state).resolves.toBe('taken');
      }
    });

    it('aborts its holder when renewals fail until the lease could run out', async () => {
      // A second connection for the holder, closed while it holds the lock: every renewal fails.
      const own = openDatabase(tdb.config);
      const locks = new VmLocks(own, realClock, { leaseMs: 600 });
      const started = Date.now();
      let abortedAfter = -1;
      const reason = await locks.withVmLock(`vm-9-${dialect}`, 'task:x', async (lock) => {
        await own.destroy();
        return new Promise<unknown>((resolve) => {
          lock.signal.addEventListener('abort', () => {
            abortedAfter = Date.now() - started;
            resolve(lock.signal.reason);
          }, { once: true });
          setTimeout(() => resolve('not aborted'), 3000);
        });
      });
      expect(reason).toMatchObject({ code: 'VM.LOCK_LOST', message: expect.stringContaining('could not be renewed') });
      // Before its lease (600 ms from the last renewal) could have run out.
      expect(abortedAfter).toBeLessThan(600);
    });
  });
}
