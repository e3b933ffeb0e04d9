import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';

/**
 * Wake-up signals between processes. They carry no state: whoever receives
 * `changed` re-reads the task from the database (the source of truth), so a lost
 * signal only delays an update until the next poll.
 */
export type TaskSignal = { type: 'changed'; taskId: string } | { type: 'cancel'; taskId: string };

export interface TaskEventBus {
  publish(signal: TaskSignal): void;
  subscribe(listener: (signal: TaskSignal) => void): () => void;
  close(): Promise<void>;
}

/** One process (embedded mode). */
export class LocalEventBus implements TaskEventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(signal: TaskSignal): void {
    // Asynchronous like Redis, so publishers never run listeners inside their own transaction.
    setImmediate(() => this.emitter.emit('signal', signal));
  }

  subscribe(listener: (signal: TaskSignal) => void): () => void {
    this.emitter.on('signal', listener);
    return () => this.emitter.off('signal', listener);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

/** Every process of a distributed installation, over Redis pub/sub. */
export class RedisEventBus implements TaskEventBus {
  private readonly local = new EventEmitter();
  private readonly pub: Redis;
  private sub?: Redis;
  private readonly channel: string;

  constructor(
    private readonly url: string,
    prefix: string,
    private readonly onError: (err: Error) => void,
  ) {
    this.local.setMaxListeners(0);
    this.channel = `${prefix}:task-signals`;
    this.pub = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: false });
    this.pub.on('error', onError);
  }

  publish(signal: TaskSignal): void {
    this.pub.publish(this.channel, JSON.stringify(signal)).catch((err: Error) => this.onError(err));
  }

  subscribe(listener: (signal: TaskSignal) => void): () => void {
    this.ensureSubscribed();
    this.local.on('signal', listener);
    return () => this.local.off('signal', listener);
  }

  private ensureSubscribed(): void {
    if (this.sub) return;
    const sub = new Redis(this.url, { maxRetriesPerRequest: null });
    sub.on('error', this.onError);
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      try {
        const signal = JSON.parse(message) as TaskSignal;
        if ((signal.type === 'changed' || signal.type === 'cancel') && typeof signal.taskId === 'string') this.local.emit('signal', signal);
      } catch {
        // Not ours: ignore.
      }
    });
    sub.subscribe(this.channel).catch((err: Error) => this.onError(err));
    this.sub = sub;
  }

  async close(): Promise<void> {
    this.local.removeAllListeners();
    await Promise.allSettled([this.pub.quit(), this.sub?.quit()]);
  }
}
