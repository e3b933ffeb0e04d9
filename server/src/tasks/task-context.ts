/**
 * The contract between a task handler (backup, restore, verify, inventory refresh,
 * pool fan-out, …) and the job system that runs it, in-process or on BullMQ.
 * Handlers depend on this file only; the job system implements it.
 */

export type TaskLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface TaskProgress {
  /** 0–100 of the whole task. */
  percent?: number;
  bytesDone?: number;
  bytesTotal?: number;
  rateBytesPerSecond?: number;
  /** Short human text of the current step, e.g. "vda: borg create". */
  step?: string;
}

export interface TaskContext {
  readonly taskId: string;
  /** Aborted when the task is canceled (or the worker shuts down): stop cleanly, run `finally` clean-ups. */
  readonly signal: AbortSignal;
  /** Who started it: `user:<name>`, `client:<id>`, `schedule:<policy id>`. */
  readonly startedBy: string | null;
  /** Appends a line to the task's log (persisted, append-only). Never pass secrets. */
  log(level: TaskLogLevel, message: string): Promise<void>;
  /** Reports progress; the job system persists it, throttled, and publishes it to watchers. */
  progress(p: TaskProgress): void;
  /** Starts child tasks (e.g. a pool backup's VM backups) and returns their ids. */
  spawnChildren?(children: Array<{ kind: string; payload: unknown; targetType?: string; targetId?: string }>): Promise<string[]>;
}

/** A handler returns its JSON result or throws (an AppError's code becomes the task's error code). */
export type TaskHandler<P = unknown, R = unknown> = (payload: P, ctx: TaskContext) => Promise<R>;
