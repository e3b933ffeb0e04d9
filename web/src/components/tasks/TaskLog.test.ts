import { mount } from '@vue/test-utils';
import { describe, expect, it } from 'vitest';
import { nextTick } from 'vue';
import type { TaskLogLine } from '../../api/types';
import TaskLog from './TaskLog.vue';

function line(seq: number, message: string, level = 'info'): TaskLogLine {
  return { seq, at: new Date(Date.UTC(2026, 11, 2, 14, 0, seq)).toISOString(), level, message };
}

/** happy-dom lays nothing out: give the log box a fixed geometry whose scrollHeight grows with the lines. */
function geometry(el: HTMLElement, lineHeight = 20, clientHeight = 200): void {
  let top = 0;
  Object.defineProperty(el, 'clientHeight', { configurable: true, get: () => clientHeight });
  Object.defineProperty(el, 'scrollHeight', { configurable: true, get: () => el.querySelectorAll('.line').length * lineHeight });
  Object.defineProperty(el, 'scrollTop', {
    configurable: true,
    get: () => top,
    set: (v: number) => {
      top = Math.max(0, Math.min(v, Math.max(0, el.scrollHeight - clientHeight)));
    },
  });
}

async function settle(): Promise<void> {
  await nextTick();
  await nextTick();
}

describe('TaskLog', () => {
  it('follows new lines while at the bottom, pauses when the user scrolls up, and resumes on demand', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => line(i + 1, `copying block ${i + 1}`));
    const w = mount(TaskLog, { props: { lines, live: true } });
    const box = w.get('[data-test="log-lines"]').element as HTMLElement;
    geometry(box);
    await w.setProps({ lines: [...lines, line(31, 'disk vda done')] });
    await settle();
    expect(box.scrollTop).toBe(31 * 20 - 200); // followed to the end
    expect(w.get('[data-test="log-follow-state"]').text()).toBe('Following');
    expect(w.find('[data-test="log-resume"]').exists()).toBe(false);

    // The user scrolls up to read: new lines no longer move the view.
    box.scrollTop = 100;
    await w.get('[data-test="log-lines"]').trigger('scroll');
    const more = [...lines, line(31, 'disk vda done'), line(32, 'disk vdb started'), line(33, 'disk vdb 10 %')];
    await w.setProps({ lines: more });
    await settle();
    expect(box.scrollTop).toBe(100);
    expect(w.get('[data-test="log-follow-state"]').text()).toBe('Paused');
    const resume = w.get('[data-test="log-resume"]');
    expect(resume.text()).toContain('2 new');

    // Resume: back to the bottom, following again.
    await resume.trigger('click');
    await settle();
    expect(box.scrollTop).toBe(33 * 20 - 200);
    expect(w.find('[data-test="log-resume"]').exists()).toBe(false);
    await w.setProps({ lines: [...more, line(34, 'merge')] });
    await settle();
    expect(box.scrollTop).toBe(34 * 20 - 200);

    // Scrolling back down to the bottom by hand also resumes following.
    box.scrollTop = 0;
    await w.get('[data-test="log-lines"]').trigger('scroll');
    expect(w.get('[data-test="log-follow-state"]').text()).toBe('Paused');
    box.scrollTop = box.scrollHeight;
    await w.get('[data-test="log-lines"]').trigger('scroll');
    expect(w.get('[data-test="log-follow-state"]').text()).toBe('Following');
  });

  it('colours lines by level', async () => {
    const w = mount(TaskLog, {
      props: { lines: [line(1, 'starting', 'info'), line(2, 'slow disk', 'warn'), line(3, 'borg failed', 'error'), line(4, 'argv', 'debug')] },
    });
    const rows = w.findAll('[data-test="log-line"]');
    expect(rows.map((r) => r.classes().find((c) => c.startsWith('level-')))).toEqual(['level-info', 'level-warn', 'level-error', 'level-debug']);
    const colours = rows.map((r) => (r.element as HTMLElement).style.color);
    expect(colours[0]).toBe(''); // info keeps the theme's text colour
    expect(colours[1]).not.toBe('');
    expect(colours[2]).not.toBe('');
    expect(colours[3]).not.toBe('');
    expect(new Set(colours.slice(1)).size).toBe(3);
    expect(rows[2].text()).toContain('ERROR');
    expect(rows[1].text()).toContain('WARN');

    // The level filter keeps warnings and errors, then errors only.
    await w.get('[data-test="log-level-filter"]').setValue('warn');
    expect(w.findAll('[data-test="log-line"]').map((r) => r.attributes('data-seq'))).toEqual(['2', '3']);
    await w.get('[data-test="log-level-filter"]').setValue('error');
    expect(w.findAll('[data-test="log-line"]').map((r) => r.attributes('data-seq'))).toEqual(['3']);
  });

  it('searches: highlights matches case-insensitively, counts them, and can show only matching lines', async () => {
    const w = mount(TaskLog, {
      props: { lines: [line(1, 'snapshot created'), line(2, 'Disk vda: 4 GiB'), line(3, 'disk vdb: 2 GiB'), line(4, 'merge done')] },
    });
    await w.get('[data-test="log-search"]').setValue('disk');
    await settle();
    expect(w.get('[data-test="log-match-count"]').text()).toBe('2 matches');
    const marks = w.findAll('mark');
    expect(marks.map((m) => m.text())).toEqual(['Disk', 'disk']);
    expect(w.findAll('[data-test="log-line"]')).toHaveLength(4); // highlighted, not filtered

    await w.get('[data-test="log-only-matches"]').setValue(true);
    await settle();
    expect(w.findAll('[data-test="log-line"]').map((r) => r.attributes('data-seq'))).toEqual(['2', '3']);

    await w.get('[data-test="log-search"]').setValue('nothing like this');
    await settle();
    expect(w.get('[data-test="log-match-count"]').text()).toBe('0 matches');
    expect(w.findAll('[data-test="log-line"]')).toHaveLength(0);
    expect(w.findAll('mark')).toHaveLength(0);
  });
});
