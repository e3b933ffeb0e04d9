import { describe, expect, it } from 'vitest';
import { mount } from '@vue/test-utils';
import UsageChart from './UsageChart.vue';
import UsageBar from './UsageBar.vue';

const GiB = 1024 ** 3;

describe('UsageChart', () => {
  it('draws used bytes rising over time under the capacity line, with a readable summary', () => {
    const samples = [
      { at: '2026-11-01T00:00:00Z', usedBytes: 100 * GiB, capacityBytes: 1000 * GiB },
      { at: '2026-11-15T00:00:00Z', usedBytes: 300 * GiB, capacityBytes: 1000 * GiB },
      { at: '2026-12-01T00:00:00Z', usedBytes: 500 * GiB, capacityBytes: 1000 * GiB },
    ];
    const w = mount(UsageChart, { props: { samples } });
    const used = w.find('path.used').attributes('d')!;
    const ys = [...used.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
    expect(ys).toHaveLength(3);
    expect(ys[0]).toBeGreaterThan(ys[1]!); // SVG y grows downwards: more used = higher up
    expect(ys[1]).toBeGreaterThan(ys[2]!);
    const cap = [...w.find('path.cap').attributes('d')!.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
    expect(cap.every((c) => c < ys[2]!)).toBe(true);
    expect(w.find('svg').attributes('aria-label')).toBe('Storage usage history: 100 GiB on Sun 1 Nov 2026, 00:00, 500 GiB on Tue 1 Dec 2026, 00:00 UTC');
    expect(w.findAll('tbody tr')).toHaveLength(3);
  });
  it('says when there are no samples', () => {
    const w = mount(UsageChart, { props: { samples: [] } });
    expect(w.find('svg').exists()).toBe(false);
    expect(w.text()).toContain('No usage samples yet');
  });
});

describe('UsageBar', () => {
  it('gives the figures in words and turns red above 90 %', () => {
    const w = mount(UsageBar, { props: { usedBytes: 950 * GiB, capacityBytes: 1000 * GiB, freeBytes: 50 * GiB } });
    expect(w.text()).toBe('950 GiB of 1000 GiB used (95%), 50 GiB free');
    expect(w.find('[role="meter"]').attributes('aria-valuenow')).toBe('95');
    expect(w.html()).toMatch(/error/);
  });
  it('says when the capacity is unknown', () => {
    const w = mount(UsageBar, { props: { usedBytes: null, capacityBytes: null } });
    expect(w.text()).toBe('capacity unknown');
    expect(w.find('[role="meter"]').exists()).toBe(false);
  });
});
