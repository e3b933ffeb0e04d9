/**
 * How many task event streams (Server-Sent Events) may be open: per caller (the token's
 * subject) and in total. Each open stream holds a connection, a poll timer and a watcher,
 * so an unbounded number lets one caller exhaust the server.
 */
export const SSE_MAX_PER_CALLER = 10;
export const SSE_MAX_TOTAL = 100;

export type StreamRefusal = { status: 429 | 503; code: string; detail: string };

export class StreamLimits {
  private total = 0;
  private readonly byCaller = new Map<string, number>();

  constructor(
    readonly maxPerCaller = SSE_MAX_PER_CALLER,
    readonly maxTotal = SSE_MAX_TOTAL,
  ) {}

  get open(): number {
    return this.total;
  }

  /** Takes a slot for `caller`: a release function (idempotent), or why not. */
  acquire(caller: string): { release: () => void } | StreamRefusal {
    const mine = this.byCaller.get(caller) ?? 0;
    if (mine >= this.maxPerCaller) {
      return {
        status: 429,
        code: 'TASK.TOO_MANY_STREAMS',
        detail: `you already have ${mine} task event streams open (at most ${this.maxPerCaller} per caller); close one, or poll GET /api/v2/tasks/{id}`,
      };
    }
    if (this.total >= this.maxTotal) {
      return {
        status: 503,
        code: 'TASK.STREAMS_EXHAUSTED',
        detail: `the server has ${this.total} task event streams open (its limit); try again shortly, or poll GET /api/v2/tasks/{id}`,
      };
    }
    this.total++;
    this.byCaller.set(caller, mine + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const n = (this.byCaller.get(caller) ?? 1) - 1;
        if (n <= 0) this.byCaller.delete(caller);
        else this.byCaller.set(caller, n);
      },
    };
  }
}
