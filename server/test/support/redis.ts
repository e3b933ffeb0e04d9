import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The machine's Redis for distributed-mode tests; each test run uses its own key prefix. */
export const REDIS_URL = process.env.BACKROLL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why the distributed mode cannot be tested here, or null when Redis answers. */
export async function redisUnavailableReason(): Promise<string | null> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return null;
  } catch (err) {
    return `Redis at ${REDIS_URL} is not reachable (${(err as Error).message}); start it or set BACKROLL_TEST_REDIS_URL`;
  } finally {
    r.disconnect();
  }
}

export function uniquePrefix(): string {
  return `brtest-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Removes every key of a test prefix. */
export async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
