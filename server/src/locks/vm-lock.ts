/**
 * One mutating operation (backup, restore, delete of a restore point…) per VM at a time,
 * across every worker: a lease row per VM in the database. The holder renews it every
 * third of its lifetime; a crashed holder's lease simply expires and the next taker
 * replaces it. A taken, unexpired lease makes the second caller fail with VM.LOCKED.
 *
 *   await locks.withVmLock(vmId, `task:${ctx.taskId}`, async (lock) => { … lock.signal … }, { purpose: 'backup' });
 *
 * `lock.signal` aborts when the lease could not be renewed (lost to another holder after
 * this process stalled past the expiry): stop mutating at once.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, conflict } from '../errors.js';

export interface HeldVmLock {
  vmId: string;
  token: string;
  owner: string;
  /** Aborted when the lease was lost. */
  signal: AbortSignal;
}

export interface VmLockInfo {
  vmId: string;
  owner: string;
  purpose: string;
  acquiredAt: string;
  expiresAt: string;
}

export interface VmLockOptions {
  /** What the lock is for, shown to the second caller: `backup`, `restore`, `delete`. */
  purpose?: string;
  /** Lease length. Default 60 s (renewed every 20 s). */
  leaseMs?: number;
}

export class VmLocks {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly defaults: { leaseMs?: number } = {},
  ) {}

  /** Runs `fn` while holding the VM's lock; VM.LOCKED when another holder has it. */
  async withVmLock<T>(vmId: string, owner: string, fn: (lock: HeldVmLock) => Promise<T>, opts: VmLockOptions = {}): Promise<T> {
    const leaseMs = opts.leaseMs ?? this.defaults.leaseMs ?? 60_000;
    const token = await this.acquire(vmId, owner, opts.purpose ?? 'operation', leaseMs);
    const lost = new AbortController();
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      renewing = this.renew(vmId, token, leaseMs).then(
        (ok) => {
          if (!ok && !lost.signal.aborted) lost.abort(new AppError('conflict', 'VM.LOCK_LOST', `the lock of VM ${vmId} was lost (its lease expired)`));
        },
        () => undefined, // a database hiccup: the next heartbeat tries again before expiry
      );
    }, Math.max(100, Math.floor(leaseMs / 3)));
    timer.unref?.();
    try {
      return await fn({ vmId, token, owner, signal: lost.signal });
    } finally {
      clearInterval(timer);
      await renewing;
      await this.release(vmId, token).catch(() => undefined);
    }
  }

  /** The current holder, if any and not expired. */
  async holder(vmId: string): Promise<VmLockInfo | undefined> {
    const row = await this.db.selectFrom('vm_locks').selectAll().where('vm_id', '=', vmId).executeTakeFirst();
    if (!row || row.expires_at <= this.now()) return undefined;
    return { vmId: row.vm_id, owner: row.owner, purpose: row.purpose, acquiredAt: row.acquired_at, expiresAt: row.expires_at };
  }

  private now(): string {
    return this.clock.now().toISOString();
  }

  private async acquire(vmId: string, owner: string, purpose: string, leaseMs: number): Promise<string> {
    const token = randomUUID();
    for (let attempt = 0; attempt < 2; attempt++) {
      const now = this.clock.now();
      try {
        await this.db
          .insertInto('vm_locks')
          .values({ vm_id: vmId, token, owner, purpose, acquired_at: now.toISOString(), expires_at: new Date(now.getTime() + leaseMs).toISOString() })
          .execute();
        return token;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
      // Taken: replace it only if its lease has expired (the holder crashed).
      const res = await this.db.deleteFrom('vm_locks').where('vm_id', '=', vmId).where('expires_at', '<=', now.toISOString()).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) break;
    }
    const h = await this.holder(vmId);
    throw conflict('VM.LOCKED', `VM ${vmId} is busy: a ${h?.purpose ?? 'another'} operation holds its lock (${h?.owner ?? 'unknown holder'}) until it ends; try again later`, {
      vmId,
      holder: h ?? null,
    });
  }

  private async renew(vmId: string, token: string, leaseMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('vm_locks')
      .set({ expires_at: new Date(this.clock.now().getTime() + leaseMs).toISOString() })
      .where('vm_id', '=', vmId)
      .where('token', '=', token)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  private async release(vmId: string, token: string): Promise<void> {
    await this.db.deleteFrom('vm_locks').where('vm_id', '=', vmId).where('token', '=', token).execute();
  }
}
