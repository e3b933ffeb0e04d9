/**
 * kill -9 of the worker running `vm.backup` of a running two-disk VM, at each step (after the
 * snapshot, during borg create, during the block-commit: one disk merged back, the other still
 * on its overlay), with the default leases, in embedded and distributed mode. Each time: the
 * task ends `interrupted`, its recovery takes over the dead task's VM lock and merges the VM back
 * onto its base disks — it runs as before, nothing is left next to its disks, its content is
 * unchanged — within the bound of docs/recovery.md, and the automatic retry (the next backup)
 * succeeds without finding anything left to clean up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason } from '../../src/adapters/ssh/test-lab.js';
import { HAVE_BORG } from '../../src/restores/restore-lab-fixtures.js';
import type { CrashPoint } from '../../src/tasks/crash-points.js';
import { unavailableReason } from '../support/databases.js';
import { CrashLab, crashTag, TASK_LEASE_MS, type CrashMode } from '../support/crash-lab.js';
import { redisUnavailableReason } from '../support/redis.js';

const base = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');
const distributedReason = base || ((await redisUnavailableReason()) ?? (await unavailableReason('postgres')) ?? '');

const STEPS: Array<{ step: CrashPoint; merged: RegExp }> = [
  { step: 'backup.snapshot-taken', merged: /a previous backup left the VM on its overlay/ },
  { step: 'backup.borg-create', merged: /a previous backup left the VM on its overlay/ },
  { step: 'backup.block-commit', merged: /a previous backup left the VM on its overlay/ },
];

for (const mode of ['embedded', 'distributed'] as CrashMode[]) {
  const reason = mode === 'embedded' ? base : distributedReason;
  describe.skipIf(reason !== '')(`vm.backup killed with SIGKILL, ${mode} mode${reason}`, () => {
    const l = lab!;
    let c: CrashLab;
    let before: Record<string, string>;

    beforeAll(async () => {
      expect(canaryPresent(l)).toEqual([]);
      c = new CrashLab(mode, l, labHost(l, 'kvmhost1'));
      await c.setUp(`b${mode[0]}-${crashTag()}`);
      await c.startWorker();
      if (mode === 'distributed') await c.startWorker();
      before = c.shas();
    }, 240_000);

    afterAll(async () => {
      await c?.tearDown();
      expect(canaryPresent(l)).toEqual([]);
    }, 120_000);

    for (const { step, merged } of STEPS) {
      it(`at ${step}: the VM is back on its base disks and running, the retry succeeds`, async () => {
        const crash = await c.crashAt(step, () => c.backup());
        const { log, afterKillMs } = await c.recovered(crash);
        // The recovery itself merged the overlay(s) back: it took the dead task's lock at once.
        expect(log.some((m) => merged.test(m)), log.join('\n')).toBe(true);
        expect(log.some((m) => /merged back into .*; overlay removed/.test(m)), log.join('\n')).toBe(true);
        // Embedded: at the restart; distributed: once the dead worker's task lease ran out (≤ lease + 30 s).
        expect(afterKillMs).toBeLessThan(mode === 'embedded' ? 60_000 : TASK_LEASE_MS + 30_000);
        const retry = await c.retryOf(crash.taskId);
        expect(retry.state, JSON.stringify(retry.error)).toBe('succeeded');
        const retryLog = (await c.tasks.logs(retry.id)).items.map((x) => x.message);
        expect(retryLog.filter((m) => /previous backup left|stale overlay/.test(m))).toEqual([]);
        c.expectWhole();
        expect(c.shas()).toEqual(before);
      }, 300_000);
    }

    if (mode === 'embedded') {
      it('a step that fails after libvirt took the snapshot still merges the VM back before the task fails', async () => {
        // snapshot() throws although the domain already runs on its overlays: what it "created" is unknown.
        c.arm('fail:backup.snapshot-taken');
        const task = await c.waitTask(await c.backup());
        c.arm(null);
        expect(task.state).toBe('failed');
        expect(task.error?.message).toMatch(/failing right after backup\.snapshot-taken/);
        const log = (await c.tasks.logs(task.id)).items.map((x) => x.message);
        expect(log.filter((m) => /merged back into .*; overlay removed/.test(m)), log.join('\n')).toHaveLength(2);
        c.expectWhole();
        expect(c.shas()).toEqual(before);
      }, 120_000);
    }
  });
}
