import { afterEach, describe, expect, it, vi } from 'vitest';
import { flushPromises } from '@vue/test-utils';
import { NSelect } from 'naive-ui';
import HostsView from './HostsView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, type, until } from '../../components/admin/testing';

const POOL = { id: '11111111-1111-4111-8111-111111111111', name: 'prod', policyId: null, connectorId: null, hostCount: 0, createdAt: '', updatedAt: '' };
const HOST_ID = '22222222-2222-4222-8222-222222222222';
const PINNED = 'SHA256:0ldk3y0ldk3y0ldk3y0ldk3y0ldk3y0ldk3y0ldk3y';
const NEW = 'SHA256:n3wk3yn3wk3yn3wk3yn3wk3yn3wk3yn3wk3yn3wk3y';
const host = (over: Record<string, unknown> = {}) => ({
  id: HOST_ID,
  name: 'kvm1',
  address: '10.0.0.5',
  sshPort: 22,
  username: 'backroll',
  poolId: POOL.id,
  tags: [],
  libvirtUri: 'qemu:///system',
  diskAccess: 'auto',
  hostKeyFingerprint: null,
  connection: { state: 'unknown', errorCode: null, message: null, lastSeenAt: null },
  createdAt: '2026-12-02T10:00:00.000Z',
  updatedAt: '2026-12-02T10:00:00.000Z',
  ...over,
});
const KEYS = {
  keys: [
    { algorithm: 'ssh-ed25519', fingerprint: 'SHA256:backrolled', authorizedKeysLine: 'ssh-ed25519 AAAAC3Nza backroll@server' },
    { algorithm: 'ssh-rsa', fingerprint: 'SHA256:backrollrsa', authorizedKeysLine: 'ssh-rsa AAAAB3Nza backroll@server' },
  ],
  authorizedKeys: 'ssh-ed25519 AAAAC3Nza backroll@server\nssh-rsa AAAAB3Nza backroll@server\n',
  installCommand: "umask 077 && mkdir -p ~/.ssh && printf '%s\\n' 'ssh-ed25519 AAAAC3Nza backroll@server' >> ~/.ssh/authorized_keys",
};
const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });

