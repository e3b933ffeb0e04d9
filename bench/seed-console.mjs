#!/usr/bin/env node
/**
 * Console read-path benchmark (not part of the test suite): seeds 1,000 VMs (50 hosts, 10 pools,
 * 3 policies), 100,000 tasks over 90 days, 14,000 restore points and 30 days of storage usage
 * samples into SQLite and PostgreSQL, starts a real Backroll api (compiled server/dist) on each,
 * and measures p50/p95 over HTTP of: the dashboard, the VM table, tasks by kind, deep paging by
 * offset and by cursor, and GET /hosts while another client pages deep.
 *
 *   npm run build -w server && node bench/seed-console.mjs [--dialects sqlite,postgres] [--runs 30]
 *
 * PostgreSQL: BACKROLL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test); a schema
 * bench_console_<random> is created and dropped.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'server', 'dist');
const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const dialects = arg('--dialects', 'sqlite,postgres').split(',');
const RUNS = Number(arg('--runs', 30));
const VMS = 1000;
const HOSTS = 50;
const POOLS = 10;
const TASKS = 100_000;
const DAY = 86_400_000;

const { loadConfig } = await import(path.join(dist, 'config/config.js'));
const { startServer } = await import(path.join(dist, 'app/server.js'));
const { createMachineClient } = await import(path.join(dist, 'idp/index.js'));
const pino = (await import(path.join(here, '..', 'server', 'node_modules', 'pino', 'pino.js')).catch(() => import('pino'))).default;
const pg = (await import('pg').catch(() => import(path.join(here, '..', 'node_modules', 'pg', 'lib', 'index.js')))).default;

const iso = (ms) => new Date(ms).toISOString();
const pick = (a, i) => a[i % a.length];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function insertBatched(db, table, rows, size = 500) {
  for (let i = 0; i < rows.length; i += size) await db.insertInto(table).values(rows.slice(i, i + size)).execute();
}

async function seed(db, storageDir) {
  const now = Date.now();
  const t = iso(now);
  const storageId = randomUUID();
  await db.insertInto('storages').values({ id: storageId, name: 'bench', path: storageDir, created_at: t, updated_at: t }).execute();
  const policies = ['0 2 * * *', '0 */6 * * *', '30 1 * * 1-5'].map((schedule, i) => ({
    id: randomUUID(), name: `policy-${i}`, description: '', schedule, timezone: 'UTC', retention_daily: 7, retention_weekly: 4, retention_monthly: 3, retention_yearly: 0,
    storage_id: storageId, hook_id: null, enabled: i === 2 ? 0 : 1, quiesce: 'off', compression: 'lz4', encryption: 'none', created_at: t, updated_at: t,
  }));
  await insertBatched(db, 'policies', policies);
  const pools = Array.from({ length: POOLS }, (_, i) => ({ id: randomUUID(), name: `pool-${i}`, policy_id: pick(policies, i).id, connector_id: null, created_at: t, updated_at: t }));
  await insertBatched(db, 'pools', pools);
  const hosts = Array.from({ length: HOSTS }, (_, i) => ({
    id: randomUUID(), name: `kvm-${String(i).padStart(2, '0')}`, address: `10.0.0.${i + 1}`, ssh_port: 22, username: 'root', pool_id: pick(pools, i).id,
    tags: JSON.stringify([`rack${i % 5}`]), libvirt_uri: 'qemu:///system', host_key: null, host_key_fingerprint: `SHA256:${randomBytes(8).toString('hex')}`,
    connection_state: i % 17 === 0 ? 'failed' : 'connected', connection_error_code: i % 17 === 0 ? 'HOST.UNREACHABLE' : null, connection_message: null,
    last_seen_at: t, created_at: t, updated_at: t,
  }));
  await insertBatched(db, 'hosts', hosts);
  const disks = JSON.stringify([{ target: 'vda', type: 'file', path: '/var/lib/libvirt/images/x.qcow2' }]);
  const vms = Array.from({ length: VMS }, (_, i) => ({
    id: randomUUID(), host_id: pick(hosts, i).id, uuid: randomUUID(), name: `vm-${String(i).padStart(4, '0')}`, state: i % 10 === 0 ? 'shut off' : 'running',
    vcpus: 2, memory_bytes: 4 * 2 ** 30, disks, cloudstack_managed: 0, system_vm: i % 100 === 99 ? 1 : 0, present: 1, last_seen_at: t, created_at: t, updated_at: t,
  }));
  await insertBatched(db, 'virtual_machines', vms);
  const base = {
    target_type: null, target_id: null, parent_id: null, progress_percent: null, bytes_done: null, bytes_total: null, rate_bytes_per_second: null,
    result: null, error_code: null, error_message: null, attempts: 1, payload: null, progress_step: null, retry_of: null, resource_host_id: null,
    resource_storage_id: null, cancel_requested_at: null, lease_owner: null, lease_expires_at: null, schedule_run_id: null, awaiting_children: 0,
  };
  const tasks = [];
  for (let i = 0; i < TASKS; i++) {
    const created = now - Math.floor((i / TASKS) * 90 * DAY) - (i % 997);
    const r = i % 100;
    const kind = r < 85 ? 'vm.backup' : r < 92 ? 'pool.backup' : r < 96 ? 'repository.verify' : r < 98 ? 'vm.restore' : 'restore-point.delete';
    const state = i < 20 ? 'running' : r % 23 === 0 ? 'failed' : r % 41 === 0 ? 'canceled' : 'succeeded';
    const vm = pick(vms, i);
    tasks.push({
      ...base, id: randomUUID(), kind, state,
      target_type: kind === 'pool.backup' ? 'pool' : 'vm', target_id: kind === 'pool.backup' ? pick(pools, i).id : vm.id,
      started_by: i % 7 === 0 ? 'user:admin' : `schedule:${pick(policies, i).id}`,
      created_at: iso(created), started_at: iso(created + 1000), finished_at: state === 'running' ? null : iso(created + 300_000), updated_at: iso(created + 300_000),
      progress_percent: state === 'running' ? 40 : 100, bytes_total: 10 * 2 ** 30, bytes_done: state === 'running' ? 4 * 2 ** 30 : 10 * 2 ** 30,
      error_code: state === 'failed' ? 'BACKUP.FAILED' : null, lease_owner: state === 'running' ? 'bench' : null, lease_expires_at: state === 'running' ? iso(now + DAY) : null,
    });
  }
  await insertBatched(db, 'tasks', tasks);
  const rps = [];
  for (const vm of vms) {
    for (let d = 0; d < 14; d++) {
      const at = now - d * DAY - 3 * 3_600_000;
      rps.push({
        id: randomUUID(), vm_id: vm.id, storage_id: storageId, repository: `${storageDir}/${vm.name}`, epoch: Math.floor(at / 1000), archives: '[]',
        original_size: 10 * 2 ** 30, compressed_size: 6 * 2 ** 30, deduplicated_size: d === 13 ? 5 * 2 ** 30 : 200 * 2 ** 20, duration_ms: 120_000,
        task_id: null, created_at: iso(at), started_by: null, disks: null, source: 'backroll',
      });
    }
  }
  await insertBatched(db, 'restore_points', rps);
  const samples = Array.from({ length: 30 * 24 }, (_, i) => ({
    id: randomUUID(), storage_id: storageId, at: iso(now - (720 - i) * 3_600_000), capacity_bytes: 100 * 2 ** 40, used_bytes: 40 * 2 ** 40 + i * 2 ** 30,
    free_bytes: 60 * 2 ** 40 - i * 2 ** 30, backup_bytes: 1, original_bytes: 2,
  }));
  await insertBatched(db, 'storage_usage_samples', samples);
  return { tasks: tasks.length, vms: vms.length, restorePoints: rps.length };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function timeIt(fn, runs = RUNS) {
  await fn(); // warm-up
  const xs = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    xs.push(performance.now() - t0);
  }
  return { p50: pct(xs, 50), p95: pct(xs, 95) };
}

