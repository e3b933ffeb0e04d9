import { afterEach, describe, expect, it, vi } from 'vitest';
import HooksView from './HooksView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, until } from '../../components/admin/testing';

const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });
const HOOK = { id: '66666666-6666-4666-8666-666666666666', name: 'ops', kind: 'webhook', urlHint: 'https://hooks.example', secretSet: true, events: ['backup.failed'], createdAt: '', updatedAt: '' };

describe('HooksView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('sends a test and shows the result, then the recent deliveries with status code', async () => {
    signInAs('admin');
    let deliveries: unknown[] = [];
    mockApi({
      'GET /hooks': { body: page([HOOK]) },
      'POST /hooks/:id/test': () => {
        deliveries = [{ id: 'd1', event: 'backup.failed', test: true, taskId: null, delivered: false, status: 502, error: 'the endpoint answered HTTP 502', attempts: 1, durationMs: 84, at: new Date().toISOString() }];
        return { body: { delivered: false, event: 'backup.failed', deliveryId: 'd1', attempts: 1, status: 502, error: 'the endpoint answered HTTP 502', durationMs: 84 } };
      },
      'GET /hooks/:id/deliveries': () => ({ body: { items: deliveries } }),
    });
    await mountPage(HooksView, '/hooks', '/hooks');
    await until(() => expect($$('[data-test="hook-row"]')).toHaveLength(1));
    expect($('[data-test="hook-row"]')!.textContent).toContain('https://hooks.example');

    $('[data-test="hook-test-ops"]')!.click();
    await until(() => expect($('[data-test="hook-test-result"]')!.textContent).toContain('failed'));
    expect($('[data-test="hook-test-result"]')!.textContent).toContain('HTTP 502');
    expect($('[data-test="hook-test-result"]')!.textContent).toContain('84 ms');

    $('[data-test="hook-toggle-ops"]')!.click();
    await until(() => expect($$('[data-test="hook-delivery"]')).toHaveLength(1));
    expect($('[data-test="hook-delivery-status"]')!.textContent).toBe('502');
    expect($('[data-test="hook-delivery"]')!.textContent).toContain('test');
  });
});
