// One task followed live over its own SSE stream (GET /tasks/{id}/events): the task on
// every change, its log line by line (id = seq, so a reconnect resumes with Last-Event-ID),
// `end` when it finishes, `expired` when the token ran out (reconnect with a fresh one).
import { onBeforeUnmount, reactive, shallowRef, watch, type Ref } from 'vue';
import { ApiError } from '../api/client';
import { readEventStream } from '../api/sse';
import type { Task, TaskLogLine } from '../api/types';
import { useEventsStore } from './events';

const MAX_LINES = 50_000;

export function useTaskStream(taskId: Ref<string>) {
  const state = reactive({
    task: null as Task | null,
    status: 'connecting' as 'connecting' | 'live' | 'reconnecting' | 'ended' | 'failed',
    error: null as unknown,
    lastSeq: 0,
    dropped: 0,
  });
  const lines = shallowRef<TaskLogLine[]>([]);
  const events = useEventsStore();
  let controller: AbortController | null = null;

  /** Appends lines (skipping any replayed after a resume) as a new array, so views re-render. */
  function addLines(batch: TaskLogLine[]): void {
    const fresh = batch.filter((l) => {
      if (l.seq <= state.lastSeq) return false;
      state.lastSeq = l.seq;
      return true;
    });
    if (fresh.length === 0) return;
    let next = lines.value.concat(fresh);
    if (next.length > MAX_LINES) {
      state.dropped += next.length - MAX_LINES;
      next = next.slice(next.length - MAX_LINES);
    }
    lines.value = next;
  }

  async function run(id: string, signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      let pending: TaskLogLine[] = [];
      let flushTimer: ReturnType<typeof setTimeout> | undefined;
      const flush = () => {
        flushTimer = undefined;
        const batch = pending;
        pending = [];
        addLines(batch);
      };
      try {
        await readEventStream(`/tasks/${id}/events`, {
          signal,
          lastEventId: state.lastSeq > 0 ? String(state.lastSeq) : null,
          onOpen: () => {
            state.status = 'live';
            state.error = null;
          },
          onMessage: (msg) => {
            const data = msg.data ? JSON.parse(msg.data) : null;
            if (msg.event === 'log') {
              // Batch the lines of one read burst into one render.
              pending.push(data as TaskLogLine);
              flushTimer ??= setTimeout(flush, 50);
            } else if (msg.event === 'task' || msg.event === 'end') {
              state.task = { ...(state.task ?? {}), ...(data as Task) };
              events.applyTask(data as Task);
              if (msg.event === 'end') state.status = 'ended';
            }
            attempt = 0;
          },
        });
        if (flushTimer) clearTimeout(flushTimer);
        flush();
        if (state.status === 'ended') return;
      } catch (err) {
        if (flushTimer) clearTimeout(flushTimer);
        flush();
        if (signal.aborted) return;
        if (err instanceof ApiError && (err.status === 404 || err.status === 403 || err.status === 401 || err.status === 400)) {
          state.status = 'failed';
          state.error = err;
          return;
        }
        state.error = err;
        attempt++;
      }
      if (signal.aborted) return;
      state.status = 'reconnecting';
      await new Promise((r) => setTimeout(r, attempt === 0 ? 300 : Math.min(15_000, 1000 * 2 ** Math.min(attempt, 4))));
    }
  }

  function start(id: string): void {
    controller?.abort();
    controller = new AbortController();
    state.task = null;
    state.status = 'connecting';
    state.error = null;
    state.lastSeq = 0;
    state.dropped = 0;
    lines.value = [];
    void run(id, controller.signal);
  }

  watch(taskId, (id) => start(id), { immediate: true });
  onBeforeUnmount(() => controller?.abort());

  return { state, lines, restart: () => start(taskId.value) };
}
