import { afterEach, describe, expect, it, vi } from 'vitest';
import ConnectorsView from './ConnectorsView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, type, until } from '../../components/admin/testing';

const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });
const CONNECTOR = { id: '77777777-7777-4777-8777-777777777777', name: 'cs1', kind: 'cloudstack', endpointUrl: 'https://cloud.example/client/api', apiKeySet: true, secretKeySet: true, verifyTls: true, caCertificate: null, createdAt: '', updatedAt: '' };

describe('ConnectorsView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('tests a connector (version, zones, round trip; or the failure), and editing never resends blank keys', async () => {
    signInAs('admin');
    let ok = true;
    const api = mockApi({
      'GET /connectors': { body: page([CONNECTOR]) },
      'POST /connectors/:id/test': () =>
        ok
          ? { body: { reachable: true, endpointUrl: CONNECTOR.endpointUrl, cloudstackVersion: '4.20.1.0', zones: 2, roundTripMs: 41, testedAt: new Date().toISOString() } }
          : { status: 409, body: { status: 409, code: 'CONNECTOR.AUTH_FAILED', detail: 'CloudStack refused the API key: check the key pair of the account' } },
      'PATCH /connectors/:id': (call) => ({ body: { ...CONNECTOR, ...(call.body as object) } }),
    });
    await mountPage(ConnectorsView, '/connectors', '/connectors');
    await until(() => expect($$('[data-test="connector-row"]')).toHaveLength(1));
    $('[data-test="connector-test-cs1"]')!.click();
    await until(() => expect($('[data-test="connector-test-result-cs1"]')!.textContent).toContain('CloudStack 4.20.1.0'));
    expect($('[data-test="connector-test-result-cs1"]')!.textContent).toContain('2 zones');
    expect($('[data-test="connector-test-result-cs1"]')!.textContent).toContain('41 ms');
    ok = false;
    $('[data-test="connector-test-cs1"]')!.click();
    await until(() => expect($('[data-test="connector-test-result-cs1"]')!.textContent).toContain('CONNECTOR.AUTH_FAILED'));
    expect($('[data-test="connector-test-result-cs1"]')!.textContent).toContain('refused the API key');

    $('[data-test="connector-edit-cs1"]')!.click();
    await until(() => expect($('input[data-test="connector-name"]')).not.toBeNull());
    expect(($('input[data-test="connector-api-key"]') as HTMLInputElement).value).toBe('');
    type($('input[data-test="connector-name"]'), 'cs-prod');
    $('[data-test="connector-save"]')!.click();
    await until(() => expect(api.find('PATCH', `/connectors/${CONNECTOR.id}`)).toHaveLength(1));
    expect(api.find('PATCH', `/connectors/${CONNECTOR.id}`)[0]!.body).toEqual({ name: 'cs-prod' });
  });
});
