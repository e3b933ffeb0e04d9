import { describe, expect, it } from 'vitest';
import { mount } from '@vue/test-utils';
import PrunePreview from './PrunePreview.vue';
import { bytes, fromServerPrune, reasonInWords, summarize, type PrunePoint } from './prune';

const GiB = 1024 ** 3;
/** Ten daily points (newest 2026-12-02) under "daily 3, weekly 2": the server's dry run. */
const points: PrunePoint[] = [
  { id: 'p1', createdAt: '2026-12-02T02:00:00Z', keep: true, reason: 'daily #1', uniqueBytes: 1 * GiB },
  { id: 'p2', createdAt: '2026-12-01T02:00:00Z', keep: true, reason: 'daily #2', uniqueBytes: 2 * GiB },
  { id: 'p3', createdAt: '2026-11-30T02:00:00Z', keep: true, reason: 'daily #3', uniqueBytes: 1 * GiB },
  { id: 'p4', createdAt: '2026-11-29T02:00:00Z', keep: true, reason: 'weekly #1', uniqueBytes: 1 * GiB },
  { id: 'p5', createdAt: '2026-11-28T02:00:00Z', keep: false, reason: null, uniqueBytes: 3 * GiB },
  { id: 'p6', createdAt: '2026-11-27T02:00:00Z', keep: false, reason: null, uniqueBytes: 512 * 1024 ** 2 },
  { id: 'p7', createdAt: '2026-11-22T02:00:00Z', keep: true, reason: 'weekly[oldest] #2', uniqueBytes: 1 * GiB },
];

describe('prune helpers', () => {
  it('puts borg rule names in words', () => {
    expect(reasonInWords('daily #3')).toBe('daily 3');
    expect(reasonInWords('weekly[oldest] #2')).toBe('weekly 2 (oldest)');
    expect(reasonInWords('weekly (oldest) 1')).toBe('weekly 1 (oldest)');
    expect(reasonInWords('yearly 1')).toBe('yearly 1');
    expect(reasonInWords('monthly #12')).toBe('monthly 12');
    expect(reasonInWords('last #1')).toBe('newest');
    expect(reasonInWords(null)).toBe('');
    expect(reasonInWords('something else')).toBe('something else');
  });
  it('sums the space freed from the pruned points unless the server gives it', () => {
    expect(summarize(points)).toEqual({ kept: 5, pruned: 2, freedBytes: 3.5 * GiB, freedPartial: false });
    expect(summarize(points, 1234)).toEqual({ kept: 5, pruned: 2, freedBytes: 1234, freedPartial: false });
    const unsized = points.map((p) => (p.id === 'p6' ? { ...p, uniqueBytes: null } : p));
    expect(summarize(unsized)).toEqual({ kept: 5, pruned: 2, freedBytes: 3 * GiB, freedPartial: true });
    expect(summarize(points.map((p) => ({ ...p, uniqueBytes: undefined })))).toMatchObject({ freedBytes: null });
    expect(summarize([])).toEqual({ kept: 0, pruned: 0, freedBytes: 0, freedPartial: false });
  });
  it('formats bytes in binary units', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(3.5 * GiB)).toBe('3.5 GiB');
    expect(bytes(250 * GiB)).toBe('250 GiB');
    expect(bytes(null)).toBe('—');
  });
});

