/**
 * The restore routes over HTTP (a bare Fastify with the project's problem+json handler) with a
 * real borg repository: request validation codes, 202 with the task, the disk download stream
 * (headers, exact bytes) and borg being stopped when the client goes away.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BorgReader } from '../adapters/borg/extract.js';
import { localImageTool } from '../adapters/qemu-img/check.js';
import { sendProblem, toProblem } from '../http/problem.js';
import { ProblemSchema } from '../http/schemas.js';
import type { TaskView } from '../tasks/task.service.js';
import { nodeRestoreFiles } from './restore-files.js';
import type { RestoreLookup, RestorePointRow, RestoreVm } from './restore.repository.js';
import { restoreRoutes } from './restore.routes.js';
import { RestoreService, type DiskDownload } from './restore.service.js';

const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;

describe.skipIf(!HAVE_BORG)(`restore routes${HAVE_BORG ? '' : ' (SKIPPED: borg is not installed)'}`, () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-restore-routes-'));
  const storage = path.join(root, 'storage');
  const dataDir = path.join(root, 'data');
  const diskDir = path.join(root, 'vms', 'dir with spaces');
  const disk = path.join(diskDir, 'vm-é-vda.qcow2');
  const epoch = 1_700_000_000;
  const vm: RestoreVm = { id: randomUUID(), hostId: randomUUID(), uuid: randomUUID(), name: 'vm1' };
  const rp: RestorePointRow = { id: randomUUID(), vmId: vm.id, storageId: randomUUID(), storagePath: storage, repository: path.join(storage, 'vm1'), epoch, originalSize: null };
  const lookup: RestoreLookup = {
    vm: async (id) => (id === vm.id ? vm : undefined),
    host: async (id) => (id === vm.hostId ? { id, name: 'h', libvirtUri: 'qemu:///session' } : undefined),
    restorePoint: async (vmId, id) => (vmId === vm.id && id === rp.id ? rp : undefined),
  };
  const submitted: Array<{ kind: string; payload: unknown }> = [];
  let service: RestoreService;
  let app: FastifyInstance;
  let url: string;
  let diskSha: string;

  beforeAll(async () => {
    fs.mkdirSync(diskDir, { recursive: true });
    fs.mkdirSync(storage);
    fs.mkdirSync(dataDir);
    // 24 MiB of random data: big enough that borg is still streaming when the client leaves.
    fs.writeFileSync(disk, randomBytes(24 * 1024 * 1024));
    diskSha = createHash('sha256').update(fs.readFileSync(disk)).digest('hex');
    const env = { ...process.env, BORG_BASE_DIR: path.join(dataDir, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' };
    for (const argv of [
      ['init', '--encryption=none', rp.repository],
      ['create', '--compression', 'none', `${rp.repository}::vda_vm-é-vda_${epoch}`, disk],
    ]) {
      const r = spawnSync('borg', argv, { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`borg ${argv[0]}: ${r.stderr}`);
    }
    service = new RestoreService({
      lookup,
      borg: new BorgReader({ baseDir: dataDir, lockWait: 1 }),
      images: localImageTool(),
      files: nodeRestoreFiles,
      hostExec: () => async () => ({ code: 1, stdout: '', stderr: 'no hosts in this test' }),
      locks: { withVmLock: (_v, _o, fn) => fn({ signal: new AbortController().signal }) },
      repoAccess: async () => ({ repo: rp.repository, passphrase: null, unencrypted: true }),
      submit: async (kind, payload) => {
        submitted.push({ kind, payload });
        return { id: randomUUID(), kind, state: 'queued', payload } as unknown as TaskView;
      },
    });
    app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true } } });
    app.addSchema(ProblemSchema);
    app.addSchema({ $id: 'Task', type: 'object', additionalProperties: true });
    app.setErrorHandler((err, req, reply) => sendProblem(reply, toProblem(err, req)));
    await app.register(async (v2) => restoreRoutes(v2, service), { prefix: '/api/v2' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address() as { port: number };
    url = `http://127.0.0.1:${addr.port}/api/v2`;
  });

  afterAll(async () => {
    await app?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const post = async (vmId: string, body: unknown) => {
    const res = await fetch(`${url}/virtual-machines/${vmId}/restores`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
  };

  it('POST restores: 202 with the vm.restore task and its validated payload', async () => {
    const r = await post(vm.id, { restorePointId: rp.id, mode: 'new-vm', newName: 'copy of vm1', start: true });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ kind: 'vm.restore' });
    expect(submitted.at(-1)).toEqual({ kind: 'vm.restore', payload: { vmId: vm.id, restorePointId: rp.id, mode: 'new-vm', newName: 'copy of vm1', hostId: vm.hostId, start: true } });
    const dir = path.join(root, 'empty');
    fs.mkdirSync(dir);
    expect((await post(vm.id, { restorePointId: rp.id, mode: 'directory', directory: dir })).status).toBe(202);
    expect((await post(vm.id, { restorePointId: rp.id, mode: 'in-place' })).status).toBe(202);
  });

  it('POST restores: clear problem+json codes', async () => {
    const cases: Array<[string, unknown, number, string]> = [
      [vm.id, { restorePointId: rp.id, mode: 'sideways' }, 400, 'REQUEST.INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'in-place', extra: 1 }, 400, 'REQUEST.INVALID'],
      [randomUUID(), { restorePointId: rp.id, mode: 'in-place' }, 404, 'VM.NOT_FOUND'],
      [vm.id, { restorePointId: randomUUID(), mode: 'in-place' }, 404, 'RESTORE_POINT.NOT_FOUND'],
      [vm.id, { restorePointId: rp.id, mode: 'in-place', newName: 'x' }, 400, 'RESTORE.OPTIONS_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'new-vm' }, 400, 'RESTORE.NEW_NAME_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'new-vm', newName: 'a/b' }, 400, 'RESTORE.NEW_NAME_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'new-vm', newName: 'vm1' }, 400, 'RESTORE.NEW_NAME_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'new-vm', newName: 'x', hostId: randomUUID() }, 404, 'HOST.NOT_FOUND'],
      [vm.id, { restorePointId: rp.id, mode: 'directory' }, 400, 'RESTORE.DIRECTORY_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'directory', directory: path.join(root, 'missing') }, 400, 'RESTORE.DIRECTORY_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'directory', directory: diskDir }, 400, 'RESTORE.DIRECTORY_INVALID'],
      [vm.id, { restorePointId: rp.id, mode: 'directory', directory: 'relative/dir' }, 400, 'RESTORE.DIRECTORY_INVALID'],
    ];
    for (const [id, body, status, code] of cases) {
      const r = await post(id, body);
      expect({ status: r.status, code: r.body.code }, JSON.stringify(body)).toEqual({ status, code });
      expect(r.type).toContain('application/problem+json');
    }
  });

  it('GET …/disks/{target}/download streams the image: length, file name, exact bytes', async () => {
    const res = await fetch(`${url}/virtual-machines/${vm.id}/restore-points/${rp.id}/disks/vda/download`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-length')).toBe(String(24 * 1024 * 1024));
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="vm-_-vda.qcow2"; filename*=UTF-8''vm-%C3%A9-vda.qcow2`);
    const body = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(diskSha);
  });

  it('GET download of an unknown disk or restore point: 404 with a code', async () => {
    const a = await fetch(`${url}/virtual-machines/${vm.id}/restore-points/${rp.id}/disks/vdz/download`);
    expect(a.status).toBe(404);
    expect(((await a.json()) as { code: string }).code).toBe('RESTORE_POINT.DISK_NOT_FOUND');
    const b = await fetch(`${url}/virtual-machines/${vm.id}/restore-points/${randomUUID()}/disks/vda/download`);
    expect(((await b.json()) as { code: string }).code).toBe('RESTORE_POINT.NOT_FOUND');
  });

  it('GET download while another borg holds the repository: 409 BORG.REPOSITORY_LOCKED, not a cut 200', async () => {
    const env = { ...process.env, BORG_BASE_DIR: path.join(dataDir, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
    const holder = spawn('borg', ['with-lock', rp.repository, 'sleep', '15'], { env, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const res = await fetch(`${url}/virtual-machines/${vm.id}/restore-points/${rp.id}/disks/vda/download`);
      expect(res.status).toBe(409);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(((await res.json()) as { code: string }).code).toBe('BORG.REPOSITORY_LOCKED');
    } finally {
      holder.kill('SIGTERM');
      await new Promise((r) => holder.once('close', r));
    }
  });

  it('a client that disconnects mid-download stops borg', async () => {
    const spy = vi.spyOn(service, 'download');
    const ac = new AbortController();
    const res = await fetch(`${url}/virtual-machines/${vm.id}/restore-points/${rp.id}/disks/vda/download`, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const dl = (await spy.mock.results.at(-1)!.value) as DiskDownload;
    await expect(dl.done).rejects.toMatchObject({ code: 'TASK.CANCELED' });
    spy.mockRestore();
  });
});
