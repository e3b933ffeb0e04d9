import { afterEach, describe, expect, it, vi } from 'vitest';
import { defineComponent, h, reactive, ref } from 'vue';
import { NFormItem, NInput } from 'naive-ui';
import { ApiError } from '../../api/client';
import { setMeForTests } from '../../auth';
import FormModal from './FormModal.vue';
import { $, mountPage, signInAs, until } from './testing';
import { useFormModal } from './useFormModal';

/** A form with one field; `work` decides what saving does. */
let work: () => Promise<void> = async () => undefined;
const show = ref(false);
const closes = ref(0);
const Form = defineComponent({
  setup() {
    const form = reactive({ path: 'typed before' });
    const { errs, saving, nameInput, submit } = useFormModal({
      show: () => show.value,
      reset: () => Object.assign(form, { path: '/srv/initial' }),
      fieldFor: { 'THING.PATH_MISSING': 'path' },
    });
    return () =>
      h(
        FormModal,
        { show: show.value, title: 'Add a thing', width: '30rem', test: 'thing', errs, saving: saving.value, submitLabel: 'Add thing', onClose: () => closes.value++, onSubmit: () => submit(() => work()) },
        () =>
          h(NFormItem, { label: 'Path', validationStatus: errs.status('path'), feedback: errs.feedback('path') ?? 'an absolute path' }, () =>
            h(NInput, { ref: nameInput, value: form.path, inputProps: { 'data-test': 'thing-path' } as never }),
          ),
      );
  },
});

describe('useFormModal with FormModal', () => {
  afterEach(() => {
    setMeForTests(null);
    show.value = false;
    closes.value = 0;
    document.body.innerHTML = '';
  });

  it('on open: the form is reset, errors cleared, the focus on the first input; a mapped code goes to its field, another to the general error', async () => {
    signInAs('admin');
    await mountPage(Form, '/thing', '/thing');
    // (naive-ui's focus trap moves the focus again in jsdom: the focus call itself is checked)
    const focus = vi.spyOn(HTMLElement.prototype, 'focus');
    show.value = true;
    await until(() => expect($('input[data-test="thing-path"]')).not.toBeNull());
    expect(($('input[data-test="thing-path"]') as HTMLInputElement).value).toBe('/srv/initial');
    await until(() => expect(focus.mock.contexts).toContain($('input[data-test="thing-path"]')));
    focus.mockRestore();
    expect($('[data-test="thing-form"]')!.textContent).toContain('Add a thing');

    let release!: () => void;
    work = () =>
      new Promise<void>((_, reject) => {
        release = () => reject(new ApiError({ status: 400, code: 'THING.PATH_MISSING', detail: 'path /x does not exist' }));
      });
    $('[data-test="thing-save"]')!.click();
    await until(() => expect(($('[data-test="thing-cancel"]') as HTMLButtonElement).disabled).toBe(true));
    release();
    await until(() => expect($('[data-test="thing-form"]')!.textContent).toContain('path /x does not exist'));
    expect(($('[data-test="thing-cancel"]') as HTMLButtonElement).disabled).toBe(false);
    expect($('[data-test="form-error"]')).toBeNull();

    work = async () => {
      throw new Error('network down');
    };
    $('[data-test="thing-save"]')!.click();
    await until(() => expect($('[data-test="form-error"]')!.textContent).toContain('network down'));
    expect($('[data-test="thing-form"]')!.textContent).not.toContain('path /x does not exist');

    $('[data-test="thing-cancel"]')!.click();
    expect(closes.value).toBe(1);
    show.value = false;
    await new Promise((r) => setTimeout(r, 0));
    show.value = true;
    await until(() => expect($('[data-test="form-error"]')).toBeNull());
  });
});
