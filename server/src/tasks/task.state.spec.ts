import { describe, expect, it } from 'vitest';
import {
  IllegalTransitionError,
  TASK_STATES,
  TERMINAL_STATES,
  assertTransition,
  canTransition,
  isCancelable,
  isRetryable,
  outcomeOfRun,
  parentOutcome,
  sourcesOf,
  type TaskState,
} from './task.state.js';

describe('task state machine', () => {
  it('allows the documented transitions', () => {
    const allowed: Array<[TaskState, TaskState]> = [
      ['queued', 'running'],
      ['queued', 'canceled'],
      ['queued', 'failed'],
      ['running', 'succeeded'],
      ['running', 'failed'],
      ['running', 'canceled'],
      ['running', 'interrupted'],
      ['running', 'partial'],
    ];
    for (const [from, to] of allowed) expect(canTransition(from, to), `${from} → ${to}`).toBe(true);
    const count = TASK_STATES.flatMap((f) => TASK_STATES.filter((t) => canTransition(f, t))).length;
    expect(count).toBe(allowed.length);
  });

  it('refuses illegal transitions', () => {
    for (const terminal of TERMINAL_STATES) {
      for (const to of TASK_STATES) {
        expect(canTransition(terminal, to), `${terminal} → ${to}`).toBe(false);
        expect(() => assertTransition(terminal, to)).toThrow(IllegalTransitionError);
      }
    }
    expect(() => assertTransition('queued', 'succeeded')).toThrow('a task cannot go from queued to succeeded');
    expect(() => assertTransition('queued', 'partial')).toThrow(IllegalTransitionError);
    expect(() => assertTransition('queued', 'interrupted')).toThrow(IllegalTransitionError);
    expect(() => assertTransition('running', 'queued')).toThrow(IllegalTransitionError);
    expect(() => assertTransition('running', 'running')).toThrow(IllegalTransitionError);
    expect(() => assertTransition('queued', 'running')).not.toThrow();
  });

  it('gives the guarded sources of each target state', () => {
    expect(sourcesOf('running')).toEqual(['queued']);
    expect(sourcesOf('canceled')).toEqual(['queued', 'running']);
    expect(sourcesOf('failed')).toEqual(['queued', 'running']);
    expect(sourcesOf('interrupted')).toEqual(['running']);
    expect(sourcesOf('partial')).toEqual(['running']);
    expect(sourcesOf('queued')).toEqual([]);
  });

  it('knows what may be canceled and retried', () => {
    expect(TASK_STATES.filter(isCancelable)).toEqual(['queued', 'running']);
    expect(TASK_STATES.filter(isRetryable)).toEqual(['failed', 'canceled', 'interrupted', 'partial']);
  });

  it('derives a parent outcome from its children', () => {
    expect(parentOutcome(['succeeded', 'running'], false)).toBeUndefined();
    expect(parentOutcome(['queued'], true)).toBeUndefined();
    expect(parentOutcome([], false)).toBe('succeeded');
    expect(parentOutcome(['succeeded', 'succeeded'], false)).toBe('succeeded');
    expect(parentOutcome(['succeeded', 'failed'], false)).toBe('partial');
    expect(parentOutcome(['succeeded', 'interrupted'], false)).toBe('partial');
    expect(parentOutcome(['failed', 'canceled', 'interrupted'], false)).toBe('failed');
    expect(parentOutcome(['failed', 'partial'], false)).toBe('partial');
    expect(parentOutcome(['succeeded', 'canceled'], true)).toBe('canceled');
  });

  it('maps how a handler ended to a final state', () => {
    expect(outcomeOfRun({ threw: false, cancelRequested: true, shuttingDown: false })).toBe('succeeded');
    expect(outcomeOfRun({ threw: true, cancelRequested: false, shuttingDown: false })).toBe('failed');
    expect(outcomeOfRun({ threw: true, cancelRequested: true, shuttingDown: true })).toBe('canceled');
    expect(outcomeOfRun({ threw: true, cancelRequested: false, shuttingDown: true })).toBe('interrupted');
  });
});
