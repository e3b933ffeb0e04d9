import { createPinia, setActivePinia } from 'pinia';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useEventsStore } from './events';

function sse(text: string, keepOpen = false): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(text));
      if (!keepOpen) c.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}
const task = (id: string, state: string, parentId: string | null = null) => ({ id, kind: 'vm.backup', state, parentId, target: { type: 'vm', id: 'vm1' }, targetName: 'web-1', progress: null, createdAt: '2026-12-02T14:00:00.000Z', updatedAt: '2026-12-02T14:00:00.000Z' });

describe('the app-wide event stream', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('feeds the task store, counts running top-level tasks, and resumes with Last-Event-ID after the stream ends', async () => {
    setActivePinia(createPinia());
    const calls: { url: string; lastEventId: string | null }[] = [];
    let n = 0;
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      const headers = init.headers as Record<string, string>;
      calls.push({ url, lastEventId: headers['last-event-id'] ?? null });
      if (url.startsWith('/api/v2/tasks')) return new Response(JSON.stringify({ items: [], total: 0, limit: 200, offset: 0 }), { status: 200 });
      n++;
      if (n === 1)
        return sse(
          `retry: 10\n\nid: e1\nevent: hello\ndata: {"resumed":false,"serverTime":"x"}\n\n` +
            `id: e2\nevent: task\ndata: ${JSON.stringify(task('t1', 'running'))}\n\n` +
            `id: e3\nevent: task\ndata: ${JSON.stringify(task('t2', 'running', 't1'))}\n\n` +
            `event: expired\ndata: {"code":"AUTH.TOKEN_EXPIRED"}\n\n`,
        );
      return sse(`id: e4\nevent: hello\ndata: {"resumed":true,"serverTime":"x"}\n\nid: e5\nevent: task\ndata: ${JSON.stringify(task('t1', 'succeeded'))}\n\nid: e6\nevent: resync\ndata: {"reason":"too old"}\n\n`, true);
    });
    const store = useEventsStore();
    const seen: string[] = [];
    store.subscribe((e) => seen.push(e.type));
    store.start();
    await vi.waitFor(() => expect(store.tasks.get('t1')?.state).toBe('succeeded'), { timeout: 5000 });
    await vi.waitFor(() => expect(store.resyncs).toBeGreaterThan(0));
    const streams = calls.filter((c) => c.url.startsWith('/api/v2/events'));
    expect(streams).toHaveLength(2);
    expect(streams[0].lastEventId).toBeNull();
    expect(streams[1].lastEventId).toBe('e3'); // the last id seen before the stream closed
    expect(store.status).toBe('live');
    expect(store.runningCount).toBe(0); // t1 finished; t2 is a child and never counted
    expect(seen).toEqual(['hello', 'task', 'task', 'expired', 'hello', 'task', 'resync']);
    store.stop();
    expect(store.status).toBe('idle');
  });
});
