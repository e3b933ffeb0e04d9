import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { HttpPoster } from '../adapters/http-poster.js';
import type { HookDeliveryConfig } from '../config/config.js';
import type { HookTarget } from './hook.service.js';

export const SIGNATURE_HEADER = 'x-backroll-signature';
export const TIMESTAMP_HEADER = 'x-backroll-timestamp';
export const EVENT_HEADER = 'x-backroll-event';
export const DELIVERY_HEADER = 'x-backroll-delivery';

/**
 * Signature of a generic webhook: HMAC-SHA256 with the hook's secret over
 * `<timestamp>.<raw body>`, sent as `X-Backroll-Signature: sha256=<hex>` with
 * `X-Backroll-Timestamp: <unix seconds>`. Receivers recompute it and refuse
 * timestamps older than a few minutes, so a captured request cannot be replayed.
 */
export function signPayload(secret: string, timestamp: number, rawBody: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`;
}

/** Receiver side of `signPayload` (for integrators and tests). */
export function verifySignature(secret: string, timestampHeader: string | undefined, signatureHeader: string | undefined, rawBody: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  if (!timestampHeader || !signatureHeader || !/^\d{1,12}$/.test(timestampHeader)) return false;
  const ts = Number(timestampHeader);
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(signPayload(secret, ts, rawBody));
  const given = Buffer.from(signatureHeader);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface HookMessage {
  event: string;
  /** Slack's text. */
  text: string;
  /** The generic webhook's JSON body (event, deliveryId and sentAt are added). */
  data: Record<string, unknown>;
}

export interface DeliveryResult {
  delivered: boolean;
  deliveryId: string;
  attempts: number;
  status?: number;
  error?: string;
  durationMs: number;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Sends a notification to a hook: Slack incoming webhook (`{"text": …}`) or a
 * signed generic JSON webhook. Retries network errors, timeouts, 408/429/5xx with
 * exponential backoff; other 4xx answers are final. Never throws.
 */
/** Where deliveries are written down (the hook's delivery history); failures to record are ignored. */
export type DeliveryRecorder = (hookId: string, d: { event: string; test: boolean; taskId: string | null; at: string; result: DeliveryResult }) => Promise<void>;

export class HookNotifier {
  private recorder: DeliveryRecorder | undefined;

  /** Records every delivery from now on (set once by the composition root). */
  setRecorder(recorder: DeliveryRecorder): void {
    this.recorder = recorder;
  }

  constructor(
    private readonly http: HttpPoster,
    private readonly config: HookDeliveryConfig,
    private readonly userAgent: string,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  async deliver(hook: HookTarget, message: HookMessage, opts: { attempts?: number; taskId?: string; test?: boolean } = {}): Promise<DeliveryResult> {
    const at = new Date().toISOString();
    const result = await this.send(hook, message, opts.attempts ?? this.config.attempts);
    await this.recorder?.(hook.id, { event: message.event, test: opts.test ?? false, taskId: opts.taskId ?? null, at, result }).catch(() => undefined);
    return result;
  }

  private async send(hook: HookTarget, message: HookMessage, attempts: number): Promise<DeliveryResult> {
    const deliveryId = randomUUID();
    const started = Date.now();
    let last: { status?: number; error?: string } = {};
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await this.sleep(this.config.backoffMs * 2 ** (attempt - 2));
      try {
        const { body, headers } = this.request(hook, message, deliveryId);
        const res = await this.http.post(hook.url, body, headers, this.config.timeoutMs);
        if (res.status >= 200 && res.status < 300) {
          return { delivered: true, deliveryId, attempts: attempt, status: res.status, durationMs: Date.now() - started };
        }
        last = { status: res.status, error: `HTTP ${res.status}${res.body ? `: ${res.body.replace(/\s+/g, ' ').slice(0, 120)}` : ''}` };
        if (!retryable(res.status)) return { delivered: false, deliveryId, attempts: attempt, ...last, durationMs: Date.now() - started };
      } catch (err) {
        const e = err as Error;
        last = { error: e.name === 'TimeoutError' ? `no answer within ${this.config.timeoutMs} ms` : `${e.message}${(e.cause as Error | undefined)?.message ? ` (${(e.cause as Error).message})` : ''}` };
      }
    }
    return { delivered: false, deliveryId, attempts, ...last, durationMs: Date.now() - started };
  }

  private request(hook: HookTarget, message: HookMessage, deliveryId: string): { body: string; headers: Record<string, string> } {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': this.userAgent };
    if (hook.kind === 'slack') return { body: JSON.stringify({ text: message.text }), headers };
    const timestamp = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ event: message.event, deliveryId, sentAt: new Date(timestamp * 1000).toISOString(), ...message.data });
    headers[EVENT_HEADER] = message.event;
    headers[DELIVERY_HEADER] = deliveryId;
    headers[TIMESTAMP_HEADER] = String(timestamp);
    if (hook.secret) headers[SIGNATURE_HEADER] = signPayload(hook.secret, timestamp, body);
    return { body, headers };
  }
}
