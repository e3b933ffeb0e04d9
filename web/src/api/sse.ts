// Server-sent events over fetch (EventSource cannot send the bearer header): a parser for
// the text/event-stream format and a reader that feeds it from a response body.
import { api, type Query } from './client';

export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

/** Incremental text/event-stream parser (WHATWG HTML §9.2.6). */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | null = null;
  /** The last id seen (persists across messages, as the spec's "last event ID"). */
  lastEventId: string | null = null;
  retryMs: number | null = null;

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) break;
      // A lone \r at the end of the buffer may be the first half of \r\n.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        return null;
      }
      const msg = { event: this.event || 'message', data: this.data.join('\n'), id: this.id };
      this.data = [];
      this.event = '';
      return msg;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.id = value;
          this.lastEventId = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return null;
  }
}

export interface StreamOptions {
  query?: Query;
  lastEventId?: string | null;
  signal: AbortSignal;
  onOpen?: () => void;
  onMessage: (msg: SseMessage) => void;
}

/**
 * Opens an SSE stream with the bearer header and reads it until it ends (resolves) or fails
 * (rejects with ApiError for a refused request). Resume is the caller's loop: pass the
 * parser's last id back as `lastEventId`.
 */
export async function readEventStream(path: string, opts: StreamOptions): Promise<{ lastEventId: string | null; retryMs: number | null }> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (opts.lastEventId) headers['last-event-id'] = opts.lastEventId;
  const res = await api.raw('GET', path, { query: opts.query, headers, signal: opts.signal });
  const parser = new SseParser();
  parser.lastEventId = opts.lastEventId ?? null;
  opts.onOpen?.();
  if (!res.body) return { lastEventId: parser.lastEventId, retryMs: null };
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const msg of parser.push(value)) opts.onMessage(msg);
    }
  } finally {
    reader.releaseLock();
  }
  return { lastEventId: parser.lastEventId, retryMs: parser.retryMs };
}
