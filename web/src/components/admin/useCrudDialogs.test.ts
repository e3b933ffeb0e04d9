import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { defineComponent, h, ref } from 'vue';
import { setMeForTests } from '../../auth';
import { toastError, toastSuccess } from '../feedback';
import DeleteConfirm from './DeleteConfirm.vue';
import RowActions from './RowActions.vue';
import { $, mockApi, mountPage, signInAs, type, until } from './testing';
import { useCrudDialogs } from './useCrudDialogs';

vi.mock('../feedback', () => ({ toastSuccess: vi.fn(), toastError: vi.fn() }));

interface Thing {
  id: string;
  name: string;
}
const A: Thing = { id: 'id-a', name: 'a' };

/** A list page in miniature: one row with Edit/Delete, one without Edit, the delete confirmation. */
const reloads = ref(0);
const Things = defineComponent({
  setup() {
    const crud = useCrudDialogs<Thing>({ noun: 'thing', path: '/things', reload: async () => void reloads.value++ });
    return () =>
      h('div', [
        h(RowActions, { test: 'thing', name: A.name, onEdit: () => crud.openEdit(A), onDelete: () => (crud.deleting.value = A) }),
        h(RowActions, { test: 'plain', name: 'b', onDelete: () => undefined }),
        h('button', { 'data-test': 'saved', onClick: () => crud.onSaved(A) }),
        h('output', { 'data-test': 'form-state' }, `${crud.formDialog.show.value ? 'open' : 'closed'}:${crud.editing.value?.name ?? 'new'}`),
        // the confirmation's leave transition never ends in jsdom: its open state is shown here
        h('output', { 'data-test': 'deleting' }, crud.deleting.value?.name ?? 'none'),
        h(
          DeleteConfirm,
          { noun: 'thing', row: crud.deleting.value, busy: crud.delBusy.value, 'onUpdate:row': (v: null) => (crud.deleting.value = v), onConfirm: crud.doDelete },
          () => h('p', 'Gone for good.'),
        ),
      ]);
  },
});

async function confirmDelete() {
  $('[data-test="thing-delete-a"]')!.click();
  await until(() => expect($('[data-test="deleting"]')!.textContent).toBe('a'));
  await until(() => expect($('[data-test="confirm-typed"]')).not.toBeNull());
  expect($('[data-test="confirm-typed"]')!.textContent).toContain('Delete thing a?');
  expect($('[data-test="confirm-typed"]')!.textContent).toContain('Gone for good.');
  expect(($('[data-test="confirm-ok"]') as HTMLButtonElement).disabled).toBe(true);
  type($('input[data-test="confirm-input"]'), 'a');
  await until(() => expect(($('[data-test="confirm-ok"]') as HTMLButtonElement).disabled).toBe(false));
  $('[data-test="confirm-ok"]')!.click();
}

describe('useCrudDialogs with RowActions and DeleteConfirm', () => {
  beforeEach(() => {
    reloads.value = 0;
    vi.mocked(toastSuccess).mockClear();
    vi.mocked(toastError).mockClear();
  });
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('row actions: Edit only where the page listens to it; disabled for a viewer', async () => {
    signInAs('admin');
    mockApi({});
    await mountPage(Things, '/things', '/things');
    expect($('[data-test="thing-edit-a"]')).not.toBeNull();
    expect($('[data-test="thing-delete-a"]')).not.toBeNull();
    expect($('[data-test="plain-edit-b"]')).toBeNull();
    expect(($('[data-test="plain-delete-b"]') as HTMLButtonElement).disabled).toBe(false);
    document.body.innerHTML = '';

    signInAs('viewer');
    await mountPage(Things, '/things', '/things');
    expect(($('[data-test="thing-edit-a"]') as HTMLButtonElement).disabled).toBe(true);
    expect(($('[data-test="thing-delete-a"]') as HTMLButtonElement).disabled).toBe(true);
    expect($('[data-test="thing-delete-a"]')!.closest('[data-test="admin-only-disabled"]')).not.toBeNull();
  });

  it('deletes after the typed confirmation: DELETE <path>/<id>, a toast, the dialog closed, the list reloaded', async () => {
    signInAs('admin');
    const api = mockApi({ 'DELETE /things/:id': { status: 204 } });
    await mountPage(Things, '/things', '/things');
    await confirmDelete();
    await until(() => expect(reloads.value).toBe(1));
    expect(api.find('DELETE', '/things/id-a')).toHaveLength(1);
    expect(toastSuccess).toHaveBeenCalledWith('Thing a deleted');
    expect($('[data-test="deleting"]')!.textContent).toBe('none');
  });

  it('a refused delete toasts the server\'s reason and keeps the dialog open, without reloading', async () => {
    signInAs('admin');
    mockApi({ 'DELETE /things/:id': { status: 409, body: { status: 409, code: 'THING.IN_USE', detail: 'thing a is used by pool p1' } } });
    await mountPage(Things, '/things', '/things');
    await confirmDelete();
    await until(() => expect(toastError).toHaveBeenCalledWith('thing a is used by pool p1'));
    expect(toastSuccess).not.toHaveBeenCalled();
    expect(reloads.value).toBe(0);
    expect($('[data-test="deleting"]')!.textContent).toBe('a');
    expect(($('[data-test="confirm-ok"]') as HTMLButtonElement).disabled).toBe(false);
  });

  it('?new=1 opens the create form, Edit opens it on the row, saving toasts, closes and reloads', async () => {
    signInAs('admin');
    mockApi({});
    const { router } = await mountPage(Things, '/things?new=1', '/things');
    await until(() => expect($('[data-test="form-state"]')!.textContent).toBe('open:new'));
    await until(() => expect(router.currentRoute.value.query.new).toBeUndefined());
    $('[data-test="saved"]')!.click();
    await until(() => expect($('[data-test="form-state"]')!.textContent).toBe('closed:new'));
    expect(toastSuccess).toHaveBeenCalledWith('Thing a saved');
    expect(reloads.value).toBe(1);
    $('[data-test="thing-edit-a"]')!.click();
    await until(() => expect($('[data-test="form-state"]')!.textContent).toBe('open:a'));
  });
});
