/**
 * `qemu-img check` for restores, beside qemu-img.ts (whose `info` and conventions this reuses):
 * argv only, `env LC_ALL=C`, `-f <format>` always given (never probe a format: a raw disk's
 * guest could write a fake qcow2 header), absolute paths after `--`.
 * `localImageTool()` runs both on the worker, where restores write their images.
 */
import { nodeProcessRunner, type ProcessRunner } from '../process/process-runner.js';
import { QemuImg, type CommandRunner } from './qemu-img.js';
import { QemuImgErrorCode, qemuImgError } from './qemu-img-errors.js';

export interface ImageCheck {
  ok: boolean;
  /** 0 clean, 2 corrupt, 3 only leaked clusters (harmless), 1 or 63 could not check. */
  exitCode: number | null;
  corruptions: number;
  leaks: number;
  message: string;
}

/** The JSON of `qemu-img check --output=json` and its exit code (pure). */
export function parseCheck(code: number | null, stdout: string, stderr: string): ImageCheck {
  let corruptions = 0;
  let leaks = 0;
  try {
    const j = JSON.parse(stdout) as { corruptions?: number; leaks?: number; 'check-errors'?: number };
    corruptions = (j.corruptions ?? 0) + (j['check-errors'] ?? 0);
    leaks = j.leaks ?? 0;
  } catch {
    // no JSON: qemu-img could not open the image; stderr says why
  }
  const ok = (code === 0 || code === 3) && corruptions === 0;
  const why = stderr.trim().split('\n').filter(Boolean).join('; ');
  const message = ok ? (leaks > 0 ? `${leaks} leaked clusters (harmless)` : 'no errors') : why || `exit code ${code}, ${corruptions} corruptions`;
  return { ok, exitCode: code, corruptions, leaks, message };
}

export async function qemuImgCheck(run: CommandRunner, file: string, format: string, timeoutMs = 30 * 60_000): Promise<ImageCheck> {
  if (!file.startsWith('/')) throw qemuImgError(QemuImgErrorCode.UNSAFE_PATH, `image path ${JSON.stringify(file)} is not absolute`, { path: file });
  const r = await run(['env', 'LC_ALL=C', 'qemu-img', 'check', '--output=json', '-f', format, '--', file], { timeoutMs });
  return parseCheck(r.code, r.stdout, r.stderr);
}

/** What a restore asks of an image it wrote. */
export interface ImageTool {
  /** The image's own header only (its backing file may be missing). */
  info(file: string, format: string): Promise<{ format: string; backingFile: string | null; backingFormat: string | null }>;
  check(file: string, format: string): Promise<ImageCheck>;
}

/** A CommandRunner on this machine (the worker). */
export function localRunner(runner: ProcessRunner = nodeProcessRunner): CommandRunner {
  return async (argv, o) => {
    const r = await runner.run(argv[0]!, argv.slice(1), { timeoutMs: o.timeoutMs, killGraceMs: 5000 });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
}

export function localImageTool(runner?: ProcessRunner): ImageTool {
  const run = localRunner(runner);
  const qemuImg = new QemuImg(run, { timeoutMs: 60_000 });
  return {
    async info(file, format) {
      const [top] = await qemuImg.info(file, { format, backingChain: false });
      return { format: top!.format, backingFile: top!.backingFilename, backingFormat: top!.backingFormat };
    },
    check: (file, format) => qemuImgCheck(run, file, format),
  };
}
