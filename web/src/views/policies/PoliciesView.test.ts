import { afterEach, describe, expect, it, vi } from 'vitest';
import PoliciesView from './PoliciesView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, until } from '../../components/admin/testing';

vi.mock('../../components/feedback', () => ({ toastTask: vi.fn(), toastError: vi.fn(), toastSuccess: vi.fn() }));

const page = <T>(items: T[], total = items.length) => ({ items, total, limit: 500, offset: 0 });
const STORAGE = { id: 's1', name: 'nfs1', path: '/srv/backroll' };
const POLICY = {
  id: '88888888-8888-4888-8888-888888888888',
  name: 'nightly',
  description: '',
  schedule: '30 1 * * 1-5',
  timezone: 'Europe/Paris',
  retention: { daily: 7, weekly: 4, monthly: 0, yearly: 0 },
  storageId: 's1',
  hookId: null,
  enabled: true,
  quiesce: 'preferred',
  compression: 'lz4',
  encryption: 'none',
  nextRuns: ['2026-12-03T00:30:00.000Z', '2026-12-04T00:30:00.000Z', '2026-12-07T00:30:00.000Z', '2026-12-08T00:30:00.000Z', '2026-12-09T00:30:00.000Z'],
  lastRun: { id: 'r1', scheduledFor: '2026-12-02T00:30:00.000Z', recordedAt: '2026-12-02T00:30:00.000Z', trigger: 'schedule', outcome: 'partial', tasks: [{ id: 't1', state: 'partial' }] },
  createdAt: '',
  updatedAt: '',
};

describe('PoliciesView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('lists the schedule in words, the next 3 runs in the policy zone, retention, storage, VMs, last outcome; the toggle disables', async () => {
    signInAs('admin');
    const api = mockApi({
      'GET /policies': { body: page([POLICY]) },
      'GET /storages': { body: page([STORAGE]) },
      'GET /virtual-machines/rows': { body: page([], 12) },
      'PATCH /policies/:id': (call) => ({ body: { ...POLICY, ...(call.body as object) } }),
    });
    await mountPage(PoliciesView, '/policies', '/policies');
    await until(() => expect($$('[data-test="policy-row"]')).toHaveLength(1));
    const row = $('[data-test="policy-row"]')!;
    expect($('[data-test="policy-schedule-words"]')!.textContent).toBe('Every weekday (Monday to Friday) at 01:30');
    expect(row.textContent).toContain('Europe/Paris');
    expect($$('[data-test="policy-next-runs"] time').map((t) => t.textContent)).toEqual(['Thu 3 Dec 2026, 01:30', 'Fri 4 Dec 2026, 01:30', 'Mon 7 Dec 2026, 01:30']);
    expect(row.textContent).toContain('7 daily · 4 weekly');
    expect(row.textContent).toContain('nfs1');
    await until(() => expect($('[data-test="policy-vm-count"]')!.textContent).toBe('12'));
    expect($('[data-test="policy-last-outcome"]')!.textContent).toBe('partial');

    ($('[data-test="policy-enabled-nightly"]') as HTMLElement).click();
    await until(() => expect(api.find('PATCH', `/policies/${POLICY.id}`)).toHaveLength(1));
    expect(api.find('PATCH', `/policies/${POLICY.id}`)[0]!.body).toEqual({ enabled: false });
    await until(() => expect($('[data-test="policy-next-runs"]')).toBeNull());
    expect(row.textContent).toContain('disabled');
  });

  it('with no storage the empty state sends to the storage form first', async () => {
    signInAs('admin');
    mockApi({ 'GET /policies': { body: page([]) }, 'GET /storages': { body: page([]) } });
    await mountPage(PoliciesView, '/policies', '/policies');
    await until(() => expect($('[data-test="list-empty-action"]')).not.toBeNull());
    expect($('[data-test="list-empty-action"]')!.getAttribute('href')).toBe('/storages?new=1');
  });
});
