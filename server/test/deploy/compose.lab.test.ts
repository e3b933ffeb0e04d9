/**
 * deploy/compose.yaml for real, as an operator runs it: the Backroll image built from
 * deploy/docker/Dockerfile, `docker-compose up` with the CI override (PostgreSQL and Redis built
 * from Debian's packages: no registry is reachable), the api healthy, a sign-in through the
 * bundled OpenID provider (a machine client made with `backroll client create` inside the api
 * container), a lab host registered, a lab VM (a clone) backed up and restored in place by the
 * worker container, `--scale worker=2` with both workers taking work, `down -v`.
 *
 * Networking: the lab's sshd listens on the machine's 127.0.0.1:2222 only, which no container
 * reaches (its loopback is its own; `network_mode: host` would take the api and workers off the
 * compose network where `postgres` and `redis` resolve). The test relays the compose network's
 * gateway address (the machine's side of the bridge) to the lab sshd, so the containers reach the
 * "host" as they reach any remote hypervisor: a routed address and port. The relay listens only
 * on that bridge address, which exists only on this machine.
 *
 * Storage: the backup storage is a directory bind-mounted at the same path; the VM storage is
 * the lab host's home (where its disks and the clones live), bound at the same path into the
 * workers. The lab homes are 0700 and a restore gives the disk its original owner, so the
 * containers run as root here (BACKROLL_USER=0:0), as the compose docs say for such storage.
 *
 * The images come from scripts/ci/docker.sh: scripts/test-all.sh runs it in the background while
 * the main project runs (.test-results/docker-build.{log,status}); this test waits for it, or
 * runs it itself when no build was started.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { canaryPresent, lab, labHost, sshKeygenFingerprint, type LabHost } from '../../src/adapters/ssh/test-lab.js';
import { cloneVm, domState, HAVE_BORG, leftovers, rawSha, removeClone, scribble, type CloneVm } from '../../src/restores/restore-lab-fixtures.js';
import { authorize, unauthorize } from '../support/lab-keys.js';
import { freePort } from '../support/ports.js';
import { clientCredentialsToken } from '../support/server.js';
import { describeWhenAvailable } from '../support/unavailable.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const DEPLOY = path.join(ROOT, 'deploy');
const RESULTS = path.join(ROOT, '.test-results');
const BUILD_LOG = path.join(RESULTS, 'docker-build.log');
const BUILD_STATUS = path.join(RESULTS, 'docker-build.status');
const DOCKER = fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const IMAGE = process.env.BACKROLL_IMAGE ?? 'backroll:local';
/** Debian's docker-compose 1.29 where installed, else Compose v2 (`docker compose`). */
const COMPOSE: string[] = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0 ? ['docker-compose'] : [DOCKER, 'compose'];

