/**
 * `POST /api/v2/system/reindex` on a real server (SQLite, embedded jobs) with real borg
 * repositories made of small files (no VM needed: the lab test covers the engine's own
 * backups and restores): admins only, bad options answered at once, the task's progress and
 * report; Backroll's layout with a config archive, a BackROLL repository, an encrypted
 * repository whose passphrase cannot be found, a directory that is no repository, index rows
 * of a repository that is gone (pruned only when asked, never on an empty storage), and a
 * manifest that does not match its archives (its disks are not used).
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { describeWhenAvailable } from '../support/unavailable.js';

const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;
const E1 = 1_764_000_000;
const E2 = 1_764_086_400;
const E3 = 1_764_172_800;

function borg(args: string[], env: Record<string, string>, cwd?: string): void {
  const r = spawnSync('borg', args, { env: { ...process.env, LANG: 'C.UTF-8', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', ...env }, cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`borg ${args.join(' ')}: ${r.stderr}`);
}

describeWhenAvailable('POST /api/v2/system/reindex', HAVE_BORG ? null : 'borg is not installed', () => {
  let t: TestServer;
  let tmp: string;
  let storage: string;
  let empty: string;
  let storageId: string;
  let emptyId: string;
  let hostId: string;
  let webId: string;
  let env: Record<string, string>;
  const webUuid = randomUUID();

  const task = async (body: unknown) => {
    const r = await t.api('POST', '/api/v2/system/reindex', { body });
    expect(r.status, r.text).toBe(202);
    for (let i = 0; i < 300; i++) {
      const g = await t.api('GET', `/api/v2/tasks/${r.body.id}`);
      if (['succeeded', 'failed', 'canceled'].includes(g.body.state)) {
        expect(g.body.state, g.text).toBe('succeeded');
        return g.body;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('the reindex task did not end');
  };
  const rows = () => t.server.db.selectFrom('restore_points').selectAll().orderBy('repository').orderBy('epoch').execute();

  beforeAll(async () => {
    t = await startTestServer('sqlite');
    env = { BORG_BASE_DIR: path.join(t.dataDir, 'borg') };
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-reindex-api-'));
    storage = path.join(tmp, 'storage');
    empty = path.join(tmp, 'empty');
    fs.mkdirSync(storage);
    fs.mkdirSync(empty);
    const st = await t.api('POST', '/api/v2/storages', { body: { name: 'reindex', path: storage } });
    expect(st.status, st.text).toBe(201);
    storageId = st.body.id;
    const st2 = await t.api('POST', '/api/v2/storages', { body: { name: 'reindex-empty', path: empty } });
    emptyId = st2.body.id;
    const pol = await t.api('POST', '/api/v2/policies', { body: { name: 'p', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId } });
    const pool = await t.api('POST', '/api/v2/pools', { body: { name: 'p', policyId: pol.body.id } });
    const host = await t.api('POST', '/api/v2/hosts', { body: { name: 'h1', address: '127.0.0.1', sshPort: 22, username: 'u', poolId: pool.body.id } });
    expect(host.status, host.text).toBe(201);
    hostId = host.body.id;
    webId = randomUUID();
    const now = new Date().toISOString();
    await t.server.db
      .insertInto('virtual_machines')
      .values({ id: webId, host_id: hostId, uuid: webUuid, name: 'web', state: 'running', vcpus: 1, memory_bytes: 1, disks: '[]', cloudstack_managed: 0, system_vm: 0, present: 1, last_seen_at: now, created_at: now, updated_at: now })
      .execute();

    // Backroll's layout: per-disk archives (the image at its absolute path) and config_<epoch> with backroll.json.
    const src = path.join(tmp, 'vms');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'web-a.qcow2'), 'disk a');
    fs.writeFileSync(path.join(src, 'web-b.raw'), 'disk b');
    const web = path.join(storage, 'web');
    borg(['init', '--encryption=none', web], env);
    for (const [epoch, good] of [[E1, true], [E2, false]] as const) {
      borg(['create', `${web}::vda_web-a_${epoch}`, path.join(src, 'web-a.qcow2')], env);
      borg(['create', `${web}::vdb_web-b_${epoch}`, path.join(src, 'web-b.raw')], env);
      const cfg = fs.mkdtempSync(path.join(tmp, 'cfg-'));
      const disks = [
        { target: 'vda', path: path.join(src, 'web-a.qcow2'), format: 'qcow2', archive: `vda_web-a_${epoch}`, backingChain: [], virtualSize: 6 },
        { target: 'vdb', path: path.join(src, 'web-b.raw'), format: 'raw', archive: `vdb_web-b_${epoch}`, backingChain: [], virtualSize: 6 },
      ];
      // E2's manifest lists one disk only: it disagrees with its archives and is not used.
      fs.writeFileSync(path.join(cfg, 'backroll.json'), JSON.stringify({ epoch, vm: { uuid: webUuid, name: 'web' }, disks: good ? disks : disks.slice(0, 1) }));
      fs.writeFileSync(path.join(cfg, 'domain.xml'), '<domain/>');
      borg(['create', `${web}::config_${epoch}`, 'domain.xml', 'backroll.json'], env, cfg);
    }
    // A BackROLL repository of a VM the inventory does not have.
    const old = path.join(storage, 'old-vm');
    borg(['init', '--encryption=none', old], env);
    borg(['create', `${old}::vda_old-vm_${E3}`, path.join(src, 'web-a.qcow2')], env);
    // Encrypted, without an owner record: its passphrase cannot be looked up.
    borg(['init', '--encryption=repokey-blake2', path.join(storage, 'locked')], { ...env, BORG_PASSPHRASE: 'x'.repeat(20) });
    // Not repositories: a plain directory, the backing-file store, a file.
    fs.mkdirSync(path.join(storage, 'notes'));
    fs.mkdirSync(path.join(storage, 'template'));
    fs.writeFileSync(path.join(storage, 'README'), 'x');
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('is for admins, and answers bad options at once', async () => {
    expect((await t.api('POST', '/api/v2/system/reindex', { body: {}, token: t.viewerToken })).status).toBe(403);
    expect((await t.api('POST', '/api/v2/system/reindex', { body: {}, token: null })).status).toBe(401);
    const dots = await t.api('POST', '/api/v2/system/reindex', { body: { repository: '..' } });
    expect(dots.status).toBe(400);
    expect(dots.body.code).toBe('REINDEX.REPOSITORY_NAME_INVALID');
    const slash = await t.api('POST', '/api/v2/system/reindex', { body: { repository: '../etc' } });
    expect(slash.body.code).toBe('REINDEX.REPOSITORY_NAME_INVALID');
    expect((await t.api('POST', '/api/v2/system/reindex', { body: { storage: 'nope' } })).body.code).toBe('STORAGE.NOT_FOUND');
    expect((await t.api('POST', '/api/v2/system/reindex', { body: { attachToHost: 'nope' } })).body.code).toBe('HOST.NOT_FOUND');
    expect((await t.api('POST', '/api/v2/system/reindex', { body: { bogus: 1 } })).status).toBe(400);
    // The generic task route does not start it with an unchecked payload.
    const generic = await t.api('POST', '/api/v2/tasks', { body: { kind: 'system.reindex', payload: { repository: '..' } } });
    expect(generic.status).toBe(400);
    expect(generic.body).toMatchObject({ code: 'TASK.KIND_HAS_OWN_ROUTE', detail: expect.stringContaining('POST /api/v2/system/reindex') });
  });

  it('dry run: reports every repository, writes nothing; the task shows its progress', async () => {
    const done = await task({ dryRun: true });
    expect(done.progress.percent).toBe(100);
    const r = done.result;
    const reps = Object.fromEntries(r.storages[0].repositories.map((x: { name: string }) => [x.name, x]));
    expect(Object.keys(reps).sort()).toEqual(['locked', 'notes', 'old-vm', 'web']);
    expect(reps.web).toMatchObject({ status: 'indexed', found: 2, added: 2, vm: { id: webId, uuid: webUuid } });
    expect(reps['old-vm']).toMatchObject({ status: 'unmatched', found: 1, epochs: { found: [E3] } });
    expect(reps.locked).toMatchObject({ status: 'failed', message: expect.stringMatching(/encrypted and records no VM uuid/) });
    expect(reps.notes).toMatchObject({ status: 'not-a-repository' });
    expect(r.storages[0].counts).toMatchObject({ repositories: 4, restorePoints: 3, added: 2, unmatched: 1, failed: 1 });
    expect(await rows()).toEqual([]);
    expect(await t.server.db.selectFrom('virtual_machines').selectAll().execute()).toHaveLength(1);
  });

  it('indexes what it finds: disks from a manifest that agrees with its archives, none from one that does not; twice changes nothing', async () => {
    const first = await task({});
    const web = first.result.storages[0].repositories.find((x: { name: string }) => x.name === 'web');
    expect(web.notes).toEqual([expect.stringMatching(new RegExp(`epoch ${E2}: backroll.json lists 1 disk\\(s\\), the restore point holds 2`))]);
    const rps = (await t.api('GET', `/api/v2/virtual-machines/${webId}/restore-points`)).body.items;
    expect(rps.map((x: { epoch: number; disks: unknown[]; source: string; createdAt: string }) => [x.epoch, x.disks.length, x.source, x.createdAt])).toEqual([
      [E2, 0, 'borg', new Date(E2 * 1000).toISOString()],
      [E1, 2, 'borg', new Date(E1 * 1000).toISOString()],
    ]);
    expect(rps[1].disks.map((d: { target: string; path: string; format: string }) => [d.target, d.path, d.format])).toEqual([
      ['vda', path.join(tmp, 'vms', 'web-a.qcow2'), 'qcow2'],
      ['vdb', path.join(tmp, 'vms', 'web-b.raw'), 'raw'],
    ]);
    const before = await rows();
    const second = await task({});
    expect(second.result.totals).toMatchObject({ kept: 2, added: 0, missing: 0 });
    expect(await rows()).toEqual(before);
  });

  it('reports index rows of a repository that is gone, prunes them only when asked, never on an empty storage', async () => {
    const now = new Date().toISOString();
    const row = (id: string, sid: string, repo: string) => ({
      id,
      vm_id: webId,
      storage_id: sid,
      repository: repo,
      epoch: E3,
      archives: JSON.stringify([`vda_x_${E3}`]),
      disks: '[]',
      original_size: null,
      compressed_size: null,
      deduplicated_size: null,
      duration_ms: null,
      task_id: null,
      started_by: null,
      source: 'backroll',
      created_at: now,
    });
    const goneId = randomUUID();
    const unmountedId = randomUUID();
    await t.server.db.insertInto('restore_points').values([row(goneId, storageId, path.join(storage, 'deleted-vm')), row(unmountedId, emptyId, path.join(empty, 'web'))]).execute();
    const reported = await task({});
    const gone = reported.result.storages.find((s: { id: string }) => s.id === storageId).repositories.find((x: { name: string }) => x.name === 'deleted-vm');
    expect(gone).toMatchObject({ status: 'gone', missing: 1, pruned: 0 });
    const ids = async () => (await rows()).map((r) => r.id);
    expect(await ids()).toEqual(expect.arrayContaining([goneId, unmountedId]));
    const pruned = await task({ pruneMissing: true });
    const e = pruned.result.storages.find((s: { id: string }) => s.id === emptyId);
    expect(e.repositories[0]).toMatchObject({ status: 'gone', missing: 1, pruned: 0, message: expect.stringMatching(/not mounted/) });
    expect(await ids()).not.toContain(goneId);
    expect(await ids()).toContain(unmountedId);
  });

  it('records a VM the inventory lacks as an absent VM of the host the operator names, once', async () => {
    const done = await task({ storage: 'reindex', repository: 'old-vm', attachToHost: 'h1' });
    const rep = done.result.storages[0].repositories[0];
    expect(rep).toMatchObject({ status: 'indexed', added: 1, vm: { name: 'old-vm', present: false, created: true } });
    const vm = await t.api('GET', `/api/v2/virtual-machines/${rep.vm.id}`);
    expect(vm.status, vm.text).toBe(200);
    expect(vm.body).toMatchObject({ name: 'old-vm', present: false, hostId });
    const rps = (await t.api('GET', `/api/v2/virtual-machines/${rep.vm.id}/restore-points`)).body.items;
    expect(rps.map((x: { epoch: number; archives: string[] }) => [x.epoch, x.archives])).toEqual([[E3, [`vda_old-vm_${E3}`]]]);
    const again = await task({ storage: storageId, repository: 'old-vm', attachToHost: hostId });
    expect(again.result.storages[0].repositories[0]).toMatchObject({ added: 0, kept: 1, vm: { id: rep.vm.id, created: false } });
  });
});
