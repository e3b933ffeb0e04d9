/**
 * `qemu-img info` run on the host (over SSH in production): an image's format, virtual and
 * actual size, and its backing chain, which libvirt does not report for a domain that is not
 * running.
 *
 * - `--force-share` (-U): the image may be open by a running QEMU; only the header is read.
 * - `-f <format>` is always given (libvirt's driver type, raw when unknown, as libvirt assumes):
 *   letting qemu-img probe a raw disk would trust a header the guest can write, e.g. a fake
 *   qcow2 header naming a host file as its "backing file".
 * - Paths must be absolute: qemu-img reads `proto:…` or `json:{…}` as a protocol, and `-…` as an
 *   option. Backing files recorded in the images are resolved by qemu-img itself.
 */
import type { AppError } from '../../errors.js';
import { parseQemuImgInfo, type ImageInfo } from './qemu-img-info.js';
import { QemuImgErrorCode, qemuImgError } from './qemu-img-errors.js';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv on the host: `SshExecutor.exec` (or `SshPool.executor(id).exec`) fits as is. */
export type CommandRunner = (argv: readonly string[], opts: { timeoutMs: number }) => Promise<CommandResult>;

export interface QemuImgOptions {
  /** Per command. Default 30 s (a stalled NFS mount must not hang an inventory). */
  timeoutMs?: number;
}

const FORMAT = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const NOT_INSTALLED = /qemu-img: (command )?not found|env: .?qemu-img.?: No such file/i;
const NO_FILE = /No such file or directory/i;
const DENIED = /Permission denied/i;

/** Decide what a failed qemu-img run means (pure). */
export function classifyQemuImgFailure(r: CommandResult, path: string): AppError {
  const stderr = r.stderr.trim();
  const first = stderr.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
  const details = { path, exitCode: r.code, stderr };
  if (r.code === 127 || NOT_INSTALLED.test(stderr)) {
    return qemuImgError(QemuImgErrorCode.NOT_INSTALLED, `qemu-img is not installed on the host (Debian/Ubuntu: qemu-utils, RHEL: qemu-img): ${first}`, details);
  }
  if (NO_FILE.test(stderr)) return qemuImgError(QemuImgErrorCode.IMAGE_NOT_FOUND, `disk image ${JSON.stringify(path)} or a file of its backing chain does not exist: ${first}`, details);
  if (DENIED.test(stderr)) return qemuImgError(QemuImgErrorCode.PERMISSION_DENIED, `the SSH user may not read disk image ${JSON.stringify(path)} or its backing chain: ${first}`, details);
  return qemuImgError(QemuImgErrorCode.FAILED, `qemu-img info ${JSON.stringify(path)} failed: ${first || `exit code ${r.code}`}`, details);
}

export class QemuImg {
  private readonly timeoutMs: number;

  constructor(
    private readonly run: CommandRunner,
    opts: QemuImgOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  static overSsh(executor: { exec: CommandRunner }, opts?: QemuImgOptions): QemuImg {
    return new QemuImg((argv, o) => executor.exec(argv, o), opts);
  }

  /**
   * The image and, with `backingChain` (default), every image below it: top first.
   * `format`: the format libvirt knows for the top image (driver type); default raw.
   */
  async info(path: string, opts: { format?: string | null; backingChain?: boolean } = {}): Promise<ImageInfo[]> {
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw qemuImgError(QemuImgErrorCode.UNSAFE_PATH, `disk image path ${JSON.stringify(path)} is not absolute; it is not passed to qemu-img`, { path });
    }
    const format = opts.format ?? 'raw';
    if (!FORMAT.test(format)) {
      throw qemuImgError(QemuImgErrorCode.UNSAFE_PATH, `disk format ${JSON.stringify(format)} is not a qemu-img format name`, { path, format });
    }
    const argv = ['env', 'LC_ALL=C', 'qemu-img', 'info', ...(opts.backingChain === false ? [] : ['--backing-chain']), '--force-share', '--output=json', '-f', format, '--', path];
    const r = await this.run(argv, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw classifyQemuImgFailure(r, path);
    return parseQemuImgInfo(r.stdout);
  }
}

export type { ImageInfo };
