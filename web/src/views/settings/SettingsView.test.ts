import { afterEach, describe, expect, it, vi } from 'vitest';
import SettingsView from './SettingsView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, type, until } from '../../components/admin/testing';

vi.mock('../../auth/oidc', () => ({
  consoleConfig: async () => ({ issuer: 'http://127.0.0.1:5050/oidc', clientId: 'backroll-web', redirectUri: '', scope: '', embeddedIdp: true, version: '0.1.0' }),
  discovery: async () => ({}),
  tokenRequest: async () => ({}),
  SignInError: class extends Error {},
}));

describe('SettingsView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('creates a machine client and shows its secret once; DR self-backup and version are shown', async () => {
    signInAs('admin');
    let clients: unknown[] = [];
    mockApi({
      'GET /auth/clients': () => ({ body: clients }),
      'POST /auth/clients': (call) => {
        const b = call.body as { name: string; role: string };
        clients = [{ clientId: 'bk-123', name: b.name, role: b.role, createdAt: '2026-12-02T14:00:00.000Z' }];
        return { status: 201, body: { clientId: 'bk-123', clientSecret: 's3cr3t-shown-once', name: b.name, role: b.role, tokenUrl: 'http://127.0.0.1:5050/oidc/token' } };
      },
      'GET /system/dr-self-backup': {
        body: { enabled: true, reason: null, intervalHours: 24, keep: 7, storages: [{ storageId: 's', storageName: 'nfs1', last: { file: 'backroll-dr-1.bdr', createdAt: '2026-12-02T03:00:00.000Z', bytes: 2048 }, count: 3, error: null }] },
      },
      'GET /api/health': { body: { status: 'ok', version: '0.1.0', checks: { database: { ok: true } } } },
    });
    await mountPage(SettingsView, '/settings', '/settings');
    await until(() => expect($('[data-test="about-version"]')!.textContent).toBe('0.1.0'));
    await until(() => expect($$('[data-test="dr-row"]')).toHaveLength(1));
    expect($('[data-test="dr-row"]')!.textContent).toContain('nfs1');
    expect($('[data-test="dr-row"]')!.textContent).toContain('2.0 KiB');

    await until(() => expect($('[data-test="list-empty"]')).not.toBeNull());
    $('[data-test="client-add"]')!.click();
    await until(() => expect($('input[data-test="client-name"]')).not.toBeNull());
    type($('input[data-test="client-name"]'), 'cloudstack-mgmt1');
    $('[data-test="client-save"]')!.click();
    await until(() => expect($('[data-test="secret-once-value"]')).not.toBeNull());
    expect($('[data-test="secret-once-value"]')!.textContent).toContain('s3cr3t-shown-once');
    $('[data-test="secret-once-done"]')!.click();
    await until(() => expect($('[data-test="secret-once-value"]')).toBeNull());
    await until(() => expect($$('[data-test="client-row"]')).toHaveLength(1));
    // the secret is nowhere on the page any more
    expect(document.body.textContent).not.toContain('s3cr3t-shown-once');
  });

  it('viewers are told clients are admin-only and the list is not requested', async () => {
    signInAs('viewer');
    const api = mockApi({
      'GET /system/dr-self-backup': { body: { enabled: false, reason: 'set BACKROLL_DR_PASSPHRASE_FILE', intervalHours: 24, keep: 7, storages: [] } },
      'GET /api/health': { body: { status: 'ok', version: '0.1.0' } },
    });
    await mountPage(SettingsView, '/settings', '/settings');
    await until(() => expect($('[data-test="dr-off"]')).not.toBeNull());
    expect($('[data-test="clients-card"]')!.textContent).toContain('Only administrators');
    expect(api.find('GET', '/auth/clients')).toHaveLength(0);
    expect(($('[data-test="client-add"]') as HTMLButtonElement).disabled).toBe(true);
  });
});
