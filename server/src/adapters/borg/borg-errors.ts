import { errorFamily, type ErrorKind } from '../../errors.js';

/** Stable error codes of the borg adapter (clients match on them). */
export const BorgErrorCode = {
  /** Another borg process holds the repository lock (or a dead one left it). */
  REPOSITORY_LOCKED: 'BORG.REPOSITORY_LOCKED',
  REPOSITORY_NOT_FOUND: 'BORG.REPOSITORY_NOT_FOUND',
  REPOSITORY_EXISTS: 'BORG.REPOSITORY_EXISTS',
  /** The repository was moved or replaced since this installation last used it. */
  REPOSITORY_RELOCATED: 'BORG.REPOSITORY_RELOCATED',
  /** An unencrypted repository where an encrypted one was expected (or never seen before). */
  REPOSITORY_UNENCRYPTED: 'BORG.REPOSITORY_UNENCRYPTED',
  PASSPHRASE_WRONG: 'BORG.PASSPHRASE_WRONG',
  ARCHIVE_EXISTS: 'BORG.ARCHIVE_EXISTS',
  ARCHIVE_NOT_FOUND: 'BORG.ARCHIVE_NOT_FOUND',
  /** A small archive (a restore point's configuration) holds far more than it can. */
  ARCHIVE_TOO_LARGE: 'BORG.ARCHIVE_TOO_LARGE',
  /** The backup storage has no space left. */
  STORAGE_FULL: 'STORAGE.FULL',
  NOT_INSTALLED: 'BORG.NOT_INSTALLED',
  /** borg check found problems. */
  CHECK_FAILED: 'BORG.CHECK_FAILED',
  FAILED: 'BORG.FAILED',
  CANCELED: 'TASK.CANCELED',
} as const;
export type BorgErrorCode = (typeof BorgErrorCode)[keyof typeof BorgErrorCode];

const KIND: Record<BorgErrorCode, ErrorKind> = {
  'BORG.REPOSITORY_LOCKED': 'conflict',
  'BORG.REPOSITORY_NOT_FOUND': 'not_found',
  'BORG.REPOSITORY_EXISTS': 'conflict',
  'BORG.REPOSITORY_RELOCATED': 'conflict',
  'BORG.REPOSITORY_UNENCRYPTED': 'conflict',
  'BORG.PASSPHRASE_WRONG': 'conflict',
  'BORG.ARCHIVE_EXISTS': 'conflict',
  'BORG.ARCHIVE_NOT_FOUND': 'not_found',
  'BORG.ARCHIVE_TOO_LARGE': 'conflict',
  'STORAGE.FULL': 'unavailable',
  'BORG.NOT_INSTALLED': 'unavailable',
  'BORG.CHECK_FAILED': 'conflict',
  'BORG.FAILED': 'internal',
  'TASK.CANCELED': 'conflict',
};

export const borgError = errorFamily(KIND);