function unavailable(): string | null {
  if (!lab) return 'no KVM lab (scripts/lab/up.sh)';
  if (!HAVE_BORG) return 'borg is not installed';
  if (process.getuid?.() !== 0) return 'needs root (dockerd, the lab host storage bound into the workers)';
  // A build started by test-all: wait for it in beforeAll (its failure fails the test).
  if (fs.existsSync(BUILD_LOG)) return null;
  const info = spawnSync(DOCKER, ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8' });
  if (info.status !== 0) return `docker is unavailable (${(info.stderr || info.error?.message || '').trim().split('\n')[0]}): run scripts/ci/docker.sh as root`;
  if (spawnSync(COMPOSE[0]!, [...COMPOSE.slice(1), 'version'], { encoding: 'utf8' }).status !== 0) return 'neither docker-compose nor `docker compose` is installed';
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function check(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.error?.message}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

let images: Promise<void> | undefined;
/** The images: the background build of test-all, or scripts/ci/docker.sh run here (once per file). */
const ensureImages = () => (images ??= buildOrWaitForImages());
async function buildOrWaitForImages(): Promise<void> {
  if (fs.existsSync(BUILD_LOG)) {
    const deadline = Date.now() + 30 * 60_000;
    const pidFile = path.join(RESULTS, 'docker-build.pid');
    const alive = () => {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 0);
        return true;
      } catch {
        return false;
      }
    };
    while (!fs.existsSync(BUILD_STATUS)) {
      if (Date.now() > deadline) throw new Error(`the background docker build (${BUILD_LOG}) did not end within 30 minutes`);
      if (!alive() && !fs.existsSync(BUILD_STATUS)) throw new Error(`the background docker build (${BUILD_LOG}) ended without a status (interrupted?)`);
      await sleep(2000);
    }
    const status = fs.readFileSync(BUILD_STATUS, 'utf8').trim();
    if (status !== '0') throw new Error(`scripts/ci/docker.sh failed (exit ${status}):\n${fs.readFileSync(BUILD_LOG, 'utf8').split('\n').slice(-40).join('\n')}`);
    return;
  }
  // Idempotent: with the images in place only the build cache is checked.
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn('bash', [path.join(ROOT, 'scripts/ci/docker.sh')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
  if (r.code !== 0) throw new Error(`scripts/ci/docker.sh failed:\n${r.out.split('\n').slice(-40).join('\n')}`);
}

/** The containers' logs of a run, for whoever reads a failure: .test-results/compose-<project>.log. */
function saveLogs(r: SpawnSyncReturns<string>, project: string): void {
  fs.mkdirSync(RESULTS, { recursive: true });
  // The api prints the first admin password once on its console: not into a file.
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.replace(/(password:\s+)\S+/g, '$1[not kept]');
  fs.writeFileSync(path.join(RESULTS, `compose-${project}.log`), text);
}

/** Forwards connections to `bindHost:<ephemeral>` to the lab sshd on loopback. */
function relay(bindHost: string, toHost: string, toPort: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((inbound) => {
    const outbound = net.connect(toPort, toHost);
    sockets.add(inbound).add(outbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, bindHost, () =>
      resolve({
        port: (srv.address() as net.AddressInfo).port,
        close: () => {
          for (const s of sockets) s.destroy();
          srv.close();
        },
      }),
    );
  });
}

interface Api {
  status: number;
  body: any;
  text: string;
}

describeWhenAvailable('docker compose deployment (deploy/compose.yaml + compose.ci.yaml) on the KVM lab', unavailable(), () => {
  const tag = randomBytes(3).toString('hex');
  const project = `backrollci${tag}`;
  const work = path.join('/var/tmp', `backroll-compose-${tag}`);
  const storage = path.join(work, 'storage-1');
  let h: LabHost;
  let port: number;
  let url: string;
  let env: NodeJS.ProcessEnv;
  let token: string;
  let gateway: string;
  let sshRelay: { port: number; close(): void } | undefined;
  let hostId: string;
  const clones: CloneVm[] = [];
  const vmIds = new Map<string, string>();
  let authorized: string[] = [];
  let composeUp = false;

  const compose = (args: string[], timeout = 300_000) =>
    spawnSync(COMPOSE[0]!, [...COMPOSE.slice(1), '-p', project, '-f', path.join(DEPLOY, 'compose.yaml'), '-f', path.join(DEPLOY, 'compose.ci.yaml'), ...args], {
      cwd: DEPLOY,
      env,
      encoding: 'utf8',
      timeout,
    });
  const docker = (args: string[]) => spawnSync(DOCKER, args, { encoding: 'utf8', timeout: 60_000 });
  const containers = (service: string) =>
    check(compose(['ps', '-q', service]), `compose ps ${service}`)
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);

  const api = async (method: string, p: string, body?: unknown): Promise<Api> => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: any = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, text };
  };
  const waitTask = async (id: string) => {
    for (let i = 0; i < 480; i++) {
      const r = await api('GET', `/api/v2/tasks/${id}`);
      if (['succeeded', 'failed', 'canceled', 'interrupted', 'partial'].includes(r.body?.state)) return r.body;
      await sleep(500);
    }
    throw new Error(`task ${id} did not end`);
  };
  /** The worker (`<container hostname>:<pid>:<random>`) that ran a task, from the task's log. */
  const workerOf = async (taskId: string): Promise<string> => {
    const log = await api('GET', `/api/v2/tasks/${taskId}/log`);
    expect(log.status, log.text).toBe(200);
    const m = /started on (\S+) \(attempt/.exec(log.text);
    expect(m, log.text).not.toBeNull();
    return m![1]!;
  };
  /** The owners the worker containers announced ("worker started"), by container id. */
  const announcedWorkers = (): Map<string, string> => {
    const out = new Map<string, string>();
    for (const id of containers('worker')) {
      const logs = docker(['logs', id]);
      for (const line of `${logs.stdout}\n${logs.stderr}`.split('\n')) {
        if (!line.includes('"worker started"')) continue;
        out.set(id, (JSON.parse(line) as { worker: string }).worker);
      }
    }
    return out;
  };

  beforeAll(async () => {
    h = labHost(lab!, 'kvmhost1');
    expect(canaryPresent(lab!)).toEqual([]);
    await ensureImages();
    fs.mkdirSync(storage, { recursive: true, mode: 0o700 });
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // Everything else from deploy/.env.example's variables; no deploy/.env is read (none exists in CI).
      POSTGRES_PASSWORD: randomBytes(18).toString('hex'),
      BACKROLL_IMAGE: IMAGE,
      BACKROLL_HTTP_BIND: '127.0.0.1',
      BACKROLL_HTTP_PORT: String(port),
      BACKROLL_PUBLIC_URL: url,
      BACKROLL_STORAGE_PATH: storage,
      BACKROLL_VM_STORAGE_PATH: h.home,
      BACKROLL_USER: '0:0',
      // One task at a time per worker container: a second task has to go to the second worker.
      BACKROLL_WORKER_CONCURRENCY: '1',
    };
    const up = compose(['up', '-d', '--no-build'], 600_000);
    composeUp = true;
    check(up, 'compose up');
  }, 45 * 60_000);

  afterAll(async () => {
    sshRelay?.close();
    if (composeUp) {
      saveLogs(compose(['logs', '--no-color', '--timestamps']), project);
      const down = compose(['down', '-v', '--remove-orphans', '--timeout', '30']);
      if (down.status !== 0) console.error(down.stdout, down.stderr);
    }
    for (const c of clones) removeClone(h, c);
    if (authorized.length) unauthorize([h.home], authorized);
    fs.rmSync(work, { recursive: true, force: true });
    expect(canaryPresent(lab!)).toEqual([]);
    if (composeUp) {
      // down -v removed the containers, the network and the named volumes (data dir, database, queue).
      expect(check(docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]), 'docker ps').trim()).toBe('');
      expect(check(docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]), 'docker volume ls').trim()).toBe('');
      expect(check(docker(['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]), 'docker network ls').trim()).toBe('');
    }
  }, 180_000);

  it('the image: Node 24, non-root by default, version and commit labels, tools of the worker', () => {
    const inspect = JSON.parse(check(docker(['image', 'inspect', IMAGE]), 'image inspect'))[0];
    const labels = inspect.Config.Labels as Record<string, string>;
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'server/package.json'), 'utf8')) as { version: string };
    expect(labels['org.opencontainers.image.version']).toBe(pkg.version);
    expect(labels['org.opencontainers.image.revision']).toMatch(/^[0-9a-f]{40}$|^unknown$/);
    expect(inspect.Config.User).toBe('backroll');
    expect(inspect.Config.Healthcheck.Test.join(' ')).toContain('/api/health');
    const run = (...argv: string[]) => check(docker(['run', '--rm', '--entrypoint', argv[0]!, IMAGE, ...argv.slice(1)]), argv.join(' '));
    expect(run('node', '--version').trim()).toMatch(/^v24\./);
    expect(run('id', '-u').trim()).toBe('10001');
    const tools = run('sh', '-c', 'borg --version && qemu-img --version | head -n1 && virsh --version && ssh -V 2>&1');
    expect(tools).toMatch(/^borg 1\./m);
    expect(tools).toMatch(/qemu-img version/);
    expect(tools).toMatch(/OpenSSH/);
    expect(run('backroll', '--version').trim()).toBe(pkg.version);
  }, 120_000);

  it('up: the api is healthy (docker healthcheck and GET /api/health) with one worker', async () => {
    const [apiId] = containers('api');
    expect(apiId).toBeDefined();
    // depends_on: service_healthy made `up` wait for the api's healthcheck before starting the worker.
    expect(check(docker(['inspect', '-f', '{{.State.Health.Status}}', apiId!]), 'inspect').trim()).toBe('healthy');
    expect(check(docker(['inspect', '-f', '{{.HostConfig.Init}}', apiId!]), 'inspect').trim()).toBe('true');
    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ checks: { database: 'ok' } });
    expect(containers('worker')).toHaveLength(1);
    // Every other route needs a token.
    expect((await fetch(`${url}/api/v2/hosts`)).status).toBe(401);
  }, 120_000);

  it('signs in through the bundled provider with a machine client made in the api container', async () => {
    const out = check(compose(['exec', '-T', 'api', 'backroll', 'client', 'create', `compose-${tag}`, '--role', 'admin']), 'backroll client create');
    const clientId = /client_id:\s+(\S+)/.exec(out)?.[1];
    const secret = /client_secret:\s+(\S+)/.exec(out)?.[1];
    expect(clientId && secret, out).toBeTruthy();
    token = await clientCredentialsToken(`${url}/oidc`, clientId!, secret!);
    const me = await api('GET', '/api/v2/hosts');
    expect(me.status, me.text).toBe(200);
  }, 60_000);

  it('registers a lab host reached from the compose network and lists its VMs', async () => {
    const net = JSON.parse(check(docker(['network', 'inspect', `${project}_default`]), 'network inspect'))[0];
    gateway = net.IPAM.Config[0].Gateway;
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    sshRelay = await relay(gateway, lab!.sshHost, lab!.sshPort);

    const keys = await api('GET', '/api/v2/ssh/public-keys');
    expect(keys.status, keys.text).toBe(200);
    authorized = keys.body.keys.map((k: { authorizedKeysLine: string }) => k.authorizedKeysLine);
    authorize(authorized);

    const st = await api('POST', '/api/v2/storages', { name: 'compose', path: storage });
    expect(st.status, st.text).toBe(201);
    const pol = await api('POST', '/api/v2/policies', {
      name: 'compose',
      schedule: '0 3 * * *',
      enabled: false,
      retention: { daily: 3, weekly: 0, monthly: 0, yearly: 0 },
      storageId: st.body.id,
      encryption: 'repokey',
      compression: 'lz4',
      quiesce: 'off',
    });
    expect(pol.status, pol.text).toBe(201);
    const pool = await api('POST', '/api/v2/pools', { name: 'compose', policyId: pol.body.id });
    expect(pool.status, pool.text).toBe(201);
    const host = await api('POST', '/api/v2/hosts', { name: h.name, address: gateway, sshPort: sshRelay.port, username: h.user, libvirtUri: h.libvirtUri, poolId: pool.body.id });
    expect(host.status, host.text).toBe(201);
    hostId = host.body.id;
    const conn = await api('POST', `/api/v2/hosts/${hostId}/connect`);
    expect(conn.status, conn.text).toBe(200);
    expect(conn.body.connection.state).toBe('connected');
    // The key pinned on first use is the lab sshd's own (the relay only forwards bytes).
    expect(conn.body.hostKeyFingerprint).toBe(sshKeygenFingerprint(lab!.hostKeyPath));

    // Shut-off clones of a lab VM (the lab's own VMs stay untouched); their disks are in the host's home.
    for (const i of [1, 2, 3]) clones.push(cloneVm(lab!, h, 'vm-stopped', `compose-${tag}-${i}`, `cmp${tag}${i}`, false));
    const refresh = await api('POST', `/api/v2/hosts/${hostId}/refresh`);
    expect(refresh.status, refresh.text).toBe(200);
    const vms = await api('GET', `/api/v2/virtual-machines?hostId=${hostId}&limit=500`);
    expect(vms.status, vms.text).toBe(200);
    for (const c of clones) {
      const vm = vms.body.items.find((v: { uuid: string }) => v.uuid === c.uuid);
      expect(vm, `${c.name} in ${vms.text}`).toBeDefined();
      vmIds.set(c.uuid, vm.id);
    }
  }, 120_000);

  it('backs up and restores a lab VM in place through the worker container', async () => {
    const vm = clones[0]!;
    const vmId = vmIds.get(vm.uuid)!;
    const atBackup = rawSha(vm.disks[0]!.path);
    const b = await api('POST', `/api/v2/virtual-machines/${vmId}/backups`);
    expect(b.status, b.text).toBe(202);
    const bt = await waitTask(b.body.id);
    expect(bt.state, JSON.stringify(bt.error)).toBe('succeeded');
    // Run by the worker container, not the api.
    const workers = announcedWorkers();
    expect([...workers.values()]).toContain(await workerOf(b.body.id));
    // The repository is on the bind-mounted storage, at the same path as on the machine.
    expect(fs.existsSync(path.join(storage, vm.name, 'config'))).toBe(true);
    const rps = await api('GET', `/api/v2/virtual-machines/${vmId}/restore-points`);
    expect(rps.body.items).toHaveLength(1);
    expect(rps.body.items[0].repository).toBe(path.join(storage, vm.name));

    scribble(h, vm, 'vda', false, '0xc7');
    expect(rawSha(vm.disks[0]!.path)).not.toBe(atBackup);
    const owner = fs.statSync(vm.disks[0]!.path);
    const r = await api('POST', `/api/v2/virtual-machines/${vmId}/restores`, { restorePointId: rps.body.items[0].id, mode: 'in-place' });
    expect(r.status, r.text).toBe(202);
    const rt = await waitTask(r.body.id);
    expect(rt.state, JSON.stringify(rt.error)).toBe('succeeded');
    expect(rt.progress.percent).toBe(100);
    expect([...workers.values()]).toContain(await workerOf(r.body.id));
    // The guest's disk is the backed-up one again, owned as before, with nothing left beside it.
    expect(rawSha(vm.disks[0]!.path)).toBe(atBackup);
    const after = fs.statSync(vm.disks[0]!.path);
    expect([after.uid, after.gid]).toEqual([owner.uid, owner.gid]);
    expect(domState(h, vm.uuid)).toBe('shut off');
    expect(leftovers(vm.dir)).toEqual([]);
  }, 300_000);

  it('--scale worker=2: both worker containers take work', async () => {
    check(compose(['up', '-d', '--no-build', '--scale', 'worker=2'], 600_000), 'compose up --scale worker=2');
    expect(containers('worker')).toHaveLength(2);
    // Both have connected to the queue before the work is submitted.
    let workers = announcedWorkers();
    for (let i = 0; i < 120 && workers.size < 2; i++) {
      await sleep(500);
      workers = announcedWorkers();
    }
    expect(workers.size).toBe(2);

    // Two VMs at once; each worker takes one task at a time (BACKROLL_WORKER_CONCURRENCY=1).
    const submitted = await Promise.all(clones.slice(1).map((c) => api('POST', `/api/v2/virtual-machines/${vmIds.get(c.uuid)}/backups`)));
    for (const s of submitted) expect(s.status, s.text).toBe(202);
    const ran = new Set<string>();
    for (const s of submitted) {
      const t = await waitTask(s.body.id);
      expect(t.state, JSON.stringify(t.error)).toBe('succeeded');
      ran.add(await workerOf(s.body.id));
    }
    expect([...ran].sort()).toEqual([...workers.values()].sort());
    for (const c of clones.slice(1)) {
      const rps = await api('GET', `/api/v2/virtual-machines/${vmIds.get(c.uuid)}/restore-points`);
      expect(rps.body.items, c.name).toHaveLength(1);
    }
  }, 300_000);
});

