import { afterEach, describe, expect, it, vi } from 'vitest';
import StoragesView from './StoragesView.vue';
import { setMeForTests } from '../../auth';
import { $, $$, mockApi, mountPage, signInAs, type, until } from '../../components/admin/testing';

const GiB = 1024 ** 3;
const page = <T>(items: T[]) => ({ items, total: items.length, limit: 500, offset: 0 });
const storage = { id: '33333333-3333-4333-8333-333333333333', name: 'nfs1', path: '/srv/backroll', capacityBytes: 1000 * GiB, usedBytes: 400 * GiB, freeBytes: 600 * GiB, createdAt: '', updatedAt: '' };

describe('StoragesView', () => {
  afterEach(() => {
    setMeForTests(null);
    vi.unstubAllGlobals();
    document.body.innerHTML = '';
  });

  it('empty state names the first setup step; the form puts server errors on their field and accepts a path outside /mnt', async () => {
    signInAs('admin');
    let storages: unknown[] = [];
    const api = mockApi({
      'GET /storages': () => ({ body: page(storages) }),
      'GET /storages/:id/usage': { body: { storageId: storage.id, samples: [], dedupRatio: 4.25, backupBytes: 10 * GiB, originalBytes: 42.5 * GiB, estimatedFullAt: null, topVms: [] } },
      'POST /storages': (call) => {
        const body = call.body as { name: string; path: string };
        if (body.path === '/nope') {
          return { status: 400, body: { status: 400, code: 'STORAGE.PATH_NOT_FOUND', detail: 'storage path "/nope" does not exist on the Backroll server; create it first' } };
        }
        if (body.name === '') {
          return { status: 400, body: { status: 400, code: 'REQUEST.INVALID', detail: 'invalid', errors: [{ path: 'body/name', message: 'must NOT have fewer than 1 characters' }] } };
        }
        storages = [{ ...storage, ...body }];
        return { status: 201, body: storages[0] };
      },
    });
    const { router } = await mountPage(StoragesView, '/storages', '/storages');
    await until(() => expect($('[data-test="list-empty"]')).not.toBeNull());
    expect($('[data-test="list-empty"]')!.textContent).toContain('Next, create a policy');

    // the empty state's action links to the form (?new=1 opens it)
    await router.push('/storages?new=1');
    await until(() => expect($('input[data-test="storage-name"]')).not.toBeNull());
    await until(() => expect(router.currentRoute.value.query.new).toBeUndefined());

    type($('input[data-test="storage-name"]'), '');
    type($('input[data-test="storage-path"]'), '/srv/x');
    $('[data-test="storage-save"]')!.click();
    await until(() => expect($('[data-test="storage-form"]')!.textContent).toContain('must NOT have fewer than 1 characters'));

    type($('input[data-test="storage-name"]'), 'nfs1');
    type($('input[data-test="storage-path"]'), '/nope');
    $('[data-test="storage-save"]')!.click();
    await until(() => expect($('[data-test="storage-form"]')!.textContent).toContain('does not exist on the Backroll server'));
    // on the path field, not as a general error
    expect($('[data-test="storage-form"] [data-test="form-error"]')).toBeNull();

    type($('input[data-test="storage-path"]'), '/srv/backroll');
    $('[data-test="storage-save"]')!.click();
    await until(() => expect($$('[data-test="storage-row"]')).toHaveLength(1));
    expect(api.find('POST', '/storages').at(-1)!.body).toEqual({ name: 'nfs1', path: '/srv/backroll' });
    expect($('[data-test="storage-path-cell"]')!.textContent).toBe('/srv/backroll');
    expect($('[data-test="usage-bar"]')!.textContent).toContain('400 GiB of 1000 GiB used (40%)');
    await until(() => expect($('[data-test="storage-dedup"]')!.textContent).toContain('4.3×'));
    expect($('[data-test="storage-full"]')!.textContent).toContain('not filling up');
  });
});
