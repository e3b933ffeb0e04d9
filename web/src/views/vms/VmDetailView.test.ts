import { flushPromises, mount } from '@vue/test-utils';
import { createPinia, setActivePinia } from 'pinia';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nextTick } from 'vue';
import { createMemoryHistory, createRouter } from 'vue-router';
import type { RestorePoint, VirtualMachine } from '../../api/types';
import VmDetailView from './VmDetailView.vue';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const vm: VirtualMachine = {
  id: 'vm1', uuid: 'u1', name: 'web-1', state: 'running', vcpus: 2, memoryBytes: 2 ** 31, disks: [], cloudStackManaged: false, systemVm: false, present: true,
  lastSeenAt: null, hostId: 'h1', host: { id: 'h1', name: 'kvm1', poolId: 'p1', connectionState: 'connected', lastSeenAt: null }, createdAt: '', updatedAt: '',
};
const point = (id: string, epoch: number, read: RestorePoint['read']): RestorePoint => ({
  id, vmId: 'vm1', storageId: 's1', repository: 'r', epoch, archives: [], originalSize: GiB, compressedSize: null, deduplicatedSize: 3 * MiB, durationMs: 1000,
  taskId: null, startedBy: 'schedule:x', source: 'backroll', createdAt: new Date(epoch * 1000).toISOString(),
  disks: [{ target: 'vda', virtualSize: GiB, originalSize: GiB, compressedSize: null, deduplicatedSize: null }],
  ...(read ? { read } : {}),
});
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('VmDetailView restore points', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('shows how each restore point was read: incremental, full (reason for screen readers and on hover), — for an old one', async () => {
    setActivePinia(createPinia());
    vi.stubGlobal('fetch', async (url: string) => {
      if (url.startsWith('/api/v2/virtual-machines/vm1/restore-points'))
        return json(200, {
          items: [
            point('rp3', 1_700_000_300, { mode: 'incremental', bytesToRead: 12 * MiB, bytesRead: 12 * MiB, fullReason: null, diskSize: GiB }),
            point('rp2', 1_700_000_200, { mode: 'full', bytesToRead: GiB, bytesRead: 700 * MiB, fullReason: 'periodic full read (30 days)', diskSize: GiB }),
            point('rp1', 1_700_000_100, undefined),
          ],
        });
      if (url.startsWith('/api/v2/virtual-machines/vm1')) return json(200, vm);
      if (url.startsWith('/api/v2/virtual-machines/rows')) return json(200, { items: [], total: 0, limit: 50, offset: 0 });
      if (url.startsWith('/api/v2/tasks')) return json(200, { items: [], total: 0, limit: 50, offset: 0 });
      return json(404, {});
    });
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { render: () => null } }] });
    const w = mount(VmDetailView, { props: { id: 'vm1' }, attachTo: document.body, global: { plugins: [router] } });
    await flushPromises();
    await nextTick();
    const tab = [...document.body.querySelectorAll('.n-tabs-tab')].find((e) => e.textContent?.includes('Restore points')) as HTMLElement | undefined;
    expect(tab?.textContent).toContain('Restore points (3)');
    tab!.click();
    await flushPromises();
    await nextTick();
    const table = document.body.querySelector('[data-test="restore-points"]')!;
    expect([...table.querySelectorAll('th')].map((th) => th.textContent?.trim())).toContain('Read');
    const cells = [...table.querySelectorAll('[data-test="rp-read"]')];
    expect(cells.map((c) => c.getAttribute('data-mode'))).toEqual(['incremental', 'full', 'none']);
    expect(cells[0]!.querySelector('[data-test="rp-read-amount"]')?.textContent).toBe('12.0 MiB of 1.0 GiB read');
    expect(cells[1]!.querySelector('[data-test="rp-read-amount"]')?.textContent).toBe('700 MiB of 1.0 GiB read');
    expect(cells[1]!.querySelector('[data-test="rp-read-reason"]')?.textContent).toBe('(full read: periodic full read (30 days))');
    expect(cells[2]!.textContent).toBe('—');
    w.unmount();
  });
});
