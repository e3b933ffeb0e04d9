// The one app-wide event stream (GET /api/v2/events): task, host and VM changes pushed by
// the server and fed into stores. It reconnects with Last-Event-ID; a `resync` event (or a
// gap the server cannot replay) bumps `resyncs`, which lists watch to fetch again.
import { defineStore } from 'pinia';
import { computed, onBeforeUnmount, ref, shallowReactive } from 'vue';
import { api, ApiError } from '../api/client';
import { readEventStream, type SseMessage } from '../api/sse';
import type { Host, ServerEvent, Task, TaskPage } from '../api/types';
import { FINISHED_STATES } from '../api/types';

export type StreamStatus = 'idle' | 'connecting' | 'live' | 'reconnecting';
type Listener = (event: ServerEvent) => void;

export const useEventsStore = defineStore('events', () => {
  const status = ref<StreamStatus>('idle');
  const lastEventId = ref<string | null>(null);
  const lastError = ref<string | null>(null);
  const resyncs = ref(0);
  /** Tasks seen recently, by id (running ones and those that just finished). */
  const tasks = shallowReactive(new Map<string, Task>());
  const hosts = shallowReactive(new Map<string, Host>());
  const listeners = new Set<Listener>();
  /** Names of task targets (VMs, pools, hosts) by "type:id", fetched once each on demand. */
  const names = shallowReactive(new Map<string, string | null>());
  let controller: AbortController | null = null;
  let attempt = 0;

  const running = computed(() =>
    [...tasks.values()]
      .filter((t) => t.state === 'running' || t.state === 'queued')
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)),
  );
  const runningCount = computed(() => running.value.filter((t) => t.parentId === null).length);

  function applyTask(task: Task): void {
    const known = tasks.get(task.id);
    // Stream events may not name the target; keep the name a list gave us.
    tasks.set(task.id, known?.targetName && !task.targetName ? { ...task, targetName: known.targetName } : task);
    // Keep the map small: forget finished tasks beyond the newest 200.
    if (tasks.size > 400) {
      const finished = [...tasks.values()].filter((t) => FINISHED_STATES.includes(t.state)).sort((a, b) => (a.updatedAt < b.updatedAt ? -1 : 1));
      for (const t of finished.slice(0, finished.length - 200)) tasks.delete(t.id);
    }
  }

  function emit(event: ServerEvent): void {
    if (event.type === 'task') applyTask(event.data);
    if (event.type === 'host') hosts.set(event.data.id, event.data);
    if (event.type === 'resync') resyncs.value++;
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        console.warn('event listener failed', err);
      }
    }
  }

  function onMessage(msg: SseMessage): void {
    if (msg.id) lastEventId.value = msg.id;
    let data: unknown;
    try {
      data = msg.data ? JSON.parse(msg.data) : {};
    } catch {
      return;
    }
    const event = { type: msg.event, id: msg.id ?? undefined, data } as ServerEvent;
    if (event.type === 'hello') {
      status.value = 'live';
      attempt = 0;
      if (!event.data.resumed) void seedRunning(true);
    }
    emit(event);
  }

  /** Running tasks at (re)connect time, so the pill is right before the first change. */
  async function seedRunning(bump: boolean): Promise<void> {
    try {
      const page = await api.get<TaskPage>('/tasks', { state: 'running,queued', limit: 200 });
      for (const t of [...tasks.values()]) if (t.state === 'running' || t.state === 'queued') tasks.delete(t.id);
      for (const t of page.items) applyTask(t);
      if (bump && lastEventId.value !== null) resyncs.value++;
    } catch {
      /* the stream still works; the pill fills as events arrive */
    }
  }

  async function loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      status.value = attempt === 0 && status.value === 'idle' ? 'connecting' : 'reconnecting';
      let retryMs = 2000;
      try {
        const end = await readEventStream('/events', {
          signal,
          lastEventId: lastEventId.value,
          onMessage,
        });
        if (end.retryMs) retryMs = end.retryMs;
        lastError.value = null;
        attempt = 0; // a clean end (token expiry, server restart): reconnect soon
      } catch (err) {
        if (signal.aborted) return;
        lastError.value = err instanceof Error ? err.message : String(err);
        attempt++;
        if (err instanceof ApiError && err.status === 401) return; // the auth layer redirects to sign-in
      }
      if (signal.aborted) return;
      status.value = 'reconnecting';
      const backoff = Math.min(30_000, retryMs * 2 ** Math.min(attempt, 4)) * (0.75 + Math.random() * 0.5);
      await new Promise((r) => setTimeout(r, attempt === 0 ? 500 : backoff));
    }
  }

  function start(): void {
    if (controller) return;
    controller = new AbortController();
    status.value = 'connecting';
    void loop(controller.signal);
  }

  function stop(): void {
    controller?.abort();
    controller = null;
    status.value = 'idle';
  }

  /** The name of a task's target: the task's own `targetName`, else looked up once. */
  function targetName(task: Pick<Task, 'target' | 'targetName'>): string | null {
    if (task.targetName) return task.targetName;
    const t = task.target;
    if (!t) return null;
    const key = `${t.type}:${t.id}`;
    if (names.has(key)) return names.get(key) ?? null;
    const path = t.type === 'vm' ? `/virtual-machines/${t.id}` : t.type === 'pool' ? `/pools/${t.id}` : t.type === 'host' ? `/hosts/${t.id}` : t.type === 'storage' ? `/storages/${t.id}` : null;
    names.set(key, null);
    if (path) {
      api.get<{ name: string }>(path).then(
        (r) => names.set(key, r.name),
        () => undefined,
      );
    }
    return null;
  }

  function subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  return { status, lastEventId, lastError, resyncs, tasks, hosts, running, runningCount, start, stop, subscribe, applyTask, emit, targetName };
});

/** Listens to the app-wide stream while the calling component is mounted. */
export function useServerEvents(listener: Listener): void {
  const off = useEventsStore().subscribe(listener);
  onBeforeUnmount(off);
}
