/**
 * Connecting to a host and re-trusting its key, with the problems the server
 * answers turned into what the screens show: HOST.KEY_CHANGED (both fingerprints),
 * HOST.AUTH_FAILED (the authorise command), the host not answering (503).
 */
import { api, ApiError, errorMessage } from '../../api/client';
import type { Host } from '../../api/types';
import { presentedFingerprintOf } from '../../components/admin/fingerprint';

export type ConnectOutcome =
  | { kind: 'connected'; host: Host }
  | { kind: 'key-changed'; pinned: string | null; presented: string | null; message: string }
  | { kind: 'auth-failed'; message: string; installCommand: string | null }
  | { kind: 'failed'; code: string; message: string };

export function outcomeOfError(err: unknown): ConnectOutcome {
  if (err instanceof ApiError) {
    if (err.code === 'HOST.KEY_CHANGED') {
      return {
        kind: 'key-changed',
        pinned: err.extra<string>('pinnedFingerprint') ?? null,
        presented: presentedFingerprintOf({ presentedFingerprint: err.extra('presentedFingerprint'), message: err.detail }),
        message: err.detail,
      };
    }
    if (err.code === 'HOST.AUTH_FAILED') return { kind: 'auth-failed', message: err.detail, installCommand: err.extra<string>('installCommand') ?? null };
    return { kind: 'failed', code: err.code, message: err.detail };
  }
  return { kind: 'failed', code: 'UNKNOWN', message: errorMessage(err) };
}

export async function connectHost(id: string): Promise<ConnectOutcome> {
  try {
    return { kind: 'connected', host: await api.post<Host>(`/hosts/${id}/connect`) };
  } catch (err) {
    return outcomeOfError(err);
  }
}

export async function trustHostKey(id: string, fingerprint: string): Promise<ConnectOutcome> {
  try {
    return { kind: 'connected', host: await api.post<Host>(`/hosts/${id}/trust-host-key`, { fingerprint }) };
  } catch (err) {
    return outcomeOfError(err);
  }
}

export function keyChanged(h: Host): boolean {
  return h.connection.errorCode === 'HOST.KEY_CHANGED';
}

export type TagType = 'default' | 'success' | 'warning' | 'error' | 'info';
export function connectionTag(h: Host): { type: TagType; text: string } {
  if (keyChanged(h)) return { type: 'error', text: 'host key changed' };
  switch (h.connection.state) {
    case 'connected':
      return { type: 'success', text: 'connected' };
    case 'failed':
      return { type: 'error', text: h.connection.errorCode === 'HOST.AUTH_FAILED' ? 'key not authorised' : 'not reachable' };
    default:
      return { type: 'default', text: 'never connected' };
  }
}
