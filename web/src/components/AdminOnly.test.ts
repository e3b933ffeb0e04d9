import { mount } from '@vue/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { defineComponent, h } from 'vue';
import { setMeForTests } from '../auth';
import AdminOnly from './AdminOnly.vue';

const Host = defineComponent({
  props: { hide: Boolean },
  setup(props) {
    return () =>
      h(AdminOnly, { hide: props.hide }, { default: ({ disabled }: { disabled: boolean }) => h('button', { disabled, 'data-test': 'write' }, 'Delete') });
  },
});

describe('AdminOnly', () => {
  afterEach(() => setMeForTests(null));

  it('admins get the action enabled', () => {
    setMeForTests({ subject: 'a', name: 'admin', roles: ['admin', 'viewer'], isAdmin: true, kind: 'user' });
    const w = mount(Host);
    expect(w.get('[data-test="write"]').attributes('disabled')).toBeUndefined();
    expect(w.find('[data-test="admin-only-disabled"]').exists()).toBe(false);
  });

  it('viewers get it disabled with the reason, or not at all with `hide`', () => {
    setMeForTests({ subject: 'v', name: 'viewer', roles: ['viewer'], isAdmin: false, kind: 'user' });
    const w = mount(Host);
    expect(w.get('[data-test="write"]').attributes('disabled')).toBeDefined();
    expect(w.get('[data-test="admin-only-disabled"]').attributes('aria-label')).toMatch(/admin role/);
    const hidden = mount(Host, { props: { hide: true } });
    expect(hidden.find('[data-test="write"]').exists()).toBe(false);
  });
});
