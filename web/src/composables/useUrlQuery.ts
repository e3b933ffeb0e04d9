// Filters kept in the URL query: reading them typed, and replacing them (history.replace,
// so the back button leaves the page rather than stepping through filter changes).
import { computed } from 'vue';
import { useRoute, useRouter } from 'vue-router';

export function useUrlQuery() {
  const route = useRoute();
  const router = useRouter();
  const str = (key: string) => computed(() => (typeof route.query[key] === 'string' ? (route.query[key] as string) : ''));
  const list = (key: string) => computed(() => (typeof route.query[key] === 'string' && route.query[key] ? (route.query[key] as string).split(',') : []));
  function set(patch: Record<string, string | string[] | number | boolean | null | undefined>): void {
    const next: Record<string, string> = {};
    for (const [k, v] of Object.entries(route.query)) if (typeof v === 'string') next[k] = v;
    for (const [k, v] of Object.entries(patch)) {
      const s = Array.isArray(v) ? v.join(',') : v === null || v === undefined || v === false ? '' : String(v);
      if (s === '') delete next[k];
      else next[k] = s;
    }
    void router.replace({ query: next });
  }
  return { str, list, set, route };
}
