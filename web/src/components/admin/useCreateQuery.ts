import { onMounted, watch } from 'vue';
import { useRoute, useRouter } from 'vue-router';

/**
 * `?new=1` in the URL opens the page's create form (the getting-started checklist
 * and the empty states link there); the parameter is removed once opened.
 */
export function useCreateQuery(open: () => void): void {
  const route = useRoute();
  const router = useRouter();
  const check = () => {
    if (route.query.new === undefined) return;
    open();
    const { new: _gone, ...rest } = route.query;
    void router.replace({ query: rest });
  };
  onMounted(check);
  watch(() => route.query.new, check);
}
