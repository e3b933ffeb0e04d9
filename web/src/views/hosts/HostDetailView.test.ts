import { afterEach, describe, expect, it, vi } from 'vitest';
import { flushPromises } from '@vue/test-utils';
import { NSelect } from 'naive-ui';
import HostDetailView from './HostDetailView.vue';
import { setMeForTests } from '../../auth';
import { $, mockApi, mountPage, signInAs, until } from '../../components/admin/testing';

const POOL = { id: '11111111-1111-4111-8111-111111111111', name: 'prod', policyId: null, connectorId: null, hostCount: 1, createdAt: '', updatedAt: '' };
const HOST_ID = '22222222-2222-4222-8222-222222222222';
const host = (over: Record<string, unknown> = {}) => ({
  id: HOST_ID,
  name: 'kvm1',
  address: '10.0.0.5',
  sshPort: 22,
  username: 'backroll',
  poolId: POOL.id,
  tags: [],
  libvirtUri: 'qemu:///system',
  diskAccess: 'ssh',
  hostKeyFingerprint: 'SHA256:abc',
  connection: { state: 'connected', errorCode: null, message: null, lastSeenAt: '2026-12-02T10:00:00.000Z' },
  createdAt: '2026-12-02T10:00:00.000Z',
  updatedAt: '2026-12-02T10:00:00.000Z',
  ...over,
});
const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });

describe('HostDetailView: disk access', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('shows how the disks are read, and the edit form sends only the changed diskAccess', async () => {
    signInAs('admin');
    let current = host();
    const api = mockApi({
      'GET /hosts/:id': () => ({ body: current }),
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines': { body: page([]) },
      'PATCH /hosts/:id': (call) => {
        current = host({ ...(call.body as object) });
        return { body: current };
      },
    });
    const { wrapper } = await mountPage(HostDetailView, `/hosts/${HOST_ID}`, '/hosts/:id', { id: HOST_ID });
    await until(() => expect($('[data-test="host-detail-disk-access"]')).not.toBeNull());
    const shown = $('[data-test="host-detail-disk-access"]')!;
    expect(shown.getAttribute('data-value')).toBe('ssh');
    expect(shown.textContent!.trim()).toBe('Through the host (SSH) — no mount needed; qcow2 disks without backing file');

    $('[data-test="host-detail-edit"]')!.click();
    await until(() => expect($('[data-test="host-form"]')).not.toBeNull());
    const select = wrapper.findAllComponents(NSelect).find((c) => c.attributes('data-test') === 'host-edit-disk-access')!;
    expect(select.props('value')).toBe('ssh');
    select.vm.$emit('update:value', 'mount');
    await flushPromises();
    $('[data-test="host-save"]')!.click();

    await until(() => expect(api.find('PATCH', `/hosts/${HOST_ID}`)).toHaveLength(1));
    expect(api.find('PATCH', `/hosts/${HOST_ID}`)[0]!.body).toEqual({ diskAccess: 'mount' });
    await until(() => expect($('[data-test="host-detail-disk-access"]')!.getAttribute('data-value')).toBe('mount'));
    expect($('[data-test="host-detail-disk-access"]')!.textContent!.trim()).toBe("Mounted storage — the VM storage is mounted on the worker at the host's paths");
  });

  it('an edit that leaves the disk access alone does not send it', async () => {
    signInAs('admin');
    const api = mockApi({
      'GET /hosts/:id': { body: host({ diskAccess: 'auto' }) },
      'GET /pools': { body: page([POOL]) },
      'GET /virtual-machines': { body: page([]) },
      'PATCH /hosts/:id': (call) => ({ body: host({ diskAccess: 'auto', ...(call.body as object) }) }),
    });
    await mountPage(HostDetailView, `/hosts/${HOST_ID}`, '/hosts/:id', { id: HOST_ID });
    await until(() => expect($('[data-test="host-detail-disk-access"]')!.textContent).toContain('Auto — mounted storage when readable here'));
    $('[data-test="host-detail-edit"]')!.click();
    await until(() => expect($('input[data-test="host-edit-name"]')).not.toBeNull());
    const name = $('input[data-test="host-edit-name"]') as HTMLInputElement;
    name.value = 'kvm1-renamed';
    name.dispatchEvent(new Event('input', { bubbles: true }));
    $('[data-test="host-save"]')!.click();
    await until(() => expect(api.find('PATCH', `/hosts/${HOST_ID}`)).toHaveLength(1));
    expect(api.find('PATCH', `/hosts/${HOST_ID}`)[0]!.body).toEqual({ name: 'kvm1-renamed' });
  });
});
