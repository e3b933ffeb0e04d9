/**
 * Records each storage's usage periodically (the api role): capacity from the cached, bounded
 * statfs and the restore points' stored bytes. A sample at start, then every interval; samples
 * older than a year are dropped. Several api processes each sample: harmless (more points).
 */
import { isoNow, type Clock } from '../clock.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import type { StorageService } from './storage.service.js';
import type { UsageRepository } from './usage.repository.js';

const KEEP_MS = 366 * 86_400_000;

export class UsageSampler {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly storages: StorageService,
    private readonly usage: UsageRepository,
    private readonly clock: Clock,
    private readonly intervalSeconds: number,
    private readonly logger: JobLogger,
  ) {}

  start(): void {
    if (this.intervalSeconds <= 0 || this.stopped) return;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
  }

  /** One sample of every storage now. */
  async sampleAll(): Promise<number> {
    const [storages, stored] = await Promise.all([this.storages.all(), this.usage.storedBytes()]);
    const at = isoNow(this.clock);
    for (const s of storages) {
      const reading = await this.storages.capacityOf(s);
      const bytes = stored.get(s.id);
      await this.usage.insert(s.id, {
        at,
        capacityBytes: reading.capacity?.capacityBytes ?? null,
        usedBytes: reading.capacity?.usedBytes ?? null,
        freeBytes: reading.capacity?.freeBytes ?? null,
        backupBytes: bytes?.backupBytes ?? 0,
        originalBytes: bytes?.originalBytes ?? 0,
      });
    }
    await this.usage.prune(new Date(this.clock.now().getTime() - KEEP_MS).toISOString());
    return storages.length;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.current = this.sampleAll()
        .then(
          (n) => this.logger.debug({ storages: n }, 'storage usage sampled'),
          (err: unknown) => this.logger.warn({ err }, 'storage usage sampling failed; next try at the next interval'),
        )
        .finally(() => {
          this.current = null;
          if (!this.stopped) this.schedule(this.intervalSeconds * 1000);
        });
    }, ms);
    this.timer.unref();
  }
}
