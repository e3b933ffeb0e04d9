import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../src/errors.js';
import type { TaskService } from '../../src/tasks/task.service.js';

/**
 * Test handlers for the job system (in-process servers). A probe records what
 * ran, how many ran at once (globally and per host) and lets a test hold a task
 * running until it opens a gate.
 */
export class Probe {
  inFlight = 0;
  maxInFlight = 0;
  readonly perHost = new Map<string, number>();
  maxPerHost = 0;
  readonly perStorage = new Map<string, number>();
  maxPerStorage = 0;
  readonly started: string[] = [];
  readonly recovered: string[] = [];
  private readonly gates = new Map<string, { open: () => void; promise: Promise<void> }>();

  gate(name: string): Promise<void> {
    let g = this.gates.get(name);
    if (!g) {
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      g = { open, promise };
      this.gates.set(name, g);
    }
    return g.promise;
  }

  open(name: string): void {
    void this.gate(name);
    this.gates.get(name)!.open();
  }

  reset(): void {
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.perHost.clear();
    this.maxPerHost = 0;
    this.perStorage.clear();
    this.maxPerStorage = 0;
  }
}

const abortable = <T>(p: Promise<T>, signal: AbortSignal): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    signal.throwIfAborted();
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });

export function registerTestHandlers(tasks: TaskService, probe: Probe): void {
  tasks.registerHandler<{ value?: unknown }>('test.echo', async (payload, ctx) => {
    probe.started.push(ctx.taskId);
    await ctx.log('info', 'echo: starting');
    ctx.progress({ percent: 50, bytesDone: 512, bytesTotal: 1024, rateBytesPerSecond: 2048, step: 'halfway' });
    await ctx.log('warn', 'echo: second line');
    ctx.progress({ percent: 100, bytesDone: 1024, step: 'done' });
    return { echoed: payload?.value ?? null, startedBy: ctx.startedBy };
  });

  tasks.registerHandler<{ code?: string; plain?: boolean }>('test.fail', async (payload, ctx) => {
    await ctx.log('info', 'about to fail');
    if (payload?.plain) throw new Error('plain failure');
    throw new AppError('conflict', payload?.code ?? 'TEST.BOOM', 'the test handler failed on purpose');
  });

  /** Runs until its gate opens (succeeds) or it is canceled (ctx.signal). */
  tasks.registerHandler<{ gate: string }>('test.wait', async (payload, ctx) => {
    probe.started.push(ctx.taskId);
    await ctx.log('info', `waiting for gate ${payload.gate}`);
    ctx.progress({ percent: 10, step: 'waiting' });
    try {
      await abortable(probe.gate(payload.gate), ctx.signal);
    } finally {
      await ctx.log('info', 'clean-up ran');
    }
    return { gate: payload.gate };
  });

  /** Counts how many run at once, globally, per host and per storage. */
  tasks.registerHandler<{ ms: number; host?: string; storage?: string }>('test.slow', async (payload, ctx) => {
    probe.inFlight++;
    probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight);
    const { host, storage } = payload;
    if (host) {
      probe.perHost.set(host, (probe.perHost.get(host) ?? 0) + 1);
      probe.maxPerHost = Math.max(probe.maxPerHost, probe.perHost.get(host)!);
    }
    if (storage) {
      probe.perStorage.set(storage, (probe.perStorage.get(storage) ?? 0) + 1);
      probe.maxPerStorage = Math.max(probe.maxPerStorage, probe.perStorage.get(storage)!);
    }
    try {
      await sleep(payload.ms, undefined, { signal: ctx.signal });
    } finally {
      probe.inFlight--;
      if (host) probe.perHost.set(host, probe.perHost.get(host)! - 1);
      if (storage) probe.perStorage.set(storage, probe.perStorage.get(storage)! - 1);
    }
    return { slept: payload.ms };
  });

  /** Spawns children, then returns; ends when they do. */
  tasks.registerHandler<{ children: Array<{ kind: string; payload: unknown }> }>('test.parent', async (payload, ctx) => {
    const ids = await ctx.spawnChildren!(payload.children.map((c) => ({ ...c, targetType: 'test', targetId: 'child' })));
    await ctx.log('info', `spawned ${ids.length} children`);
    return { children: ids };
  });

  tasks.registerHandler(
    'test.recoverable',
    async (_payload, ctx) => {
      await abortable(new Promise(() => undefined), ctx.signal);
    },
    {
      recover: async (task) => {
        probe.recovered.push(task.id);
      },
    },
  );
}
