import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushPromises, mount } from '@vue/test-utils';
import CronBuilder from './CronBuilder.vue';

/** A parent holding the v-model like a form does. */
function mountBuilder(props: Record<string, unknown> = {}) {
  const state = { schedule: (props.schedule as string) ?? '0 2 * * *', timezone: (props.timezone as string) ?? 'UTC' };
  const wrapper = mount(CronBuilder, {
    props: {
      ...props,
      schedule: state.schedule,
      timezone: state.timezone,
      debounceMs: 0,
      'onUpdate:schedule': (v: string) => {
        state.schedule = v;
        void wrapper.setProps({ schedule: v });
      },
      'onUpdate:timezone': (v: string) => {
        state.timezone = v;
        void wrapper.setProps({ timezone: v });
      },
    },
    attachTo: document.body,
  });
  return { wrapper, state };
}

const raw = (w: ReturnType<typeof mount>) => w.find('input[data-test="cron-raw"]');

describe('CronBuilder', () => {
  beforeEach(() => {
    vi.useRealTimers();
  });
  afterEach(() => {
    document.body.innerHTML = '';
  });

  it('shows a daily schedule in the builder, in words, and its raw expression', async () => {
    const { wrapper } = mountBuilder({ schedule: '30 2 * * *', timezone: 'Europe/Paris' });
    expect((raw(wrapper).element as HTMLInputElement).value).toBe('30 2 * * *');
    expect(wrapper.find('[data-test="cron-words"]').text()).toBe('Every day at 02:30 (Europe/Paris)');
    expect((wrapper.find('input[data-test="cron-hour"]').element as HTMLInputElement).value).toBe('2');
    expect((wrapper.find('input[data-test="cron-minute"]').element as HTMLInputElement).value).toBe('30');
    // the daily radio is the checked one
    expect(wrapper.find('[data-test="cron-frequency-daily"] input').element).toHaveProperty('checked', true);
  });

  it('typing a raw expression updates the builder and the words', async () => {
    const { wrapper, state } = mountBuilder();
    await raw(wrapper).setValue('15 23 * * 1-5');
    expect(state.schedule).toBe('15 23 * * 1-5');
    expect(wrapper.find('[data-test="cron-frequency-weekly"] input').element).toHaveProperty('checked', true);
    const checked = wrapper.findAll('[data-test^="cron-weekday-"]').filter((c) => c.classes().includes('n-checkbox--checked'));
    expect(checked.map((c) => c.attributes('data-test'))).toEqual(['cron-weekday-1', 'cron-weekday-2', 'cron-weekday-3', 'cron-weekday-4', 'cron-weekday-5']);
    expect(wrapper.find('[data-test="cron-words"]').text()).toBe('Every weekday (Monday to Friday) at 23:15 (UTC)');
  });

  it('editing the builder rewrites the raw expression', async () => {
    const { wrapper, state } = mountBuilder();
    await wrapper.find('[data-test="cron-frequency-weekly"] input').setValue(true);
    expect(state.schedule).toBe('0 2 * * 1');
    // add Friday
    await wrapper.find('[data-test="cron-weekday-5"]').trigger('click');
    expect(state.schedule).toBe('0 2 * * 1,5');
    expect((raw(wrapper).element as HTMLInputElement).value).toBe('0 2 * * 1,5');
    expect(wrapper.find('[data-test="cron-words"]').text()).toBe('Every Monday and Friday at 02:00 (UTC)');
    // the last day cannot be unticked: a weekly schedule keeps at least one day
    await wrapper.find('[data-test="cron-weekday-1"]').trigger('click');
    await wrapper.find('[data-test="cron-weekday-5"]').trigger('click');
    expect(state.schedule).toBe('0 2 * * 5');

    await wrapper.find('[data-test="cron-frequency-monthly"] input').setValue(true);
    expect(state.schedule).toBe('0 2 1 * *');
    const dom = wrapper.find('input[data-test="cron-dom"]');
    await dom.setValue('15');
    await dom.trigger('blur');
    expect(state.schedule).toBe('0 2 15 * *');

    await wrapper.find('[data-test="cron-frequency-hours"] input').setValue(true);
    expect(state.schedule).toBe('0 */6 * * *');
    expect(wrapper.find('[data-test="cron-words"]').text()).toBe('Every 6 hours at minute 0 (00:00, 06:00, 12:00 and 18:00) (UTC)');
  });

  it('an expression the builder cannot express switches to custom and is kept as typed', async () => {
    const { wrapper, state } = mountBuilder();
    await raw(wrapper).setValue('0 2,14 1-7 * *');
    expect(state.schedule).toBe('0 2,14 1-7 * *');
    expect(wrapper.find('[data-test="cron-frequency-custom"] input').element).toHaveProperty('checked', true);
    expect(wrapper.find('input[data-test="cron-hour"]').exists()).toBe(false);
    expect(wrapper.find('[data-test="cron-words"]').text()).toBe('At 02:00 and 14:00, on the 1st to 7th of the month (UTC)');
  });

  it('an invalid expression is flagged on the field, with no words and no server call', async () => {
    const preview = vi.fn(async () => ['2026-12-03T02:00:00.000Z']);
    const { wrapper } = mountBuilder({ preview });
    await flushPromises();
    await new Promise((r) => setTimeout(r, 5));
    preview.mockClear();
    await raw(wrapper).setValue('61 2 * * *');
    await new Promise((r) => setTimeout(r, 5));
    expect(preview).not.toHaveBeenCalled();
    expect(wrapper.text()).toContain('"61" is out of range for the minute field (0–59)');
    expect(raw(wrapper).attributes('aria-invalid')).toBe('true');
    expect(wrapper.find('[data-test="cron-words"]').exists()).toBe(false);
    expect(wrapper.find('[data-test="cron-next-run"]').exists()).toBe(false);
  });

  it("shows the server's next runs in the schedule's time zone and re-asks on every change", async () => {
    const preview = vi.fn(async (schedule: string, tz: string) =>
      schedule === '0 2 * * *' && tz === 'America/New_York'
        ? ['2026-12-03T07:00:00.000Z', '2026-12-04T07:00:00.000Z', '2026-12-05T07:00:00.000Z']
        : ['2026-12-07T02:00:00.000Z'],
    );
    const { wrapper } = mountBuilder({ preview, timezone: 'America/New_York', runs: 3 });
    await new Promise((r) => setTimeout(r, 5));
    await flushPromises();
    expect(preview).toHaveBeenLastCalledWith('0 2 * * *', 'America/New_York');
    const runs = wrapper.findAll('[data-test="cron-next-run"]');
    expect(runs).toHaveLength(3);
    expect(runs[0]!.find('time').attributes('datetime')).toBe('2026-12-03T07:00:00.000Z');
    expect(runs[0]!.find('time').text()).toBe('Thu 3 Dec 2026, 02:00');

    await raw(wrapper).setValue('0 2 * * 1');
    await new Promise((r) => setTimeout(r, 5));
    await flushPromises();
    expect(preview).toHaveBeenLastCalledWith('0 2 * * 1', 'America/New_York');
    expect(wrapper.findAll('[data-test="cron-next-run"]')).toHaveLength(1);
  });

  it("shows the server's refusal (e.g. a schedule that never fires)", async () => {
    const preview = vi.fn(async () => {
      throw new Error('schedule "0 0 31 2 *" never fires (e.g. 31 February); fix the day or month');
    });
    const { wrapper } = mountBuilder({ preview, schedule: '0 0 31 2 *' });
    await new Promise((r) => setTimeout(r, 5));
    await flushPromises();
    expect(wrapper.find('[data-test="cron-preview-error"]').text()).toContain('never fires');
  });

  it('drops a slow answer that arrives after a newer one', async () => {
    const resolvers: Array<(v: string[]) => void> = [];
    const preview = vi.fn(() => new Promise<string[]>((r) => resolvers.push(r)));
    const { wrapper } = mountBuilder({ preview });
    await new Promise((r) => setTimeout(r, 5));
    await raw(wrapper).setValue('0 3 * * *');
    await new Promise((r) => setTimeout(r, 5));
    expect(resolvers).toHaveLength(2);
    resolvers[1]!(['2026-12-03T03:00:00.000Z']);
    await flushPromises();
    resolvers[0]!(['2026-12-03T02:00:00.000Z']);
    await flushPromises();
    const times = wrapper.findAll('[data-test="cron-next-run"] time').map((t) => t.attributes('datetime'));
    expect(times).toEqual(['2026-12-03T03:00:00.000Z']);
  });

  it('shows a server validation error on the schedule field', () => {
    const { wrapper } = mountBuilder({ scheduleError: 'schedule "0 2 * * *" is taken' });
    expect(wrapper.text()).toContain('is taken');
    expect(raw(wrapper).attributes('aria-invalid')).toBe('true');
  });

  it('labels every input', () => {
    const { wrapper } = mountBuilder();
    for (const input of wrapper.findAll('input[id]')) {
      const id = input.attributes('id')!;
      expect(wrapper.find(`label[for="${id}"]`).exists(), `label for ${id}`).toBe(true);
    }
    expect(wrapper.find('label[for="cron-raw"]').text()).toContain('Cron expression');
    expect(wrapper.find('label[for="cron-timezone"]').text()).toContain('Time zone');
  });
});
