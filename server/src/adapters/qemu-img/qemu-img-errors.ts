import { errorFamily, type ErrorKind } from '../../errors.js';

/** Stable error codes of the qemu-img adapter. */
export const QemuImgErrorCode = {
  /** qemu-img is not installed on the host (package qemu-utils). */
  NOT_INSTALLED: 'QEMU_IMG.NOT_INSTALLED',
  /** The image (or a file of its backing chain) does not exist. */
  IMAGE_NOT_FOUND: 'QEMU_IMG.IMAGE_NOT_FOUND',
  /** The SSH user may not read the image. */
  PERMISSION_DENIED: 'QEMU_IMG.PERMISSION_DENIED',
  /** qemu-img failed for another reason; its stderr is in the message. */
  FAILED: 'QEMU_IMG.FAILED',
  /** qemu-img printed something we cannot parse. */
  BAD_OUTPUT: 'QEMU_IMG.BAD_OUTPUT',
  /** The path is not one we pass to qemu-img (not absolute: it could name a protocol or an option). */
  UNSAFE_PATH: 'QEMU_IMG.UNSAFE_PATH',
} as const;
export type QemuImgErrorCode = (typeof QemuImgErrorCode)[keyof typeof QemuImgErrorCode];

const KIND: Record<QemuImgErrorCode, ErrorKind> = {
  'QEMU_IMG.NOT_INSTALLED': 'unavailable',
  'QEMU_IMG.IMAGE_NOT_FOUND': 'not_found',
  'QEMU_IMG.PERMISSION_DENIED': 'unavailable',
  'QEMU_IMG.FAILED': 'unavailable',
  'QEMU_IMG.BAD_OUTPUT': 'internal',
  'QEMU_IMG.UNSAFE_PATH': 'invalid',
};

export const qemuImgError = errorFamily(KIND);
