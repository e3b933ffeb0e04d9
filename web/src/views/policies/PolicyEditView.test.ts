import { afterEach, describe, expect, it, vi } from 'vitest';
import { flushPromises } from '@vue/test-utils';
import { NSelect } from 'naive-ui';
import PolicyEditView from './PolicyEditView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, type, until } from '../../components/admin/testing';

const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });
const STORAGE = { id: '33333333-3333-4333-8333-333333333333', name: 'nfs1', path: '/srv/backroll', capacityBytes: null, usedBytes: null, freeBytes: null, createdAt: '', updatedAt: '' };
const VM = { id: '44444444-4444-4444-8444-444444444444', name: 'web-1', restorePoints: { count: 3, originalBytes: 0, deduplicatedBytes: 0 }, host: { id: 'h', name: 'kvm1', connectionState: 'connected', tags: [] } };

describe('PolicyEditView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('creates a policy: schedule preview from the server, prune preview on a chosen VM, a taken name on the name field', async () => {
    signInAs('admin');
    const api = mockApi({
      'GET /storages': { body: page([STORAGE]) },
      'GET /hooks': { body: page([]) },
      'GET /virtual-machines/rows': { body: page([VM]) },
      'GET /policies/schedule-preview': (call) => ({
        body: { nextRuns: call.query.get('schedule') === '0 2 * * *' ? ['2026-12-03T02:00:00.000Z', '2026-12-04T02:00:00.000Z', '2026-12-05T02:00:00.000Z'] : ['2026-12-07T03:30:00.000Z'] },
      }),
      'POST /policies/preview': (call) => {
        const r = (call.body as { retention: { daily: number } }).retention;
        const pts = [
          { restorePointId: 'rp3', createdAt: '2026-12-02T02:00:00.000Z', deduplicatedSize: 100, originalSize: 1000 },
          { restorePointId: 'rp2', createdAt: '2026-12-01T02:00:00.000Z', deduplicatedSize: 200, originalSize: 1000 },
          { restorePointId: 'rp1', createdAt: '2026-11-30T02:00:00.000Z', deduplicatedSize: 300, originalSize: 1000 },
        ];
        const kept = pts.slice(0, r.daily).map((p, i) => ({ ...p, reason: `daily ${i + 1}` }));
        const pruned = pts.slice(r.daily).map((p) => ({ ...p, reason: 'not kept by any rule' }));
        return {
          body: {
            nextRuns: [],
            prune: { vmId: VM.id, total: 3, keptCount: kept.length, prunedCount: pruned.length, kept, pruned, freedBytes: pruned.reduce((s, p) => s + p.deduplicatedSize, 0), freedBytesEstimated: true },
          },
        };
      },
      'POST /policies': (call) => {
        const b = call.body as { retention: { weekly: number } };
        if (b.retention.weekly > 10000) {
          return { status: 400, body: { status: 400, code: 'REQUEST.INVALID', detail: 'invalid', errors: [{ path: 'body/retention/weekly', message: 'must be <= 10000' }] } };
        }
        return { status: 409, body: { status: 409, code: 'POLICY.NAME_TAKEN', detail: 'a policy named "nightly" already exists; choose another name' } };
      },
    });
    const { wrapper } = await mountPage(PolicyEditView, '/policies/new', '/policies/new');

    // the only storage is chosen; the default schedule is previewed by the server in words and runs
    await until(() => expect($$('[data-test="cron-next-run"]')).toHaveLength(3));
    expect($('[data-test="cron-words"]')!.textContent).toMatch(/^Every day at 02:00 \(/);
    const previewCall = api.find('GET', '/policies/schedule-preview')[0]!;
    expect(previewCall.query.get('schedule')).toBe('0 2 * * *');

    type($('input[data-test="cron-raw"]'), '30 3 * * 1');
    await until(() => expect($$('[data-test="cron-next-run"]')).toHaveLength(1));
    expect($('[data-test="cron-words"]')!.textContent).toMatch(/^Every Monday at 03:30/);

    // prune preview: choose the VM, the server's dry run is shown
    // (the option list of a naive-ui select does not render in happy-dom: pick the option as the select would)
    const select = wrapper.findAllComponents(NSelect).find((c) => c.attributes('data-test') === 'policy-prune-vm')!;
    await until(() => expect((select.props('options') as Array<{ label: string }>).map((o) => o.label)).toEqual(['web-1 — 3 restore points (kvm1)']));
    select.vm.$emit('update:value', VM.id);
    await until(() => expect($$('[data-test="prune-row-pruned"]')).toHaveLength(0));
    await until(() => expect($$('[data-test="prune-row-kept"]')).toHaveLength(3));
    const daily = $('input[data-test="policy-keep-daily"]')!;
    type(daily, '1');
    daily.dispatchEvent(new Event('blur'));
    await until(() => expect($$('[data-test="prune-row-pruned"]')).toHaveLength(2));
    expect($$('[data-test="prune-reason"]').map((r) => r.textContent)).toEqual(['daily 1', 'no rule keeps it', 'no rule keeps it']);
    expect($('[data-test="prune-freed"]')!.textContent).toBe('frees about 500 B');
    const last = api.find('POST', '/policies/preview').at(-1)!;
    expect(last.body).toMatchObject({ schedule: '30 3 * * 1', vmId: VM.id, retention: { daily: 1, weekly: 4, monthly: 6, yearly: 0 } });

    // save: a taken name lands on the name field, not above the form
    type($('input[data-test="policy-name"]'), 'nightly');
    const weekly = $('input[data-test="policy-keep-weekly"]')!;
    type(weekly, '20000');
    weekly.dispatchEvent(new Event('blur'));
    await flushPromises();
    // the input clamps to its max (10000): what is sent stays valid, so the server answers about the name
    $('[data-test="policy-save"]')!.click();
    await until(() => expect($('[data-test="policy-edit-page"]')!.textContent).toContain('already exists; choose another name'));
    const sent = api.find('POST', '/policies')[0]!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ name: 'nightly', storageId: STORAGE.id, schedule: '30 3 * * 1', retention: { daily: 1, weekly: 10000, monthly: 6, yearly: 0 }, hookId: null });
    expect($('[data-test="form-error"]')).toBeNull();
  });

  it('keeping nothing is refused before sending', async () => {
    signInAs('admin');
    const api = mockApi({
      'GET /storages': { body: page([STORAGE]) },
      'GET /hooks': { body: page([]) },
      'GET /virtual-machines/rows': { body: page([]) },
      'GET /policies/schedule-preview': { body: { nextRuns: [] } },
    });
    await mountPage(PolicyEditView, '/policies/new', '/policies/new');
    await until(() => expect($('input[data-test="policy-keep-daily"]')).not.toBeNull());
    for (const k of ['daily', 'weekly', 'monthly', 'yearly']) {
      const el = $(`input[data-test="policy-keep-${k}"]`)!;
      type(el, '0');
      el.dispatchEvent(new Event('blur'));
    }
    await until(() => expect($('[data-test="policy-edit-page"]')!.textContent).toContain('Keep at least one restore point'));
    expect(($('[data-test="policy-save"]') as HTMLButtonElement).disabled).toBe(true);
    expect(api.find('POST', '/policies')).toHaveLength(0);
  });
});
