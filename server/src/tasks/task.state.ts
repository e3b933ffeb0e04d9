/**
 * The task state machine, pure. Every state change in the database goes through
 * `sourcesOf(target)`: the repository updates a row only while it is in one of
 * the allowed source states, so two processes racing on one task cannot both win.
 *
 *   queued ──► running ──► succeeded | failed | canceled | interrupted | partial
 *     │
 *     └──► canceled (canceled before it started) | failed (no handler for its kind)
 */

export const TASK_STATES = ['queued', 'running', 'succeeded', 'failed', 'canceled', 'interrupted', 'partial'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_STATES: readonly TaskState[] = ['succeeded', 'failed', 'canceled', 'interrupted', 'partial'];

const TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  queued: ['running', 'canceled', 'failed'],
  running: ['succeeded', 'failed', 'canceled', 'interrupted', 'partial'],
  succeeded: [],
  failed: [],
  canceled: [],
  interrupted: [],
  partial: [],
};

export const isTaskState = (value: string): value is TaskState => (TASK_STATES as readonly string[]).includes(value);
export const isTerminal = (state: TaskState): boolean => TERMINAL_STATES.includes(state);

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states a task may be in for a change to `to`: the WHERE clause of a guarded update. */
export function sourcesOf(to: TaskState): TaskState[] {
  return TASK_STATES.filter((from) => canTransition(from, to));
}

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: TaskState,
    readonly to: TaskState,
  ) {
    super(`a task cannot go from ${from} to ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

export function assertTransition(from: TaskState, to: TaskState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}

/** States a user may cancel from, and retry from (a new linked task). */
export const isCancelable = (state: TaskState): boolean => state === 'queued' || state === 'running';
export const isRetryable = (state: TaskState): boolean => state === 'failed' || state === 'canceled' || state === 'interrupted' || state === 'partial';

/**
 * Final state of a parent whose own handler succeeded, once every child has ended.
 * Undefined while a child is still queued or running.
 */
export function parentOutcome(children: readonly TaskState[], cancelRequested: boolean): TaskState | undefined {
  if (children.some((s) => !isTerminal(s))) return undefined;
  if (cancelRequested) return 'canceled';
  if (children.length === 0) return 'succeeded';
  const ok = children.filter((s) => s === 'succeeded').length;
  if (ok === children.length) return 'succeeded';
  if (ok === 0 && !children.includes('partial')) return 'failed';
  return 'partial';
}

/** How a handler's end maps to a final state. */
export function outcomeOfRun(end: { threw: boolean; cancelRequested: boolean; shuttingDown: boolean }): TaskState {
  if (!end.threw) return 'succeeded';
  if (end.cancelRequested) return 'canceled';
  if (end.shuttingDown) return 'interrupted';
  return 'failed';
}
