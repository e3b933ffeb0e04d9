/**
 * One mutating operation (backup, restore, delete of a restore point…) per VM at a time,
 * across every worker: a lease row per VM in the database, naming its holder (`task:<id>`
 * for a task, `recovery:task:<id>` for the recovery of an interrupted task).
 *
 *   await locks.withVmLock(vmId, `task:${ctx.taskId}`, async (lock) => { … lock.signal … }, { purpose: 'backup' });
 *
 * A row is stale, and is replaced at once by the next taker, when its lease expired or when
 * the task it names has ended (`interrupted`, `failed`, … — a task known dead, e.g. after
 * kill -9: the recovery of that task is its lock's rightful successor and need not wait for
 * the lease). Replacing deletes exactly the stale row (by its token), which fences the old
 * holder: its next renewal finds no row and its `lock.signal` aborts.
 *
 * The holder renews the lease every third of its lifetime. `lock.signal` aborts when the lease
 * was lost (replaced after this process stalled or its task was declared dead) and when the
 * renewals fail (database unreachable) so long that the lease could run out unnoticed: stop
 * mutating at once.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError, conflict } from '../errors.js';

/** Default lease: the default task lease (BACKROLL_TASK_LEASE_SECONDS), renewed every 10 s. */
export const DEFAULT_VM_LOCK_LEASE_MS = 30_000;

/** Task states in which a `task:<id>` holder may still be alive. */
const LIVE_TASK_STATES: readonly string[] = ['queued', 'running'];

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
  /** Lease length. Default 30 s (renewed every 10 s), as the default task lease. */
  leaseMs?: number;
}

export class VmLocks {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly defaults: { leaseMs?: number } = {},
  ) {}

  /** Runs `fn` while holding the VM's lock; VM.LOCKED when another live holder has it. */
  async withVmLock<T>(vmId: string, owner: string, fn: (lock: HeldVmLock) => Promise<T>, opts: VmLockOptions = {}): Promise<T> {
    const leaseMs = opts.leaseMs ?? this.defaults.leaseMs ?? DEFAULT_VM_LOCK_LEASE_MS;
    const intervalMs = Math.max(100, Math.floor(leaseMs / 3));
    const token = await this.acquire(vmId, owner, opts.purpose ?? 'operation', leaseMs);
    const lost = new AbortController();
    // The lease runs until `validUntil` (ms, this process's clock): every renewal that worked moves it on.
    let validUntil = Date.now() + leaseMs;
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      renewing = renewing.then(async () => {
        if (lost.signal.aborted) return;
        const attempted = Date.now();
        try {
          if (await this.renew(vmId, token, leaseMs)) validUntil = attempted + leaseMs;
          else lost.abort(new AppError('conflict', 'VM.LOCK_LOST', `the lock of VM ${vmId} was lost (its lease expired or its holder was declared dead and replaced); stopped`));
        } catch (err) {
          // One failed renewal is tolerated while the lease still covers the next attempt; a
          // holder that cannot prove its lease before it runs out stops, rather than mutating
          // a VM that another worker may take over.
          if (Date.now() + intervalMs >= validUntil) {
            lost.abort(new AppError('unavailable', 'VM.LOCK_LOST', `the lock of VM ${vmId} could not be renewed (${(err as Error).message}) before its lease ran out; stopped`));
          }
        }
      });
    }, intervalMs);
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
    for (let attempt = 0; attempt < 3; attempt++) {
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
      const row = await this.db.selectFrom('vm_locks').selectAll().where('vm_id', '=', vmId).executeTakeFirst();
      if (!row) continue; // released meanwhile
      if (!(await this.isStale(row, now))) break;
      // Replace exactly the stale row (its token): a newer holder's row is never touched.
      await this.db.deleteFrom('vm_locks').where('vm_id', '=', vmId).where('token', '=', row.token).execute();
    }
    const h = await this.holder(vmId);
    throw conflict('VM.LOCKED', `VM ${vmId} is busy: a ${h?.purpose ?? 'another'} operation holds its lock (${h?.owner ?? 'unknown holder'}) until it ends; try again later`, {
      vmId,
      holder: h ?? null,
    });
  }

  /** Expired, or held by a task that has ended (its process is dead or fenced). */
  private async isStale(row: { owner: string; expires_at: string }, now: Date): Promise<boolean> {
    if (row.expires_at <= now.toISOString()) return true;
    const m = /^task:(.+)$/.exec(row.owner);
    if (!m) return false;
    const task = await this.db.selectFrom('tasks').select('state').where('id', '=', m[1]!).executeTakeFirst();
    // An unknown task proves nothing: only the lease decides then.
    return task !== undefined && !LIVE_TASK_STATES.includes(task.state);
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
