import { ref, type Ref } from 'vue';
import { api, errorMessage } from '../../api/client';
import { toastError, toastSuccess } from '../feedback';
import { useCreateQuery } from './useCreateQuery';
import { useDialogFocus } from './useDialogFocus';

interface Named {
  name: string;
}
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The typed-confirmation delete of a list row: `deleting` is the row being confirmed
 * (null: no dialog), `doDelete` sends DELETE to `url(row)`, toasts, closes and reloads;
 * on failure it toasts the error and leaves the dialog open.
 */
export function useDeleteDialog<T extends Named>(opts: {
  /** Lower case, as in "Delete connector cs1?"; capitalised in the toast. */
  noun: string;
  url: (row: T) => string;
  reload: () => Promise<void>;
  /** The success toast; default "<Noun> <name> deleted". */
  deletedText?: (row: T) => string;
}): { deleting: Ref<T | null>; delBusy: Ref<boolean>; doDelete: () => Promise<void> } {
  const deleting = ref<T | null>(null) as Ref<T | null>;
  const delBusy = ref(false);
  async function doDelete() {
    const row = deleting.value;
    if (!row) return;
    delBusy.value = true;
    try {
      await api.del(opts.url(row));
      toastSuccess(opts.deletedText ? opts.deletedText(row) : `${capital(opts.noun)} ${row.name} deleted`);
      deleting.value = null;
      await opts.reload();
    } catch (err) {
      toastError(errorMessage(err));
    } finally {
      delBusy.value = false;
    }
  }
  return { deleting, delBusy, doDelete };
}

/**
 * The create/edit form dialog of a list page: `editing` is the row being edited
 * (null: creating); `?new=1` opens the create form; `onSaved` toasts, closes
 * (focus back to the opener) and reloads.
 */
export function useEditDialog<T extends Named>(opts: { noun: string; reload: () => Promise<void> }) {
  const formDialog = useDialogFocus();
  const editing = ref<T | null>(null) as Ref<T | null>;
  function openCreate() {
    editing.value = null;
    formDialog.open();
  }
  function openEdit(row: T) {
    editing.value = row;
    formDialog.open();
  }
  useCreateQuery(openCreate);
  async function onSaved(row: T) {
    toastSuccess(`${capital(opts.noun)} ${row.name} saved`);
    await formDialog.close();
    await opts.reload();
  }
  return { formDialog, editing, openCreate, openEdit, onSaved };
}

/** Both of the above for a collection whose rows are deleted at `<path>/<id>`. */
export function useCrudDialogs<T extends Named & { id: string }>(opts: {
  noun: string;
  path: string;
  reload: () => Promise<void>;
  deletedText?: (row: T) => string;
}) {
  return {
    ...useEditDialog<T>(opts),
    ...useDeleteDialog<T>({ ...opts, url: (row) => `${opts.path}/${row.id}` }),
  };
}
