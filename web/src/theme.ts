// Light/dark: follows the system until the user picks one (remembered in localStorage).
import { computed, ref } from 'vue';

type Choice = 'light' | 'dark' | 'system';
const KEY = 'backroll.theme';
const choice = ref<Choice>((typeof localStorage !== 'undefined' && (localStorage.getItem(KEY) as Choice)) || 'system');
const media = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
const systemDark = ref(media?.matches ?? false);
media?.addEventListener?.('change', (e) => (systemDark.value = e.matches));

export const isDark = computed(() => (choice.value === 'system' ? systemDark.value : choice.value === 'dark'));

export function toggleTheme(): void {
  choice.value = isDark.value ? 'light' : 'dark';
  localStorage.setItem(KEY, choice.value);
}
