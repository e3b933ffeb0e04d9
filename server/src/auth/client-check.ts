import { findMachineClient } from '../idp/clients.js';

/** How long the answer "this machine client exists" is reused before the store is read again. */
export const CLIENT_CHECK_CACHE_MS = 5_000;

export interface ClientCheck {
  /** False when the machine client was deleted: its tokens are refused (AUTH.CLIENT_DELETED). */
  exists(clientId: string): boolean;
}

/**
 * The bundled provider's machine clients (`<data dir>/idp/clients.json`): a token issued to
 * a client that has since been deleted is refused within `cacheMs`, not at its expiry.
 */
export function embeddedClientCheck(dataDir: string, cacheMs = CLIENT_CHECK_CACHE_MS, now: () => number = Date.now): ClientCheck {
  const cache = new Map<string, { exists: boolean; at: number }>();
  return {
    exists(clientId) {
      const t = now();
      const hit = cache.get(clientId);
      if (hit && t - hit.at < cacheMs) return hit.exists;
      const exists = findMachineClient(dataDir, clientId) !== undefined;
      if (cache.size >= 1000) cache.clear(); // bounded: token client ids are not attacker-chosen, but stay safe
      cache.set(clientId, { exists, at: t });
      return exists;
    },
  };
}