describe('PrunePreview', () => {
  it('lists every point newest first with kept/pruned and the rule that keeps it', () => {
    const shuffled = [points[4]!, points[0]!, points[6]!, points[2]!, points[1]!, points[5]!, points[3]!];
    const w = mount(PrunePreview, { props: { points: shuffled } });
    const rows = w.findAll('tbody tr');
    expect(rows.map((r) => r.attributes('data-id'))).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7']);
    expect(rows.map((r) => r.attributes('data-test'))).toEqual([
      'prune-row-kept', 'prune-row-kept', 'prune-row-kept', 'prune-row-kept', 'prune-row-pruned', 'prune-row-pruned', 'prune-row-kept',
    ]);
    expect(rows.map((r) => r.find('[data-test="prune-reason"]').text())).toEqual([
      'daily 1', 'daily 2', 'daily 3', 'weekly 1', 'no rule keeps it', 'no rule keeps it', 'weekly 2 (oldest)',
    ]);
    expect(rows[4]!.text()).toContain('pruned');
    expect(rows[4]!.text()).toContain('3 GiB');
    expect(rows[0]!.find('time').attributes('datetime')).toBe('2026-12-02T02:00:00Z');
  });

  it('sums up kept, pruned and the space freed', () => {
    const w = mount(PrunePreview, { props: { points } });
    expect(w.find('[data-test="prune-kept-count"]').text()).toBe('5 kept');
    expect(w.find('[data-test="prune-pruned-count"]').text()).toBe('2 pruned');
    expect(w.find('[data-test="prune-freed"]').text()).toBe('frees 3.5 GiB');
  });

  it("prefers the server's freed figure and says when the sum is a lower bound", async () => {
    const w = mount(PrunePreview, { props: { points, freedBytes: 10 * GiB } });
    expect(w.find('[data-test="prune-freed"]').text()).toBe('frees 10 GiB');
    await w.setProps({ freedBytes: null, points: points.map((p) => (p.id === 'p6' ? { ...p, uniqueBytes: null } : p)) });
    expect(w.find('[data-test="prune-freed"]').text()).toBe('frees at least 3 GiB');
    await w.setProps({ points: points.filter((p) => p.keep) });
    expect(w.find('[data-test="prune-freed"]').text()).toBe('nothing freed');
  });

  it('can show only the pruned points', async () => {
    const w = mount(PrunePreview, { props: { points } });
    await w.find('[data-test="prune-only-pruned"]').trigger('click');
    expect(w.findAll('tbody tr').map((r) => r.attributes('data-id'))).toEqual(['p5', 'p6']);
  });

  it("takes the server's dry run as it comes (kept and pruned lists, estimated freed bytes)", () => {
    const prune = {
      vmId: 'vm1',
      kept: [{ restorePointId: 'a', createdAt: '2026-12-02T02:00:00Z', reason: 'daily 1', deduplicatedSize: 10, originalSize: 100 }],
      pruned: [{ restorePointId: 'b', createdAt: '2026-11-01T02:00:00Z', reason: 'not kept by any rule', deduplicatedSize: 2048, originalSize: 9000 }],
      freedBytes: 2048,
      freedBytesEstimated: true,
    };
    const pts = fromServerPrune(prune);
    expect(pts).toEqual([
      { id: 'a', createdAt: '2026-12-02T02:00:00Z', keep: true, reason: 'daily 1', uniqueBytes: 10, originalBytes: 100 },
      { id: 'b', createdAt: '2026-11-01T02:00:00Z', keep: false, reason: null, uniqueBytes: 2048, originalBytes: 9000 },
    ]);
    const w = mount(PrunePreview, { props: { points: pts, freedBytes: prune.freedBytes, freedEstimated: true } });
    expect(w.findAll('[data-test="prune-reason"]').map((r) => r.text())).toEqual(['daily 1', 'no rule keeps it']);
    expect(w.find('[data-test="prune-freed"]').text()).toBe('frees about 2 KiB');
  });

  it('shows dates in the policy time zone', () => {
    const w = mount(PrunePreview, { props: { points: [points[0]!], timezone: 'Asia/Tokyo' } });
    expect(w.find('tbody time').text()).toBe('Wed 2 Dec 2026, 11:00');
  });

  it('has a state for no VM, no points, loading and errors (with retry)', async () => {
    const w = mount(PrunePreview, { props: { points: null } });
    expect(w.find('[data-test="prune-none"]').exists()).toBe(true);
    await w.setProps({ loading: true });
    expect(w.find('[data-test="prune-loading"]').exists()).toBe(true);
    await w.setProps({ loading: false, points: [] });
    expect(w.find('[data-test="prune-empty"]').text()).toContain('no restore points');
    await w.setProps({ error: 'VM 42 was not found' });
    expect(w.find('[data-test="prune-error"]').text()).toContain('VM 42 was not found');
    await w.find('[data-test="prune-retry"]').trigger('click');
    expect(w.emitted('retry')).toHaveLength(1);
    expect(w.find('tbody').exists()).toBe(false);
  });
});