describe('HostsView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('adds a host: address and user → public keys and authorise command → connect → the pinned fingerprint', async () => {
    signInAs('admin');
    let hosts: unknown[] = [];
    let connectAttempts = 0;
    const api = mockApi({
      'GET /hosts': () => ({ body: page(hosts) }),
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines/rows': { body: page([]) },
      'POST /hosts': (call) => {
        hosts = [host({ ...(call.body as object) })];
        return { status: 201, body: hosts[0] };
      },
      'GET /ssh/public-keys': { body: KEYS },
      'POST /hosts/:id/connect': () =>
        ++connectAttempts === 1
          ? { status: 409, body: { status: 409, code: 'HOST.AUTH_FAILED', detail: 'backroll@10.0.0.5 refused the key: authorise it', installCommand: KEYS.installCommand } }
          : { body: host({ hostKeyFingerprint: NEW, connection: { state: 'connected', errorCode: null, message: null, lastSeenAt: '2026-12-02T14:00:00.000Z' } }) },
    });
    await mountPage(HostsView, '/hosts', '/hosts');
    await until(() => expect($('[data-test="list-empty"]')).not.toBeNull());
    expect($('[data-test="list-empty"]')!.textContent).toContain('No host yet');

    $('[data-test="host-add"]')!.click();
    await until(() => expect($('input[data-test="host-address"]')).not.toBeNull());
    type($('input[data-test="host-address"]'), '10.0.0.5');
    type($('input[data-test="host-username"]'), 'backroll');
    $('[data-test="host-wizard-next"]')!.click();

    // step 2: the keys, each with a copy button, and the authorise command
    await until(() => expect($('[data-test="public-keys"]')).not.toBeNull());
    expect(api.find('POST', '/hosts')[0]!.body).toEqual({
      name: '10.0.0.5',
      address: '10.0.0.5',
      sshPort: 22,
      username: 'backroll',
      poolId: POOL.id,
      libvirtUri: 'qemu:///system',
      diskAccess: 'auto',
      tags: [],
    });
    expect($('[data-test="install-command"]')!.textContent).toContain('authorized_keys');
    expect($$('[data-test="public-key"]')).toHaveLength(2);
    expect($('[data-test="public-keys"]')!.textContent).toContain('as backroll');
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    $('[data-test="copy-install-command"]')!.click();
    await flushPromises();
    expect(writeText).toHaveBeenCalledWith(KEYS.installCommand);

    // the key is not authorised yet: the wizard says so and stays
    $('[data-test="host-connect"]')!.click();
    await until(() => expect($('[data-test="host-auth-failed"]')).not.toBeNull());
    expect($('[data-test="host-auth-failed"]')!.textContent).toContain('refused the key');

    // authorised: connected, with the pinned fingerprint
    $('[data-test="host-connect"]')!.click();
    await until(() => expect($('[data-test="host-pinned-fingerprint"]')).not.toBeNull());
    expect($('[data-test="host-pinned-fingerprint"]')!.textContent).toBe(NEW);
    expect(api.find('POST', `/hosts/${HOST_ID}/connect`)).toHaveLength(2);

    $('[data-test="host-wizard-done"]')!.click();
    await until(() => expect($$('[data-test="host-row"]')).toHaveLength(1));
    expect($('[data-test="host-fingerprint"]')!.textContent).toBe(NEW);
    expect($('[data-test="host-connection"] [data-state]')!.getAttribute('data-state')).toBe('connected');
    expect($('[data-test="host-connection"]')!.textContent).not.toContain('never');
  });

  it('adds a host read through SSH: the disk access chosen in the wizard is sent and shown once connected', async () => {
    signInAs('admin');
    let hosts: unknown[] = [];
    const api = mockApi({
      'GET /hosts': () => ({ body: page(hosts) }),
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines/rows': { body: page([]) },
      'POST /hosts': (call) => {
        hosts = [host({ ...(call.body as object) })];
        return { status: 201, body: hosts[0] };
      },
      'GET /ssh/public-keys': { body: KEYS },
      'POST /hosts/:id/connect': () => ({
        body: { ...(hosts[0] as object), hostKeyFingerprint: NEW, connection: { state: 'connected', errorCode: null, message: null, lastSeenAt: '2026-12-02T14:00:00.000Z' } },
      }),
    });
    const { wrapper } = await mountPage(HostsView, '/hosts', '/hosts');
    $('[data-test="host-add"]')!.click();
    await until(() => expect($('input[data-test="host-address"]')).not.toBeNull());
    type($('input[data-test="host-address"]'), '10.0.0.5');

    // the three choices, each with its one-line help; auto until the operator picks another
    // (the option list of a naive-ui select does not render in happy-dom: pick the option as the select would)
    const select = wrapper.findAllComponents(NSelect).find((c) => c.attributes('data-test') === 'host-disk-access')!;
    expect(select.props('value')).toBe('auto');
    expect((select.props('options') as Array<{ value: string; label: string }>).map((o) => [o.value, o.label])).toEqual([
      ['auto', 'Auto — mounted storage when readable here, otherwise through the host over SSH'],
      ['mount', "Mounted storage — the VM storage is mounted on the worker at the host's paths"],
      ['ssh', 'Through the host (SSH) — no mount needed; qcow2 disks without backing file'],
    ]);
    select.vm.$emit('update:value', 'ssh');
    await flushPromises();
    $('[data-test="host-wizard-next"]')!.click();

    await until(() => expect(api.find('POST', '/hosts')).toHaveLength(1));
    expect(api.find('POST', '/hosts')[0]!.body).toMatchObject({ address: '10.0.0.5', diskAccess: 'ssh' });
    await until(() => expect($('[data-test="host-connect"]')).not.toBeNull());
    $('[data-test="host-connect"]')!.click();
    await until(() => expect($('[data-test="host-connected-disk-access"]')).not.toBeNull());
    expect($('[data-test="host-connected-disk-access"]')!.textContent).toBe('Through the host (SSH)');
  });

  it('a changed host key shows the red banner with the presented fingerprint; re-trust after confirmation sends it', async () => {
    signInAs('admin');
    const changed = host({
      hostKeyFingerprint: PINNED,
      connection: {
        state: 'failed',
        errorCode: 'HOST.KEY_CHANGED',
        message: `host key of 10.0.0.5 has changed: pinned ${PINNED}, server presented ${NEW} (ssh-ed25519). Connection refused`,
        lastSeenAt: null,
      },
    });
    let current = changed;
    const api = mockApi({
      'GET /hosts': () => ({ body: page([current]) }),
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines/rows': { body: page([]) },
      'POST /hosts/:id/trust-host-key': (call) => {
        current = host({ hostKeyFingerprint: (call.body as { fingerprint: string }).fingerprint, connection: { state: 'connected', errorCode: null, message: null, lastSeenAt: 'x' } });
        return { body: current };
      },
    });
    await mountPage(HostsView, '/hosts', '/hosts');
    await until(() => expect($('[data-test="host-key-changed-banner"]')).not.toBeNull());
    expect($('[data-test="host-key-changed-banner"]')!.textContent).toContain('The SSH host key of kvm1 has changed');
    expect($('[data-test="pinned-fingerprint"]')!.textContent).toBe(PINNED);
    expect($('[data-test="presented-fingerprint"]')!.textContent).toBe(NEW);
    expect($('[data-test="host-connection"]')!.textContent).toContain('host key changed');

    $('[data-test="retrust-host-key"]')!.click();
    await until(() => expect($('[data-test="retrust-confirm"]')).not.toBeNull());
    expect(($('[data-test="retrust-confirm"]') as HTMLButtonElement).disabled).toBe(true);
    $('[data-test="retrust-confirm-checkbox"]')!.click();
    await flushPromises();
    $('[data-test="retrust-confirm"]')!.click();
    await until(() => expect(api.find('POST', `/hosts/${HOST_ID}/trust-host-key`)).toHaveLength(1));
    expect(api.find('POST', `/hosts/${HOST_ID}/trust-host-key`)[0]!.body).toEqual({ fingerprint: NEW });
    await until(() => expect($('[data-test="host-key-changed-banner"]')).toBeNull());
    expect($('[data-test="host-fingerprint"]')!.textContent).toBe(NEW);
  });

  it('viewers see the banner and the list but every write action is disabled', async () => {
    signInAs('viewer');
    mockApi({
      'GET /hosts': { body: page([host({ hostKeyFingerprint: PINNED, connection: { state: 'failed', errorCode: 'HOST.KEY_CHANGED', message: `server presented ${NEW} (ssh-ed25519)`, lastSeenAt: null } })]) },
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines/rows': { body: page([]) },
    });
    await mountPage(HostsView, '/hosts', '/hosts');
    await until(() => expect($$('[data-test="host-row"]')).toHaveLength(1));
    expect(($('[data-test="host-add"]') as HTMLButtonElement).disabled).toBe(true);
    expect(($('[data-test="host-connect-kvm1"]') as HTMLButtonElement).disabled).toBe(true);
    expect(($('[data-test="host-delete-kvm1"]') as HTMLButtonElement).disabled).toBe(true);
    expect(($('[data-test="retrust-host-key"]') as HTMLButtonElement).disabled).toBe(true);
  });

  it('a failing list shows the error with a retry that loads again', async () => {
    signInAs('admin');
    let fail = true;
    mockApi({
      'GET /hosts': () => (fail ? { status: 500, body: { status: 500, code: 'INTERNAL', detail: 'boom' } } : { body: page([host()]) }),
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines/rows': { body: page([]) },
    });
    await mountPage(HostsView, '/hosts', '/hosts');
    await until(() => expect($('[data-test="list-error"]')).not.toBeNull());
    expect($('[data-test="list-error"]')!.textContent).toContain('boom');
    fail = false;
    $('[data-test="list-retry"]')!.click();
    await until(() => expect($$('[data-test="host-row"]')).toHaveLength(1));
    expect($('[data-test="list-error"]')).toBeNull();
  });
});
