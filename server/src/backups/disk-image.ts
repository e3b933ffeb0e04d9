/** `qemu-img info --backing-chain` of a disk file, read on the worker (same path as on the host). */
import { AppError } from '../errors.js';
import type { ProcessRunner } from '../adapters/process/process-runner.js';

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize: number | null;
  backingFilename: string | null;
}

export async function imageChain(runner: ProcessRunner, file: string): Promise<ImageInfo[]> {
  // -U: the image may be in use by a running VM (read-only look, no lock).
  const r = await runner.run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', '--', file], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new AppError('unavailable', 'VM.DISK_NOT_ACCESSIBLE', `qemu-img cannot read ${file} on this worker: ${r.stderr.trim()}`, { path: file });
  const out = JSON.parse(r.stdout) as Array<{ filename: string; format: string; 'virtual-size': number; 'actual-size'?: number; 'full-backing-filename'?: string; 'backing-filename'?: string }>;
  return out.map((i) => ({
    filename: i.filename,
    format: i.format,
    virtualSize: i['virtual-size'],
    actualSize: i['actual-size'] ?? null,
    backingFilename: i['full-backing-filename'] ?? i['backing-filename'] ?? null,
  }));
}
