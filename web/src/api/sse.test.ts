import { describe, expect, it } from 'vitest';
import { SseParser } from './sse';

describe('SseParser', () => {
  it('parses events split across chunks, with ids, comments, multi-line data and CRLF', () => {
    const p = new SseParser();
    expect(p.push('retry: 2000\n\n: keep-alive\n\nid: 7\nevent: log\nda')).toEqual([]);
    const out = p.push('ta: {"seq":7}\n\nevent: task\r\ndata: a\r\ndata: b\r\n\r\n');
    expect(out).toEqual([
      { event: 'log', data: '{"seq":7}', id: '7' },
      { event: 'task', data: 'a\nb', id: '7' },
    ]);
    expect(p.lastEventId).toBe('7');
    expect(p.retryMs).toBe(2000);
  });

  it('does not emit an event before its blank line, and waits for the \\n after a trailing \\r', () => {
    const p = new SseParser();
    expect(p.push('event: end\ndata: {}\r')).toEqual([]);
    expect(p.push('\n\n')).toEqual([{ event: 'end', data: '{}', id: null }]);
    expect(p.push('data: x\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'message', data: 'x', id: null }]);
  });
});
