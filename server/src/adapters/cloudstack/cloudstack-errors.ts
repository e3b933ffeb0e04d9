import { errorFamily, type ErrorKind } from '../../errors.js';

/** Stable error codes of the CloudStack client (clients match on them). */
export const CloudStackErrorCode = {
  /** No answer from the endpoint: DNS, refused, TLS verification, timeout, a proxy's 502/503/504. */
  UNREACHABLE: 'CONNECTOR.UNREACHABLE',
  /** CloudStack refused the credentials or the account may not run the command (401, 432, 531). */
  AUTH_FAILED: 'CONNECTOR.AUTH_FAILED',
  /** CloudStack answered with an error (its errorcode and errortext are in the details), or not like CloudStack. */
  API_ERROR: 'CONNECTOR.API_ERROR',
  /** An asynchronous job did not finish within the wait; it may still finish in CloudStack. */
  JOB_TIMEOUT: 'CONNECTOR.JOB_TIMEOUT',
} as const;
export type CloudStackErrorCode = (typeof CloudStackErrorCode)[keyof typeof CloudStackErrorCode];

const KIND: Record<CloudStackErrorCode, ErrorKind> = {
  'CONNECTOR.UNREACHABLE': 'unavailable',
  // The connector's settings (keys, account, role) must change: like HOST.AUTH_FAILED.
  'CONNECTOR.AUTH_FAILED': 'conflict',
  'CONNECTOR.API_ERROR': 'conflict',
  'CONNECTOR.JOB_TIMEOUT': 'unavailable',
};

export const cloudStackError = errorFamily(KIND);
