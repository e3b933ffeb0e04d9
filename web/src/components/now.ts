// One shared clock for relative times (a local timer; it never calls the server).
import { ref, type Ref } from 'vue';

const now = ref(Date.now());
let timer: ReturnType<typeof setInterval> | undefined;

export function useNow(): Ref<number> {
  if (!timer && typeof window !== 'undefined') timer = setInterval(() => (now.value = Date.now()), 30_000);
  return now;
}
