import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, type Db } from '../db/database.js';
import { VmLocks } from './vm-lock.js';

describe('VM lock (lease row in SQLite)', () => {
  let db: Db;
  let dir: string;
  let now = new Date('2026-01-01T00:00:00Z').getTime();
  const clock = { now: () => new Date(now) };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-lock-'));
    db = openDatabase({ dialect: 'sqlite', url: path.join(dir, 'db.sqlite') });
    await migrateToLatest(db);
  });
  afterAll(async () => {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a second holder with VM.LOCKED, then frees the lock', async () => {
    const locks = new VmLocks(db, clock);
    let release!: () => void;
    const first = locks.withVmLock('vm-1', 'task:a', () => new Promise<string>((r) => (release = () => r('done'))), { purpose: 'backup' });
    await new Promise((r) => setTimeout(r, 20));
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
    const real = new VmLocks(db, { now: () => new Date() }, { leaseMs: 300 });
    await real.withVmLock('vm-5', 'a', async () => {
      await new Promise((r) => setTimeout(r, 700));
      await expect(real.withVmLock('vm-5', 'b', async () => 1)).rejects.toMatchObject({ code: 'VM.LOCKED' });
    });
  });
});
