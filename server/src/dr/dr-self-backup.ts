/**
 * The daily self-backup: the same encrypted file as `backroll dr export`, written into
 * every backup storage under `<storage>/.backroll/backroll-dr-<time>.bdr`, the newest
 * `keep` kept. A lost Backroll server is then rebuilt from any storage plus the
 * passphrase (`backroll dr import`), which the operator keeps outside Backroll: it is
 * read from BACKROLL_DR_PASSPHRASE_FILE at each run, so it can be changed without a restart.
 *
 * The scheduler role checks every hour and writes when the newest file of a storage is
 * older than the interval, so a restart neither skips nor repeats a day.
 */
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import type { JobLogger } from '../tasks/task-lifecycle.js';
import { drArchiveCreatedAt } from './dr-archive.js';
import type { DrService } from './dr.service.js';

export const SELF_BACKUP_DIR = '.backroll';
const FILE_RE = /^backroll-dr-(\d{8}T\d{6}\.\d{3}Z)\.bdr$/;
const CHECK_EVERY_MS = 3600_000;

export interface SelfBackupSettings {
  /** File holding the passphrase; unset: self-backups are off. */
  passphraseFile?: string;
  intervalHours: number;
  keep: number;
}

export interface StorageSelfBackup {
  storageId: string;
  storageName: string;
  /** The newest file, or null. */
  last: { file: string; createdAt: string; bytes: number } | null;
  count: number;
  error: string | null;
}

export interface SelfBackupStatus {
  enabled: boolean;
  /** Why it is off, or null. */
  reason: string | null;
  intervalHours: number;
  keep: number;
  storages: StorageSelfBackup[];
}

export interface SelfBackupStorages {
  list(): Promise<{ id: string; name: string; path: string }[]>;
}

const stampOf = (d: Date) => d.toISOString().replace(/[-:]/g, '');

export class DrSelfBackup {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<unknown> | null = null;
  private readonly lastErrors = new Map<string, string>();

  constructor(
    private readonly dr: DrService,
    private readonly storages: SelfBackupStorages,
    private readonly settings: SelfBackupSettings,
    private readonly clock: Clock,
    private readonly logger: JobLogger,
  ) {}

  get enabled(): boolean {
    return !!this.settings.passphraseFile && this.settings.intervalHours > 0;
  }

  start(firstCheckMs = 60_000): void {
    if (!this.enabled) {
      this.logger.warn('self-backup of Backroll (database and keys) is off: set BACKROLL_DR_PASSPHRASE_FILE to write one into every storage daily');
      return;
    }
    const tick = (ms: number) => {
      this.timer = setTimeout(() => {
        this.current = this.runDue().finally(() => {
          this.current = null;
          tick(CHECK_EVERY_MS);
        });
      }, ms);
      this.timer.unref();
    };
    tick(firstCheckMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.current;
  }

  /** Writes into the storages whose newest file is older than the interval. */
  async runDue(): Promise<StorageSelfBackup[]> {
    const status = await this.status();
    const dueBefore = this.clock.now().getTime() - this.settings.intervalHours * 3600_000;
    const due = status.storages.filter((s) => !s.last || Date.parse(s.last.createdAt) <= dueBefore).map((s) => s.storageId);
    return due.length ? this.runNow(due) : [];
  }

  /** Writes one file into each storage (or those named) now, then rotates. */
  async runNow(only?: string[]): Promise<StorageSelfBackup[]> {
    if (!this.settings.passphraseFile) throw new Error('BACKROLL_DR_PASSPHRASE_FILE is not set');
    const passphrase = (await fs.readFile(this.settings.passphraseFile, 'utf8')).replace(/\r?\n$/, '');
    const { file } = await this.dr.export(passphrase, this.clock.now());
    const name = `backroll-dr-${stampOf(this.clock.now())}.bdr`;
    for (const s of await this.storages.list()) {
      if (only && !only.includes(s.id)) continue;
      try {
        await this.writeInto(s.path, name, file);
        this.lastErrors.delete(s.id);
        this.logger.info({ storage: s.name, file: name }, 'self-backup of Backroll written');
      } catch (err) {
        const message = (err as Error).message;
        this.lastErrors.set(s.id, message);
        this.logger.error({ storage: s.name, err: message }, 'self-backup of Backroll failed on this storage');
      }
    }
    return (await this.status()).storages.filter((s) => !only || only.includes(s.storageId));
  }

  private async writeInto(storagePath: string, name: string, file: Buffer): Promise<void> {
    const dir = path.join(storagePath, SELF_BACKUP_DIR);
    await fs.mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const st = await fs.lstat(dir);
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a link or a file is in the way): remove it`);
    const tmp = path.join(dir, `.${name}.tmp`);
    await fs.rm(tmp, { force: true });
    // O_EXCL | O_NOFOLLOW: never write through something planted at the temporary path.
    const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(file);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path.join(dir, name));
    const names = (await fs.readdir(dir)).filter((n) => FILE_RE.test(n)).sort();
    for (const old of names.slice(0, Math.max(0, names.length - this.settings.keep))) await fs.rm(path.join(dir, old), { force: true });
  }

  async status(): Promise<SelfBackupStatus> {
    const storages: StorageSelfBackup[] = [];
    for (const s of await this.storages.list()) {
      const dir = path.join(s.path, SELF_BACKUP_DIR);
      const isDir = (await fs.lstat(dir).catch(() => null))?.isDirectory() ?? false;
      const names = isDir ? (await fs.readdir(dir)).filter((n) => FILE_RE.test(n)).sort() : [];
      let last: StorageSelfBackup['last'] = null;
      const newest = names.at(-1);
      if (newest) {
        const p = path.join(dir, newest);
        const head = Buffer.alloc(4096);
        const fh = await fs.open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
        try {
          const { bytesRead } = await fh.read(head, 0, head.length, 0);
          const size = (await fh.stat()).size;
          let createdAt: string;
          try {
            createdAt = drArchiveCreatedAt(head.subarray(0, bytesRead));
          } catch {
            createdAt = (await fh.stat()).mtime.toISOString();
          }
          last = { file: p, createdAt, bytes: size };
        } finally {
          await fh.close();
        }
      }
      storages.push({ storageId: s.id, storageName: s.name, last, count: names.length, error: this.lastErrors.get(s.id) ?? null });
    }
    return {
      enabled: this.enabled,
      reason: this.enabled ? null : !this.settings.passphraseFile ? 'BACKROLL_DR_PASSPHRASE_FILE is not set' : 'BACKROLL_DR_SELF_BACKUP_HOURS is 0',
      intervalHours: this.settings.intervalHours,
      keep: this.settings.keep,
      storages,
    };
  }
}
