/**
 * The periodic inventory refresh of the worker role: every `intervalSeconds` after the end of
 * the previous run (runs never overlap). The first one comes a full interval after start: the
 * cache survives restarts, and a process that only starts and stops (a test, a CLI check)
 * never contacts the hosts. Several workers each refresh; the upserts are idempotent.
 */
import type { JobLogger } from '../tasks/task-lifecycle.js';
import type { RefreshSummary } from './inventory.service.js';

export class InventoryTimer {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly refreshAll: () => Promise<RefreshSummary>,
    private readonly intervalSeconds: number,
    private readonly logger: JobLogger,
    /** Delay of the first run. Default: the interval. */
    private readonly firstDelayMs = intervalSeconds * 1000,
  ) {}

  start(): void {
    if (this.intervalSeconds <= 0 || this.stopped) return;
    this.schedule(this.firstDelayMs);
  }

  /** No new run starts; resolves when the current one (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.current = this.run().finally(() => {
        this.current = null;
        if (!this.stopped) this.schedule(this.intervalSeconds * 1000);
      });
    }, ms);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    try {
      const s = await this.refreshAll();
      const failed = s.hosts.filter((h) => !h.ok);
      const log = { hosts: s.hosts.length, failed: failed.map((h) => ({ host: h.hostName, code: h.error?.code })), vms: s.hosts.reduce((n, h) => n + h.found, 0) };
      if (failed.length > 0) this.logger.warn(log, 'inventory refreshed; some hosts failed');
      else this.logger.info(log, 'inventory refreshed');
    } catch (err) {
      this.logger.error({ err }, 'inventory refresh failed');
    }
  }
}
