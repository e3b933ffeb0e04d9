// v-can-write: on an element that performs a write, viewers get it disabled (native
// `disabled` + aria-disabled) with a title saying why; `v-can-write.hide` removes it from view.
import type { Directive } from 'vue';
import { useAuth } from '../auth';

const REASON = 'Needs the admin role: you are signed in as a viewer';

function apply(el: HTMLElement, hide: boolean): void {
  const { isAdmin } = useAuth();
  if (isAdmin.value) {
    if (el.dataset.canWrite === 'blocked') {
      el.style.display = '';
      el.removeAttribute('aria-disabled');
      el.removeAttribute('title');
      if ('disabled' in el) (el as HTMLButtonElement).disabled = false;
      delete el.dataset.canWrite;
    }
    return;
  }
  el.dataset.canWrite = 'blocked';
  if (hide) {
    el.style.display = 'none';
    return;
  }
  el.setAttribute('aria-disabled', 'true');
  el.setAttribute('title', REASON);
  if ('disabled' in el) (el as HTMLButtonElement).disabled = true;
  el.classList.add('can-write-blocked');
}

export const vCanWrite: Directive<HTMLElement> = {
  mounted(el, binding) {
    apply(el, binding.modifiers.hide === true);
  },
  updated(el, binding) {
    apply(el, binding.modifiers.hide === true);
  },
};
