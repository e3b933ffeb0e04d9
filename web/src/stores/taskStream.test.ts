import { flushPromises, mount } from '@vue/test-utils';
import { createPinia, setActivePinia } from 'pinia';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defineComponent, h, ref } from 'vue';
import TaskLog from '../components/tasks/TaskLog.vue';
import { useTaskStream } from './taskStream';

const task = (state: string, percent: number) => ({ id: 't1', kind: 'vm.backup', state, parentId: null, target: null, progress: { percent, bytesDone: null, bytesTotal: null, rateBytesPerSecond: null, step: 'vda: borg create' }, error: null, createdAt: 'x', updatedAt: 'x', startedAt: null, finishedAt: null });
const log = (seq: number) => `id: ${seq}\nevent: log\ndata: ${JSON.stringify({ seq, at: '2026-12-02T14:00:00.000Z', level: 'info', message: `line ${seq}` })}\n\n`;

describe('the task stream feeding the task log', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('renders lines as they arrive across chunks and resumes after the last seq when the stream drops', async () => {
    setActivePinia(createPinia());
    const requests: (string | null)[] = [];
    let push: ((s: string) => void) | null = null;
    let close: (() => void) | null = null;
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      requests.push((init.headers as Record<string, string>)['last-event-id'] ?? null);
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          push = (s) => c.enqueue(new TextEncoder().encode(s));
          close = () => c.close();
        },
      });
      return new Response(body, { status: 200 });
    });
    const Page = defineComponent({
      setup() {
        const { state, lines } = useTaskStream(ref('t1'));
        return () => h('div', [h('span', { 'data-test': 'pct' }, String(state.task?.progress?.percent ?? '')), h(TaskLog, { lines: lines.value, live: true })]);
      },
    });
    const w = mount(Page);
    await vi.waitFor(() => expect(push).not.toBeNull());
    push!(`event: task\ndata: ${JSON.stringify(task('running', 10))}\n\n${log(1)}${log(2)}`);
    await vi.waitFor(() => expect(w.findAll('[data-test="log-line"]')).toHaveLength(2));
    expect(w.get('[data-test="pct"]').text()).toBe('10');
    push!(`${log(3)}id: 4\nevent: log\nda`);
    push!(`ta: ${JSON.stringify({ seq: 4, at: 'x', level: 'warn', message: 'line 4' })}\n\nevent: task\ndata: ${JSON.stringify(task('running', 40))}\n\n`);
    await vi.waitFor(() => expect(w.findAll('[data-test="log-line"]')).toHaveLength(4));
    expect(w.get('[data-test="pct"]').text()).toBe('40');

    // The connection drops: the stream reconnects with Last-Event-ID 4; a replayed line is not shown twice.
    const first = close!;
    push = null;
    first();
    await vi.waitFor(() => expect(requests).toHaveLength(2), { timeout: 3000 });
    expect(requests).toEqual([null, '4']);
    await vi.waitFor(() => expect(push).not.toBeNull());
    push!(`${log(4)}${log(5)}event: end\ndata: ${JSON.stringify(task('succeeded', 100))}\n\n`);
    close!();
    await vi.waitFor(() => expect(w.findAll('[data-test="log-line"]')).toHaveLength(5));
    expect(w.findAll('[data-test="log-line"]').map((l) => l.attributes('data-seq'))).toEqual(['1', '2', '3', '4', '5']);
    await flushPromises();
    expect(w.get('[data-test="pct"]').text()).toBe('100');
    w.unmount();
  });
});
