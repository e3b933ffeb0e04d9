import { nextTick, ref, watch } from 'vue';
import { useFormErrors } from '../formErrors';
import { withField } from './withField';

/**
 * The state of an admin create/edit form: each time it opens (`show` turns true) the
 * form is `reset`, its errors cleared and the focus put on `nameInput` (bind it with
 * `ref="nameInput"` on the first input). `submit(work)` runs `work` with `saving` set
 * and puts a failure onto the fields (`fieldFor`: error code → field, see withField).
 */
export function useFormModal(opts: { show: () => boolean; reset: () => void; fieldFor?: Record<string, string> }) {
  const errs = useFormErrors();
  const saving = ref(false);
  const nameInput = ref<{ focus: () => void } | null>(null);
  watch(
    opts.show,
    async (v) => {
      if (!v) return;
      opts.reset();
      errs.clear();
      await nextTick();
      nameInput.value?.focus();
    },
    { immediate: true },
  );
  async function submit(work: () => Promise<void>): Promise<void> {
    saving.value = true;
    errs.clear();
    try {
      await work();
    } catch (err) {
      errs.set(err, withField(err, opts.fieldFor));
    } finally {
      saving.value = false;
    }
  }
  return { errs, saving, nameInput, submit };
}