/**
 * deploy/compose.mariadb.yaml with its CI override (MariaDB from Debian's packages), as the
 * default non-root user: up, healthy on MariaDB, a sign-in, a storage the `backroll` user may
 * write (and one it may not), the provider's state kept in the data volume across a restart, `down -v`.
 */
describeWhenAvailable('docker compose deployment, MariaDB variant (deploy/compose.mariadb.yaml + compose.mariadb.ci.yaml)', unavailable(), () => {
  const tag = randomBytes(3).toString('hex');
  const project = `backrollci${tag}`;
  const work = path.join('/var/tmp', `backroll-compose-${tag}`);
  const storage = path.join(work, 'storage-1');
  const rootOnly = path.join(work, 'root-only');
  let url: string;
  let env: NodeJS.ProcessEnv;
  let composeUp = false;
  let client: { id: string; secret: string };

  const compose = (args: string[], timeout = 300_000) =>
    spawnSync(COMPOSE[0]!, [...COMPOSE.slice(1), '-p', project, '-f', path.join(DEPLOY, 'compose.mariadb.yaml'), '-f', path.join(DEPLOY, 'compose.mariadb.ci.yaml'), ...args], {
      cwd: DEPLOY,
      env,
      encoding: 'utf8',
      timeout,
    });
  const docker = (args: string[]) => spawnSync(DOCKER, args, { encoding: 'utf8', timeout: 60_000 });
  const call = async (token: string, method: string, p: string, body?: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    await ensureImages();
    // The bound storage and its `repos` belong to the image's `backroll` user (uid 10001); beside
    // them a directory of root's, and one that is not bound into the containers at all.
    fs.mkdirSync(path.join(storage, 'repos'), { recursive: true, mode: 0o700 });
    fs.chownSync(storage, 10001, 10001);
    fs.chownSync(path.join(storage, 'repos'), 10001, 10001);
    fs.mkdirSync(path.join(storage, 'root-owned'), { mode: 0o755 });
    fs.mkdirSync(rootOnly, { mode: 0o700 });
    fs.mkdirSync(path.join(work, 'vms'), { mode: 0o700 });
    fs.chownSync(path.join(work, 'vms'), 10001, 10001);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MARIADB_PASSWORD: randomBytes(18).toString('hex'),
      MARIADB_ROOT_PASSWORD: randomBytes(18).toString('hex'),
      BACKROLL_IMAGE: IMAGE,
      BACKROLL_HTTP_BIND: '127.0.0.1',
      BACKROLL_HTTP_PORT: String(port),
      BACKROLL_PUBLIC_URL: url,
      BACKROLL_STORAGE_PATH: storage,
      BACKROLL_VM_STORAGE_PATH: path.join(work, 'vms'),
    };
    composeUp = true;
    check(compose(['up', '-d', '--no-build'], 600_000), 'compose up (MariaDB)');
  }, 45 * 60_000);

  afterAll(() => {
    if (composeUp) {
      saveLogs(compose(['logs', '--no-color', '--timestamps']), project);
      const down = compose(['down', '-v', '--remove-orphans', '--timeout', '30']);
      if (down.status !== 0) console.error(down.stdout, down.stderr);
    }
    fs.rmSync(work, { recursive: true, force: true });
    if (composeUp) {
      expect(check(docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]), 'docker ps').trim()).toBe('');
      expect(check(docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]), 'docker volume ls').trim()).toBe('');
    }
  }, 180_000);

  it('runs as the non-root user on MariaDB: healthy, sign-in, a writable storage accepted and a root-only one refused', async () => {
    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ checks: { database: 'ok' } });
    for (const service of ['api', 'worker']) {
      const id = check(compose(['ps', '-q', service]), 'compose ps').trim();
      expect(check(docker(['exec', id, 'id', '-u']), 'id').trim(), service).toBe('10001');
    }
    // The api's database is MariaDB (the URL names the mariadb service; the password is masked).
    const cfg = JSON.parse(check(compose(['exec', '-T', 'api', 'backroll', 'config', 'check']), 'config check'));
    expect(cfg.database).toMatchObject({ dialect: 'mysql', url: expect.stringMatching(/^mysql:\/\/backroll:\*+@mariadb:3306\/backroll$/) });

    const out = check(compose(['exec', '-T', 'api', 'backroll', 'client', 'create', `compose-${tag}`, '--role', 'admin']), 'backroll client create');
    client = { id: /client_id:\s+(\S+)/.exec(out)![1]!, secret: /client_secret:\s+(\S+)/.exec(out)![1]! };
    const token = await clientCredentialsToken(`${url}/oidc`, client.id, client.secret);
    const ok = await call(token, 'POST', '/api/v2/storages', { name: 'one', path: path.join(storage, 'repos') });
    expect(ok.status, ok.text).toBe(201);
    // Not bound into the container: the api says so with its stable code.
    const missing = await call(token, 'POST', '/api/v2/storages', { name: 'two', path: rootOnly });
    expect(missing.status, missing.text).toBe(400);
    expect(missing.body.code).toBe('STORAGE.PATH_NOT_FOUND');
    // Bound, but root's: the `backroll` user may not write it.
    const denied = await call(token, 'POST', '/api/v2/storages', { name: 'three', path: path.join(storage, 'root-owned') });
    expect(denied.status, denied.text).toBe(400);
    expect(denied.body.code).toBe('STORAGE.PATH_NOT_WRITABLE');
  }, 120_000);

  it('the data volume keeps the keys and the provider state across a restart of the api', async () => {
    check(compose(['restart', 'api'], 180_000), 'compose restart api');
    let health = 0;
    for (let i = 0; i < 120 && health !== 200; i++) {
      health = await fetch(`${url}/api/health`).then((r) => r.status, () => 0);
      if (health !== 200) await sleep(500);
    }
    expect(health).toBe(200);
    const token = await clientCredentialsToken(`${url}/oidc`, client.id, client.secret);
    const list = await call(token, 'GET', '/api/v2/storages');
    expect(list.status, list.text).toBe(200);
    expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['one']);
  }, 240_000);
});
