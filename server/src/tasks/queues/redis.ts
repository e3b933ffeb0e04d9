import type { ConnectionOptions } from 'bullmq';

/**
 * BullMQ connection options from the Redis URL. Workers block on Redis and must
 * retry forever (`maxRetriesPerRequest: null`, as BullMQ requires); producers in
 * the API fail fast instead of hanging a request while Redis is down.
 */
export function workerConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null };
}

export function producerConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: 2, enableOfflineQueue: false };
}