async function benchDialect(dialect) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-bench-console-'));
  const storageDir = path.join(tmp, 'storage');
  fs.mkdirSync(storageDir);
  let dbUrl;
  let dropSchema = async () => {};
  if (dialect === 'sqlite') dbUrl = `sqlite:${path.join(tmp, 'backroll.db')}`;
  else {
    const admin = process.env.BACKROLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `bench_console_${randomBytes(4).toString('hex')}`;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`create schema ${schema}`);
    await c.end();
    const u = new URL(admin);
    u.searchParams.set('options', `-c search_path=${schema}`);
    dbUrl = u.toString();
    dropSchema = async () => {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`drop schema if exists ${schema} cascade`);
      await d.end();
    };
  }
  const port = await freePort();
  const config = loadConfig({
    BACKROLL_DATA_DIR: path.join(tmp, 'data'),
    BACKROLL_HOST: '127.0.0.1',
    BACKROLL_PORT: String(port),
    BACKROLL_PUBLIC_URL: `http://127.0.0.1:${port}`,
    BACKROLL_DATABASE_URL: dbUrl,
    BACKROLL_LOG_LEVEL: 'silent',
    BACKROLL_INVENTORY_INTERVAL_SECONDS: '0',
    BACKROLL_STORAGE_SAMPLE_INTERVAL_SECONDS: '0',
  });
  const server = await startServer(config, { roles: ['api'], logger: pino({ level: 'silent' }), onAdminCreated: () => {} });
  try {
    const t0 = performance.now();
    const counts = await seed(server.db, storageDir);
    if (dialect === 'postgres') await server.db.executeQuery({ sql: 'analyze', parameters: [], query: { kind: 'RawNode' } }).catch(() => undefined);
    const seedSeconds = (performance.now() - t0) / 1000;
    const client = createMachineClient(config.dataDir, server.secretBox, 'bench', 'viewer');
    const tokenRes = await fetch(`${config.oidc.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api' }),
    });
    const token = (await tokenRes.json()).access_token;
    const base = `http://127.0.0.1:${port}/api/v2`;
    const get = async (p) => {
      const res = await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`${p}: ${res.status} ${await res.text()}`);
      return res.json();
    };
    // A cursor 90,000 tasks deep, to compare with offset=90000.
    const deep = await server.db.selectFrom('tasks').select(['created_at', 'id']).orderBy('created_at', 'desc').orderBy('id', 'desc').offset(90_000).limit(1).executeTakeFirst();
    const cursor = encodeURIComponent(`${deep.created_at},${deep.id}`);
    if (args.includes('--profile')) {
      const c = server.services.consoleReads;
      if (dialect === 'sqlite') {
        const { sql } = await import('kysely');
        const vm = await server.db.selectFrom('virtual_machines').select('id').limit(1).executeTakeFirst();
        const plan = async (q) => console.log((await q.execute(server.db)).rows.map((r) => r.detail).join(' | '));
        await plan(sql`explain query plan select (select t.state from tasks t where t.target_id = ${vm.id} and t.kind = 'vm.backup' and t.state in ('succeeded','failed','canceled','interrupted','partial') order by t.created_at desc limit 1 offset 2)`);
        await plan(sql`explain query plan select kind, state, count(*) from tasks where created_at >= '2026-11-20' group by state, kind`);
        const t0 = performance.now();
        for (let i = 0; i < 3; i++) await c.failingVms();
        console.log('failing x3', performance.now() - t0);
      }
      const now = new Date();
      const pol = await c.policies();
      for (const [name, fn] of Object.entries({
        protection: () => c.rows.protectionCounts(c.thresholds(pol, now)),
        matrix: () => c.taskMatrix(iso(Date.now() - 7 * DAY)),
        failing: () => c.failingVms(),
        hosts: () => c.hostIssues(),
        running: () => c.running(),
        storages: () => c.storageCards(now),
        nextRuns: () => c.nextRuns(pol, now),
        gettingStarted: () => c.gettingStarted(),
      })) console.log(name, await timeIt(fn, 10));
    }
    const results = {
      'GET /dashboard': await timeIt(() => get('/dashboard')),
      'GET /virtual-machines/rows (50, by name)': await timeIt(() => get('/virtual-machines/rows?limit=50')),
      'GET /virtual-machines/rows (at risk, by last backup desc)': await timeIt(() => get('/virtual-machines/rows?limit=50&protection=atRisk,unprotected&sort=-lastBackup')),
      'GET /tasks?kind=vm.restore': await timeIt(() => get('/tasks?kind=vm.restore&limit=50')),
      'GET /tasks?startedBy=user:admin': await timeIt(() => get('/tasks?startedBy=user:admin&limit=50')),
      'GET /tasks?offset=90000 (capped total)': await timeIt(() => get('/tasks?offset=90000&limit=50')),
      'GET /tasks?offset=90000&count=exact': await timeIt(() => get('/tasks?offset=90000&limit=50&count=exact')),
      'GET /tasks?before=<cursor 90,000 deep>': await timeIt(() => get(`/tasks?before=${cursor}&limit=50`)),
    };
    // GET /hosts while another client pages deep by offset with an exact count.
    let paging = true;
    const pager = (async () => {
      while (paging) await get('/tasks?offset=90000&limit=50&count=exact');
    })();
    results['GET /hosts while another client pages deep'] = await timeIt(() => get('/hosts?limit=50'));
    paging = false;
    await pager;
    results['GET /hosts alone'] = await timeIt(() => get('/hosts?limit=50'));
    return { dialect, counts, seedSeconds, results };
  } finally {
    await server.close();
    await dropSchema();
    if (args.includes('--keep')) console.log(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

for (const d of dialects) {
  const r = await benchDialect(d);
  console.log(`\n${d}: ${r.counts.vms} VMs, ${r.counts.tasks} tasks, ${r.counts.restorePoints} restore points (seeded in ${r.seedSeconds.toFixed(1)} s), ${RUNS} runs each`);
  console.log('| request | p50 ms | p95 ms |\n|---|---:|---:|');
  for (const [name, { p50, p95 }] of Object.entries(r.results)) console.log(`| ${name} | ${p50.toFixed(1)} | ${p95.toFixed(1)} |`);
}
