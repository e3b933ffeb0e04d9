import { ApiError } from '../../api/client';

/**
 * The code → field map for useFormErrors().set, completed with the problem's own
 * `field` member when the server names it (e.g. POLICY.RETENTION_INVALID → "retention").
 */
export function withField(err: unknown, map: Record<string, string> = {}): Record<string, string> {
  if (err instanceof ApiError) {
    const field = err.extra<unknown>('field');
    if (typeof field === 'string' && field !== '' && !(err.code in map)) return { ...map, [err.code]: field };
  }
  return map;
}
