// The step timeline of a task, from the steps it reported (progress.step, seen live) and
// its log. A VM backup runs pre-flight → snapshot → each disk → merge → prune → compact.
import type { TaskLogLine, TaskState } from '../../api/types';

export type StepStatus = 'done' | 'current' | 'pending' | 'failed' | 'skipped';
export interface TimelineStep {
  key: string;
  label: string;
  status: StepStatus;
}

const DISK_STEP = /^([A-Za-z0-9_-]+): /;
const READ_STEP = /^([A-Za-z0-9_-]+): (incremental|full): .+ read\b.*$/;

/**
 * The key a reported step is remembered by: a disk read reports its bytes in the step text
 * ("vda: incremental: 6 MiB of 1 GiB read (8 MiB to read)", about once a second), which is
 * one step ("vda: incremental read"), not thousands.
 */
export function stepKey(step: string): string {
  return step.replace(READ_STEP, '$1: $2 read');
}

export function buildTimeline(kind: string, state: TaskState, stepsSeen: string[], log: TaskLogLine[]): TimelineStep[] {
  const finished = ['succeeded', 'failed', 'partial', 'canceled', 'interrupted'].includes(state);
  if (kind !== 'vm.backup') {
    const steps = dedupe(stepsSeen.filter((s) => s && s !== 'done'));
    return steps.map((s, i) => ({
      key: s,
      label: s,
      status: i < steps.length - 1 || state === 'succeeded' ? 'done' : finished ? (state === 'failed' || state === 'interrupted' ? 'failed' : 'done') : 'current',
    }));
  }
  const disks = dedupe([...stepsSeen, ...log.map((l) => l.message)].map((s) => DISK_STEP.exec(s)?.[1]).filter((d): d is string => !!d && /^(vd|sd|hd|xvd|nvme)[a-z0-9]*$/.test(d)));
  const text = log.map((l) => l.message.toLowerCase());
  const phases: { key: string; label: string; reached: boolean }[] = [
    { key: 'preflight', label: 'Pre-flight', reached: true },
    { key: 'snapshot', label: 'Snapshot', reached: text.some((t) => t.includes('snapshot') || t.includes('overlay')) || disks.length > 0 },
    ...(disks.length ? disks : ['disks']).map((d) => ({
      key: `disk:${d}`,
      label: d === 'disks' ? 'Disks' : `Disk ${d}`,
      reached: stepsSeen.some((s) => s.startsWith(`${d}:`)) || text.some((t) => t.startsWith(`${d}:`) || t.includes(` ${d} `)),
    })),
    { key: 'merge', label: 'Merge', reached: text.some((t) => t.includes('merge') || t.includes('blockcommit') || t.includes('pivot')) || stepsSeen.includes('prune') || stepsSeen.includes('compact') },
    { key: 'prune', label: 'Prune', reached: stepsSeen.includes('prune') || stepsSeen.includes('compact') || text.some((t) => t.includes('prune')) },
    { key: 'compact', label: 'Compact', reached: stepsSeen.includes('compact') || text.some((t) => t.includes('compact')) },
  ];
  let last = -1;
  phases.forEach((p, i) => {
    if (p.reached) last = i;
  });
  return phases.map((p, i) => {
    let status: StepStatus;
    if (state === 'succeeded') status = i <= last || last === phases.length - 1 ? 'done' : 'skipped';
    else if (i < last) status = 'done';
    else if (i === last) status = finished ? (state === 'canceled' ? 'skipped' : state === 'partial' ? 'done' : 'failed') : 'current';
    else status = finished ? 'skipped' : 'pending';
    return { key: p.key, label: p.label, status };
  });
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}
