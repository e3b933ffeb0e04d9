/**
 * Typed application errors. Services throw these; the HTTP edge maps them once
 * to application/problem+json. `code` is stable and documented (clients match on it).
 */
export type ErrorKind =
  | 'invalid'      // 400: the request is wrong
  | 'unauthenticated' // 401
  | 'forbidden'    // 403
  | 'not_found'    // 404
  | 'conflict'     // 409: state of other resources prevents it
  | 'unavailable'  // 503
  | 'internal';    // 500

export class AppError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details?: Record<string, unknown>;

  constructor(kind: ErrorKind, code: string, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.kind = kind;
    this.code = code;
    this.details = details;
  }
}

export const invalid = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError('invalid', code, message, details);
export const notFound = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError('not_found', code, message, details);
export const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError('conflict', code, message, details);
export const forbidden = (code: string, message: string) => new AppError('forbidden', code, message);
export const unauthenticated = (code: string, message: string) => new AppError('unauthenticated', code, message);

/** Error raised while reading configuration: names the variable and what it expects. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const httpStatusOf: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
  internal: 500,
};

/**
 * The error factory of a family of stable codes (an adapter's or a module's), each
 * code mapped once to its kind: `const borgError = errorFamily(KINDS)`.
 */
export function errorFamily<C extends string>(kinds: Record<C, ErrorKind>) {
  return (code: C, message: string, details?: Record<string, unknown>, cause?: unknown): AppError =>
    new AppError(kinds[code], code, message, details, cause === undefined ? undefined : { cause });
}
