import { nextTick, ref } from 'vue';

/**
 * Open/close state of a dialog that gives the focus back to what opened it
 * (a button of the page) when it closes.
 */
export function useDialogFocus() {
  const show = ref(false);
  let opener: HTMLElement | null = null;
  function open() {
    opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    show.value = true;
  }
  async function close() {
    show.value = false;
    await nextTick();
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  }
  return { show, open, close };
}
