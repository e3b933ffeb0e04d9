import { errorFamily, type ErrorKind } from '../errors.js';

/** Stable codes of restores (clients match on them). Borg's come from adapters/borg/extract.ts. */
export const RestoreErrorCode = {
  /** The restored image failed `qemu-img check`, or a template's checksum did not match. */
  VERIFY_FAILED: 'RESTORE.VERIFY_FAILED',
  VM_NOT_FOUND: 'VM.NOT_FOUND',
  RESTORE_POINT_NOT_FOUND: 'RESTORE_POINT.NOT_FOUND',
  DISK_NOT_FOUND: 'RESTORE_POINT.DISK_NOT_FOUND',
  HOST_NOT_FOUND: 'HOST.NOT_FOUND',
  /** new-vm: a domain of that name exists on the host, or a disk file exists at the new path. */
  TARGET_EXISTS: 'RESTORE.TARGET_EXISTS',
  /** directory: missing, not a directory, not empty, not writable, not absolute (`details.reason`). */
  DIRECTORY_INVALID: 'RESTORE.DIRECTORY_INVALID',
  /** Not enough free space for the restored images (plus the kept originals). */
  STORAGE_FULL: 'STORAGE.FULL',
  /** The request's options do not fit the mode. */
  OPTIONS_INVALID: 'RESTORE.OPTIONS_INVALID',
  NEW_NAME_INVALID: 'RESTORE.NEW_NAME_INVALID',
  /** The restore point has no disk archives, or an archive does not hold exactly one file. */
  ARCHIVE_INVALID: 'RESTORE.ARCHIVE_INVALID',
  /** A file of an earlier interrupted restore is in the way (`details.files`): check it, then remove it. */
  LEFTOVER: 'RESTORE.LEFTOVER',
  /** A backing file is missing and not in `<storage>/template/` (or has no checksum). */
  BACKING_MISSING: 'RESTORE.BACKING_MISSING',
  /** new-vm: no domain XML in the restore point and the original VM is gone. */
  NO_DOMAIN_XML: 'RESTORE.NO_DOMAIN_XML',
  /** The VM did not start again after the restore (the originals were put back). */
  START_FAILED: 'RESTORE.START_FAILED',
  CANCELED: 'RESTORE.CANCELED',
  /** In place: the disk is not a regular file (block device, symlink): not replaced by a rename. */
  UNSUPPORTED_DISK: 'RESTORE.UNSUPPORTED_DISK',
  /** The repository's archives of the restore point are not what the restore point recorded (tampered, partly pruned). */
  MANIFEST_MISMATCH: 'RESTORE_POINT.MANIFEST_MISMATCH',
  /** In place: the restore point has a disk the VM no longer has (matched by target). */
  DISKS_CHANGED: 'RESTORE.DISKS_CHANGED',
} as const;
export type RestoreErrorCode = (typeof RestoreErrorCode)[keyof typeof RestoreErrorCode];

const KIND: Record<RestoreErrorCode, ErrorKind> = {
  'RESTORE.VERIFY_FAILED': 'internal',
  'VM.NOT_FOUND': 'not_found',
  'RESTORE_POINT.NOT_FOUND': 'not_found',
  'RESTORE_POINT.DISK_NOT_FOUND': 'not_found',
  'HOST.NOT_FOUND': 'not_found',
  'RESTORE.TARGET_EXISTS': 'conflict',
  'RESTORE.DIRECTORY_INVALID': 'invalid',
  'STORAGE.FULL': 'unavailable',
  'RESTORE.OPTIONS_INVALID': 'invalid',
  'RESTORE.NEW_NAME_INVALID': 'invalid',
  'RESTORE.ARCHIVE_INVALID': 'internal',
  'RESTORE.LEFTOVER': 'conflict',
  'RESTORE.BACKING_MISSING': 'conflict',
  'RESTORE.NO_DOMAIN_XML': 'conflict',
  'RESTORE.START_FAILED': 'unavailable',
  'RESTORE.CANCELED': 'conflict',
  'RESTORE.UNSUPPORTED_DISK': 'conflict',
  'RESTORE_POINT.MANIFEST_MISMATCH': 'conflict',
  'RESTORE.DISKS_CHANGED': 'conflict',
};

export const restoreError = errorFamily(KIND);
