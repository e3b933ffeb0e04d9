import { flushPromises, mount } from '@vue/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nextTick } from 'vue';
import { createMemoryHistory, createRouter } from 'vue-router';
import type { RestorePoint, VirtualMachine } from '../../api/types';
import RestoreWizard from './RestoreWizard.vue';

const vm: VirtualMachine = {
  id: 'vm1', uuid: 'u1', name: 'web-1', state: 'running', vcpus: 2, memoryBytes: 2 ** 31, disks: [], cloudStackManaged: false, systemVm: false, present: true,
  lastSeenAt: null, hostId: 'h1', host: { id: 'h1', name: 'kvm1', poolId: 'p1', connectionState: 'connected', lastSeenAt: null }, createdAt: '', updatedAt: '',
};
const point: RestorePoint = {
  id: 'rp1', vmId: 'vm1', storageId: 's1', repository: 'r', archives: [], originalSize: 3 * 2 ** 30, compressedSize: null, deduplicatedSize: null, durationMs: 1000,
  taskId: null, startedBy: 'schedule:x', source: 'backroll', createdAt: '2026-12-02T02:00:00.000Z',
  disks: [
    { target: 'vda', virtualSize: 2 * 2 ** 30, originalSize: 2 * 2 ** 30, compressedSize: null, deduplicatedSize: null },
    { target: 'vdb', virtualSize: 2 ** 30, originalSize: 2 ** 30, compressedSize: null, deduplicatedSize: null },
  ],
};
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' } });
const q = (sel: string) => document.body.querySelector(sel) as HTMLElement | null;
async function click(sel: string): Promise<void> {
  const el = q(sel);
  if (!el) throw new Error(`no ${sel}`);
  el.click();
  await flushPromises();
  await nextTick();
}

async function open(fetchImpl: (url: string, init: RequestInit) => Promise<Response>) {
  const calls: { url: string; body: unknown }[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    calls.push({ url, body: init.body ? JSON.parse(String(init.body)) : undefined });
    return fetchImpl(url, init);
  });
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { render: () => null } }] });
  const w = mount(RestoreWizard, { props: { show: false, vm, point }, attachTo: document.body, global: { plugins: [router] } });
  await w.setProps({ show: true });
  await flushPromises();
  return { w, calls, router };
}

describe('RestoreWizard', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('new VM: mode → disks → target → pre-flight review; a failed space check blocks the start and says why', async () => {
    const { calls, w } = await open(async (url) => {
      if (url.startsWith('/api/v2/hosts')) return json(200, { items: [{ id: 'h1', name: 'kvm1', connection: { state: 'connected' } }], total: 1, limit: 500, offset: 0 });
      if (url.endsWith('/restores/preflight'))
        return json(200, { ok: false, sizeBytes: 2 ** 31, estimatedSeconds: 90, estimateBasis: { restores: 3, bytesPerSecond: 1 }, target: { kind: 'host', freeBytes: 1024 }, checks: [{ code: 'RESTORE.TARGET_SPACE', ok: false, severity: 'error', message: 'needs 2 GiB, 1 KiB free on kvm1' }] });
      return json(404, {});
    });
    expect(q('[data-test="mode-help"]')?.textContent).toMatch(/new VM/);
    await click('[data-test="restore-next"]'); // → disks: all of them are restored
    expect(document.body.querySelectorAll('[data-test="restore-disks"] li')).toHaveLength(2);
    expect(q('[data-test="restore-disks"]')?.textContent).toMatch(/vda.*2\.0 GiB.*vdb.*1\.0 GiB/s);
    await click('[data-test="restore-next"]'); // → target
    expect((q('[data-test="restore-new-name"]') as HTMLInputElement).value).toBe('web-1-restored');
    await click('[data-test="restore-next"]'); // pre-flight → review
    const pre = calls.find((c) => c.url.endsWith('/restores/preflight'));
    expect(pre?.body).toEqual({ restorePointId: 'rp1', mode: 'new-vm', newName: 'web-1-restored', hostId: 'h1', start: false });
    expect(q('[data-test="restore-estimate"]')?.textContent).toMatch(/about 1 min 30 s/);
    expect(q('[data-test="restore-checks"]')?.textContent).toMatch(/needs 2 GiB, 1 KiB free/);
    expect(q('[data-test="restore-blocked"]')?.textContent).toMatch(/cannot start/);
    expect((q('[data-test="restore-submit"]') as HTMLButtonElement).disabled).toBe(true);
    w.unmount();
  });

  it('in place: warns what is lost; a locked repository names the way out (break the lock)', async () => {
    const { w } = await open(async (url) => {
      if (url.startsWith('/api/v2/hosts')) return json(200, { items: [], total: 0, limit: 500, offset: 0 });
      if (url.endsWith('/restores/preflight')) return json(200, { ok: true, sizeBytes: 3 * 2 ** 30, estimatedSeconds: null, checks: [{ code: 'VM.WILL_STOP', ok: true, severity: 'warning', message: 'web-1 is stopped' }] });
      if (url.endsWith('/restores')) return json(409, { status: 409, code: 'REPOSITORY.LOCKED', detail: 'the repository of web-1 is locked' });
      return json(404, {});
    });
    (q('[data-test="mode-in-place"] input') as HTMLInputElement).click();
    await nextTick();
    expect(q('[data-test="mode-help"]')?.textContent).toMatch(/shut down.*lost/s);
    await click('[data-test="restore-next"]');
    await click('[data-test="restore-next"]');
    await click('[data-test="restore-next"]');
    expect(q('[data-test="restore-submit"]')?.textContent).toMatch(/Stop web-1 and restore/);
    await click('[data-test="restore-submit"]');
    expect(q('[data-test="form-error"]')?.textContent).toMatch(/locked/);
    expect(q('[data-test="restore-way-out"]')?.textContent).toMatch(/break the lock/);
    await click('[data-test="restore-break-lock"]');
    expect(w.emitted('break-lock')).toHaveLength(1);
    w.unmount();
  });
});
