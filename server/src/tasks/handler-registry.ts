import { AppError, invalid } from '../errors.js';
import type { TaskHandler, TaskLogLevel } from './task-context.js';
import type { TaskRecord } from './task.repository.js';

/** Which notification family a kind's end belongs to (hook events `<event>.succeeded|failed`). */
export type NotifyEvent = 'backup' | 'restore' | 'verify';

export interface HandlerOptions {
  /**
   * Called after a task of this kind was found `interrupted` (its worker died or lost
   * its lease, or the process restarted): clean up what the handler could not
   * (e.g. merge a leftover snapshot overlay). Runs on a worker; errors are logged on the task.
   */
  recover?: (task: TaskRecord, log: (level: TaskLogLevel, message: string) => Promise<void>) => Promise<void>;
  /** After an interruption (and recovery), submit a linked retry automatically (at most 3 in a chain). */
  retryInterrupted?: boolean;
  /**
   * Send the policy's notification hook when a task of this kind ends:
   * succeeded → `<event>.succeeded`; failed, interrupted or partial → `<event>.failed`.
   * `whenChild` (default false): also for tasks started by a parent task.
   */
  notify?: { event: NotifyEvent; whenChild?: boolean };
}

export interface Registration {
  kind: string;
  handler: TaskHandler;
  options: HandlerOptions;
}

const KIND = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;

export function checkKind(kind: string): string {
  if (kind.length > 64 || !KIND.test(kind)) {
    throw invalid('TASK.KIND_INVALID', `task kind "${kind}" is not valid: lower-case dotted words such as vm.backup, at most 64 characters`);
  }
  return kind;
}

/** The handlers this process can run, one per kind, registered at start. */
export class HandlerRegistry {
  private readonly handlers = new Map<string, Registration>();

  register<P, R>(kind: string, handler: TaskHandler<P, R>, options: HandlerOptions = {}): void {
    checkKind(kind);
    if (this.handlers.has(kind)) {
      throw new AppError('internal', 'TASK.HANDLER_DUPLICATE', `a handler for task kind "${kind}" is already registered; each kind has exactly one`);
    }
    this.handlers.set(kind, { kind, handler: handler as TaskHandler, options });
  }

  get(kind: string): Registration | undefined {
    return this.handlers.get(kind);
  }

  has(kind: string): boolean {
    return this.handlers.has(kind);
  }

  kinds(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** Refuses to start a role that would produce or run kinds nobody handles. */
  assertRegistered(kinds: readonly string[], why: string): void {
    const missing = kinds.filter((k) => !this.handlers.has(k));
    if (missing.length > 0) {
      throw new AppError(
        'internal',
        'TASK.HANDLER_MISSING',
        `${why}, but no handler is registered for task kind(s) ${missing.join(', ')}; register them in the composition root (src/app/services.ts)`,
        { missing },
      );
    }
  }
}
