/**
 * Test-only crash points, so that crash tests can kill -9 a real worker at an exact step.
 *
 * Production never sets BACKROLL_TEST_CRASH_POINTS, and then `crashPoint()` does nothing but
 * one cached check. When it names a file (read once, at the first crash point), reaching a
 * step whose name is a line of that file at that moment prints
 *   `backroll test crash point reached: <step> (task <id>)`
 * to stdout and freezes the whole process (the event loop is blocked, so child programs such
 * as borg stall on their pipes, still running), until the test kills it. Steps of vm.backup and
 * vm.restore in place are listed in docs/recovery.md. A line `fail:<step>` makes the step throw
 * instead (an error right after the step's work was done), to test the in-process error paths.
 */
import fs from 'node:fs';

let armedFile: string | null | undefined;

export type CrashPoint =
  | 'backup.snapshot-taken'
  | 'backup.borg-create'
  | 'backup.block-commit'
  | 'backup.pull-reading'
  | 'restore.extract'
  | 'restore.between-swaps'
  | 'restore.before-start';

export function crashPoint(step: CrashPoint, taskId: string): void {
  if (armedFile === undefined) armedFile = process.env.BACKROLL_TEST_CRASH_POINTS || null;
  if (armedFile === null) return;
  let armed: string[];
  try {
    armed = fs.readFileSync(armedFile, 'utf8').split('\n').map((l) => l.trim());
  } catch {
    return;
  }
  if (armed.includes(`fail:${step}`)) throw new Error(`test crash point: failing right after ${step}`);
  if (!armed.includes(step)) return;
  fs.writeSync(1, `backroll test crash point reached: ${step} (task ${taskId})\n`);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}
