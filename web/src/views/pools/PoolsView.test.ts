import { afterEach, describe, expect, it, vi } from 'vitest';
import PoolsView from './PoolsView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, until } from '../../components/admin/testing';

const feedback = vi.hoisted(() => ({ toastTask: vi.fn(), toastError: vi.fn(), toastSuccess: vi.fn() }));
vi.mock('../../components/feedback', () => feedback);

const page = <T>(items: T[], total = items.length) => ({ items, total, limit: 500, offset: 0 });
const POLICY = { id: 'p1', name: 'nightly', schedule: '0 2 * * *', timezone: 'UTC', enabled: true, retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId: 's', nextRuns: [], lastRun: null };
const POOL = { id: '55555555-5555-4555-8555-555555555555', name: 'prod', policyId: 'p1', connectorId: null, hostCount: 2, createdAt: '', updatedAt: '' };

describe('PoolsView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('shows policy, hosts, VM count and protection; back up now toasts a link to the started task', async () => {
    signInAs('admin');
    const api = mockApi({
      'GET /pools': { body: page([POOL]) },
      'GET /policies': { body: page([POLICY]) },
      'GET /connectors': { body: page([]) },
      'GET /virtual-machines/rows': (call) => ({ body: page([], call.query.get('protection') === 'protected' ? 3 : 4) }),
      'POST /pools/:id/backup': { status: 202, body: { id: 'task-77', kind: 'pool.backup', state: 'queued' } },
    });
    await mountPage(PoolsView, '/pools', '/pools');
    await until(() => expect($('[data-test="pool-protection"]')!.textContent).toContain('75% · 3 of 4'));
    const row = $('[data-test="pool-row"]')!;
    expect(row.textContent).toContain('nightly');
    expect(row.textContent).toContain('Every day at 02:00');
    expect(row.textContent).toContain('2 hosts');
    expect($('[data-test="pool-vm-count"]')!.textContent).toBe('4');
    expect(api.find('GET', '/virtual-machines/rows').map((c) => c.query.get('poolId'))).toEqual([POOL.id, POOL.id]);

    $('[data-test="pool-run-prod"]')!.click();
    await until(() => expect(feedback.toastTask).toHaveBeenCalled());
    expect(feedback.toastTask).toHaveBeenCalledWith('Backup of pool prod started', 'task-77', '2 hosts');
    expect(api.find('POST', `/pools/${POOL.id}/backup`)).toHaveLength(1);
  });

  it('without a policy, the empty state sends to the policy form first', async () => {
    signInAs('admin');
    mockApi({ 'GET /pools': { body: page([]) }, 'GET /policies': { body: page([]) }, 'GET /connectors': { body: page([]) } });
    await mountPage(PoolsView, '/pools', '/pools');
    await until(() => expect($('[data-test="list-empty"]')).not.toBeNull());
    expect($('[data-test="list-empty"]')!.textContent).toContain('create the policy first');
    expect($('[data-test="list-empty-action"]')!.getAttribute('href')).toBe('/policies/new');
    expect($$('[data-test="pool-row"]')).toHaveLength(0);
  });
});
