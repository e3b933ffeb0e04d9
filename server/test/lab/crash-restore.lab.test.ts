/**
 * kill -9 of the worker running `vm.restore` in place of a running two-disk VM, at each step
 * (during extraction, between the swaps of the two disks, after the swaps before the start),
 * with the default leases, in embedded and distributed mode. Each time: the task ends
 * `interrupted`; its recovery takes over the dead task's VM lock and decides from the files next
 * to the disks — nothing or one disk swapped: the originals are (put) back; both swapped (each
 * verified before): the restore is finished — and the VM runs again, within the bound of
 * docs/recovery.md, with nothing left next to its disks; the next backup succeeds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, labSkipReason } from '../../src/adapters/ssh/test-lab.js';
import { HAVE_BORG, scribble, virshAs } from '../../src/restores/restore-lab-fixtures.js';
import type { CrashPoint } from '../../src/tasks/crash-points.js';
import { unavailableReason } from '../support/databases.js';
import { CrashLab, crashTag, TASK_LEASE_MS, type CrashMode } from '../support/crash-lab.js';
import { redisUnavailableReason } from '../support/redis.js';

const base = labSkipReason || (!HAVE_BORG ? ' (SKIPPED: borg is not installed)' : process.getuid?.() !== 0 ? ' (SKIPPED: needs root)' : '');
const distributedReason = base || ((await redisUnavailableReason()) ?? (await unavailableReason('postgres')) ?? '');

const STEPS: Array<{ step: CrashPoint; outcome: 'originals' | 'restored'; says: RegExp }> = [
  { step: 'restore.extract', outcome: 'originals', says: /removed the unfinished .*\.backroll-restore-\d+\.tmp/ },
  { step: 'restore.between-swaps', outcome: 'originals', says: /vda: put the original disk back from .*\.backroll-replaced-\d+/ },
  { step: 'restore.before-start', outcome: 'restored', says: /the VM was started on the restored disks/ },
];

for (const mode of ['embedded', 'distributed'] as CrashMode[]) {
  const reason = mode === 'embedded' ? base : distributedReason;
  describe.skipIf(reason !== '')(`vm.restore in place killed with SIGKILL, ${mode} mode${reason}`, () => {
    const l = lab!;
    let c: CrashLab;
    let rpId: string;
    let atBackup: Record<string, string>;
    let byte = 0x70;

    beforeAll(async () => {
      expect(canaryPresent(l)).toEqual([]);
      c = new CrashLab(mode, l, labHost(l, 'kvmhost1'));
      await c.setUp(`r${mode[0]}-${crashTag()}`);
      await c.startWorker();
      if (mode === 'distributed') await c.startWorker();
      const b = await c.waitTask(await c.backup());
      expect(b.state, JSON.stringify(b.error)).toBe('succeeded');
    }, 240_000);

    afterAll(async () => {
      await c?.tearDown();
      expect(canaryPresent(l)).toEqual([]);
    }, 120_000);

    for (const { step, outcome, says } of STEPS) {
      it(`at ${step}: ${outcome === 'originals' ? 'the original disks are back' : 'the restore is finished'}, the VM runs, the next backup succeeds`, async () => {
        // The latest backup holds the disks as they are now (retention prunes older ones of the day).
        rpId = await c.latestRestorePoint();
        atBackup = c.shas();
        // The guest changes both disks after the backup: the restore would bring them back.
        byte += 1;
        scribble(c.h, c.vm, 'vda', true, `0x${byte.toString(16)}`);
        scribble(c.h, c.vm, 'vdb', true, `0x${byte.toString(16)}`);
        const changed = c.shas();
        c.phase('scribbled, checksums');
        expect(changed.vda).not.toBe(atBackup.vda);
        expect(changed.vdb).not.toBe(atBackup.vdb);

        const crash = await c.crashAt(step, () => c.restoreInPlace(rpId));
        const { log, afterKillMs } = await c.recovered(crash);
        expect(log.some((m) => says.test(m)), log.join('\n')).toBe(true);
        expect(afterKillMs).toBeLessThan(mode === 'embedded' ? 60_000 : TASK_LEASE_MS + 30_000);
        c.expectWhole();
        expect(c.shas()).toEqual(outcome === 'originals' ? changed : atBackup);
        c.phase('checked');

        const next = await c.waitTask(await c.backup());
        expect(next.state, JSON.stringify(next.error)).toBe('succeeded');
        c.phase('next backup');
        c.expectWhole();
      }, 300_000);
    }

    if (mode === 'embedded') {
      it('an in-place restore of a VM left on Backroll overlays merges them back first, then restores', async () => {
        const rp = await c.latestRestorePoint();
        const atRp = c.shas();
        // As a backup killed before its recovery ran leaves it: both disks on `<stem>.backroll-<epoch>.qcow2`.
        const overlays = c.vm.disks.map((d) => d.path.replace(/\.qcow2$/, '.backroll-1700000123.qcow2'));
        virshAs(c.h, 'snapshot-create-as', '--domain', c.vm.uuid, '--disk-only', '--atomic', '--no-metadata', ...c.vm.disks.flatMap((d, i) => ['--diskspec', `${d.target},snapshot=external,file=${overlays[i]}`]));
        scribble(c.h, c.vm, 'vda', true, '0x5a');
        const task = await c.waitTask(await c.restoreInPlace(rp));
        expect(task.state, JSON.stringify(task.error)).toBe('succeeded');
        const log = (await c.tasks.logs(task.id)).items.map((x) => x.message);
        expect(log.filter((m) => /a previous backup left the VM on its overlay/.test(m)), log.join('\n')).toHaveLength(2);
        c.expectWhole();
        expect(c.shas()).toEqual(atRp);
      }, 180_000);
    }
  });
}
