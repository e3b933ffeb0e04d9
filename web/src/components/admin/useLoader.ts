import { ref, shallowRef, type Ref, type ShallowRef } from 'vue';

/**
 * A fetch with loading / error / data, and a reload that drops answers older than
 * the latest request. `error` is the caught error itself (ListState shows its code).
 */
export interface Loader<T> {
  data: ShallowRef<T | null>;
  loading: Ref<boolean>;
  error: ShallowRef<unknown>;
  reload: () => Promise<void>;
}

export function useLoader<T>(fetcher: () => Promise<T>): Loader<T> {
  const data = shallowRef<T | null>(null);
  const loading = ref(false);
  const error = shallowRef<unknown>(null);
  let seq = 0;
  async function reload() {
    const mine = ++seq;
    loading.value = true;
    try {
      const value = await fetcher();
      if (mine !== seq) return;
      data.value = value;
      error.value = null;
    } catch (err) {
      if (mine !== seq) return;
      error.value = err;
    } finally {
      if (mine === seq) loading.value = false;
    }
  }
  return { data, loading, error, reload };
}
