import { mount } from '@vue/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { nextTick } from 'vue';
import type { RestorePointRead } from '../../api/types';
import ProgressBar from '../ProgressBar.vue';
import ReadMode from './ReadMode.vue';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('ReadMode (how a restore point was read)', () => {
  afterEach(() => {
    document.body.innerHTML = '';
  });

  it('incremental: a success badge and "12.0 MiB of 1.0 GiB read", no reason', () => {
    const read: RestorePointRead = { mode: 'incremental', bytesToRead: 12 * MiB, bytesRead: 12 * MiB, fullReason: null, diskSize: GiB };
    const w = mount(ReadMode, { props: { read } });
    const el = w.get('[data-test="rp-read"]');
    expect(el.attributes('data-mode')).toBe('incremental');
    const tag = w.get('.n-tag');
    expect(tag.text()).toBe('incremental');
    expect(tag.attributes('style')).toContain('--n-text-color: #18a058'); // naive-ui's success (green)
    expect(w.get('[data-test="rp-read-amount"]').text()).toBe('12.0 MiB of 1.0 GiB read');
    expect(w.find('[data-test="rp-read-reason"]').exists()).toBe(false);
    expect(el.attributes('tabindex')).toBeUndefined();
  });

  it('full: a neutral badge, the amount, and the reason in a tooltip (and for screen readers)', async () => {
    const read: RestorePointRead = { mode: 'full', bytesToRead: GiB, bytesRead: 700 * MiB, fullReason: 'no earlier restore point with a checkpoint', diskSize: GiB };
    const w = mount(ReadMode, { props: { read }, attachTo: document.body });
    const el = w.get('[data-test="rp-read"]');
    expect(el.attributes('data-mode')).toBe('full');
    expect(w.get('[data-test="rp-read-amount"]').text()).toBe('700 MiB of 1.0 GiB read');
    expect(w.get('.n-tag').text()).toBe('full');
    expect(w.get('.n-tag').attributes('style')).not.toContain('--n-text-color: #18a058');
    expect(w.get('[data-test="rp-read-reason"]').text()).toBe('(full read: no earlier restore point with a checkpoint)');
    expect(el.attributes('tabindex')).toBe('0');
    // The tooltip opens on hover, with the reason.
    await el.trigger('mouseenter');
    await new Promise((r) => setTimeout(r, 250));
    await nextTick();
    expect(document.body.querySelector('.n-tooltip')?.textContent).toContain('Full read: no earlier restore point with a checkpoint');
    w.unmount();
  });

  it('old or imported restore points (or an older server): a dash', () => {
    for (const read of [undefined, null, { mode: null, bytesToRead: null, bytesRead: null, fullReason: null, diskSize: GiB }]) {
      const w = mount(ReadMode, { props: { read } });
      expect(w.get('[data-test="rp-read"]').text()).toBe('—');
      expect(w.get('[data-test="rp-read"]').attributes('data-mode')).toBe('none');
    }
  });
});

describe('ProgressBar of a backup reading disks', () => {
  it('shows bytes read of bytes to read and the rate', () => {
    const w = mount(ProgressBar, {
      props: { details: true, state: 'running', progress: { percent: 40, bytesDone: 6 * MiB, bytesTotal: 8 * MiB, rateBytesPerSecond: 3 * MiB, step: 'vda: incremental: 6.0 MiB of 1.0 GiB read (8.0 MiB to read)' } },
    });
    expect(w.get('[data-test="progress-bytes"]').text()).toBe('6.0 MiB / 8.0 MiB to read');
    expect(w.get('[data-test="progress-rate"]').text()).toBe('3.0 MiB/s');
    const other = mount(ProgressBar, { props: { details: true, state: 'running', progress: { percent: 40, bytesDone: 6 * MiB, bytesTotal: 8 * MiB, rateBytesPerSecond: null, step: 'vda: borg create' } } });
    expect(other.get('[data-test="progress-bytes"]').text()).toBe('6.0 MiB / 8.0 MiB');
    expect(other.find('[data-test="progress-rate"]').exists()).toBe(false);
  });
});
