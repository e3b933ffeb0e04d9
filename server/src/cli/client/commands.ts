import path from 'node:path';
import type { Command } from 'commander';
import { ApiClient, CliError, settingsFromEnv } from './api-client.js';
import { EXIT, exitCodeForTaskState, formatBytes, progressLine, readSummary, table, type ProgressLike, type ReadLike } from './format.js';

interface Task {
  id: string;
  kind: string;
  state: string;
  target: { type: string; id: string | null } | null;
  progress: ProgressLike;
  error: { code: string; message: string } | null;
  result: unknown;
  startedBy: string | null;
  createdAt: string;
  finishedAt: string | null;
}
interface Page<T> {
  items: T[];
  total: number;
}
interface Vm {
  id: string;
  name: string;
  uuid: string;
  state: string;
  hostId: string;
  present?: boolean;
  systemVm?: boolean;
}
interface Host {
  id: string;
  name: string;
  address: string;
  sshPort: number;
  username: string;
  poolId: string | null;
  diskAccess?: string;
  connection: { state: string; errorCode: string | null };
}
/** How backups read a host's VM disks (the host's `diskAccess`; docs/incremental.md, "Reading over SSH"). */
export const DISK_ACCESS = ['auto', 'mount', 'ssh'] as const;
interface RestorePoint {
  id: string;
  epoch: number;
  createdAt: string;
}

const FINAL = new Set(['succeeded', 'failed', 'canceled', 'interrupted', 'partial']);
const out = (s: string) => process.stdout.write(`${s}\n`);
const client = () => new ApiClient(settingsFromEnv(process.env));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A task reference in a 202 answer: the task itself or `{ task }`. */
const taskOf = (body: unknown): Task => ((body as { task?: Task }).task ?? body) as Task;

async function findVm(api: ApiClient, ref: string): Promise<Vm> {
  if (/^[0-9a-f-]{36}$/i.test(ref)) {
    try {
      return await api.request<Vm>('GET', `/api/v2/virtual-machines/${ref}`);
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.notFound) throw err;
    }
  }
  const page = await api.request<Page<Vm>>('GET', `/api/v2/virtual-machines?name=${encodeURIComponent(ref)}&limit=500`);
  const exact = page.items.filter((v) => v.name === ref || v.uuid === ref);
  if (exact.length === 1) return exact[0]!;
  if (exact.length > 1) throw new CliError(`several VMs are named "${ref}" (on different hosts): use its id (${exact.map((v) => v.id).join(', ')})`, EXIT.usage);
  throw new CliError(`no VM named "${ref}" in the inventory; run \`backroll vm list\` (or refresh the inventory)`, EXIT.notFound);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A host by id or name; a name that matches no host is tried as an address (ambiguous when several hosts share it). */
async function findHost(api: ApiClient, ref: string): Promise<Host> {
  if (UUID.test(ref)) {
    try {
      return await api.request<Host>('GET', `/api/v2/hosts/${ref}`);
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.notFound) throw err;
    }
  }
  const page = await api.request<Page<Host>>('GET', `/api/v2/hosts?limit=500`);
  const named = page.items.filter((h) => h.name === ref);
  const matches = named.length > 0 ? named : page.items.filter((h) => h.address === ref);
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw new CliError(`several hosts have the address "${ref}": use the name or id of one (${matches.map((h) => `${h.name} ${h.id}`).join(', ')})`, EXIT.usage);
  }
  throw new CliError(`no host named "${ref}"; list them with \`backroll host list\``, EXIT.notFound);
}

async function findRestorePoint(api: ApiClient, vm: Vm, ref: string): Promise<RestorePoint> {
  const page = await api.request<Page<RestorePoint>>('GET', `/api/v2/virtual-machines/${vm.id}/restore-points`);
  const sorted = [...page.items].sort((a, b) => b.epoch - a.epoch);
  const rp = ref === 'latest' ? sorted[0] : sorted.find((r) => r.id === ref || String(r.epoch) === ref);
  if (!rp) throw new CliError(`VM "${vm.name}" has no restore point "${ref}"; list them with \`backroll vm restore-points ${vm.name}\``, EXIT.notFound);
  return rp;
}

/**
 * Follows a task to its end with a progress bar (a redrawn line on a terminal, a line
 * every few seconds otherwise). Ctrl-C once asks the server to cancel; twice leaves.
 */
export async function waitForTask(api: ApiClient, id: string): Promise<number> {
  const tty = process.stderr.isTTY === true;
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\ncanceling the task (Ctrl-C again to stop waiting)…\n');
      void api.request('POST', `/api/v2/tasks/${id}/cancel`).catch(() => undefined);
    } else process.exit(EXIT.canceled);
  };
  process.on('SIGINT', onSigint);
  let lastPrinted = 0;
  try {
    for (;;) {
      const task = await api.request<Task>('GET', `/api/v2/tasks/${id}`);
      const line = progressLine(task.state, task.progress);
      if (tty) process.stderr.write(`\r\u001b[2K${line}`);
      else if (Date.now() - lastPrinted > 5000 || FINAL.has(task.state)) {
        process.stderr.write(`${line}\n`);
        lastPrinted = Date.now();
      }
      if (FINAL.has(task.state)) {
        if (tty) process.stderr.write('\n');
        if (task.error) process.stderr.write(`${task.error.code}: ${task.error.message}\n`);
        out(`task ${task.id} ${task.state}`);
        return exitCodeForTaskState(task.state);
      }
      await sleep(1000);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function started(api: ApiClient, body: unknown, wait: boolean): Promise<number> {
  const task = taskOf(body);
  out(`task ${task.id} ${task.state} (${task.kind})`);
  return wait ? waitForTask(api, task.id) : EXIT.ok;
}

/** Runs a command body and turns errors into a message and an exit code. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>) {
  return async (...args: A) => {
    try {
      process.exitCode = (await fn(...args)) ?? EXIT.ok;
    } catch (err) {
      if (err instanceof CliError) {
        process.stderr.write(`backroll: ${err.message}\n`);
        process.exitCode = err.exitCode;
        return;
      }
      throw err;
    }
  };
}

export function registerClientCommands(program: Command): void {
  const vm = program.command('vm').description('virtual machines (API client: BACKROLL_URL, BACKROLL_TOKEN or BACKROLL_CLIENT_ID/SECRET)');
  vm.command('list')
    .description('list the inventory')
    .option('--host <hostId>', 'only this host')
    .option('--state <state>', 'only VMs in this state')
    .option('--all', 'include CloudStack system VMs and VMs that disappeared')
    .action(
      action(async (opts: { host?: string; state?: string; all?: boolean }) => {
        const q = new URLSearchParams({ limit: '500' });
        if (opts.host) q.set('hostId', opts.host);
        if (opts.state) q.set('state', opts.state);
        if (opts.all) q.set('includeSystem', 'true');
        const page = await client().request<Page<Vm>>('GET', `/api/v2/virtual-machines?${q}`);
        out(table(['ID', 'NAME', 'STATE', 'UUID'], page.items.map((v) => [v.id, v.name, v.present === false ? `${v.state} (gone)` : v.state, v.uuid])));
        if (page.total > page.items.length) out(`(${page.items.length} of ${page.total})`);
      }),
    );
  vm.command('restore-points <vm>')
    .description('list the restore points of a VM (READ: incremental or full, bytes read of the disk size, why full)')
    .action(
      action(async (ref: string) => {
        const api = client();
        const v = await findVm(api, ref);
        const page = await api.request<Page<RestorePoint & { originalSize?: number; deduplicatedSize?: number; read?: ReadLike }>>('GET', `/api/v2/virtual-machines/${v.id}/restore-points`);
        out(table(['ID', 'EPOCH', 'CREATED', 'SIZE', 'DEDUPLICATED', 'READ'], page.items.map((r) => [r.id, r.epoch, r.createdAt, formatBytes(r.originalSize), formatBytes(r.deduplicatedSize), readSummary(r.read)])));
      }),
    );

  const host = program.command('host').description('KVM hosts (API client)');
  host
    .command('list')
    .description('list the hosts: address, pool, connection state and how backups read their disks')
    .option('--pool <pool>', 'only the hosts of this pool (name or id)')
    .action(
      action(async (opts: { pool?: string }) => {
        const api = client();
        const pools = await api.request<Page<{ id: string; name: string }>>('GET', `/api/v2/pools?limit=500`);
        const q = new URLSearchParams({ limit: '500' });
        if (opts.pool !== undefined) {
          const pool = pools.items.find((p) => p.id === opts.pool || p.name === opts.pool);
          if (!pool) throw new CliError(`no pool "${opts.pool}"`, EXIT.notFound);
          q.set('poolId', pool.id);
        }
        const page = await api.request<Page<Host>>('GET', `/api/v2/hosts?${q}`);
        const poolName = (id: string | null) => pools.items.find((p) => p.id === id)?.name ?? id ?? '';
        out(
          table(
            ['ID', 'NAME', 'ADDRESS', 'POOL', 'STATE', 'DISK ACCESS'],
            page.items.map((h) => [
              h.id,
              h.name,
              `${h.username}@${h.address}${h.sshPort === 22 ? '' : `:${h.sshPort}`}`,
              poolName(h.poolId),
              h.connection.errorCode ? `${h.connection.state} (${h.connection.errorCode})` : h.connection.state,
              h.diskAccess ?? '?',
            ]),
          ),
        );
        if (page.total > page.items.length) out(`(${page.items.length} of ${page.total})`);
      }),
    );
  host
    .command('set <host>')
    .description('change a host (name or id): how backups read its VM disks')
    .option('--disk-access <mode>', 'auto (mounted storage when every disk is readable on the worker, else SSH) | mount (the VM storage is mounted on the worker at the host\'s paths) | ssh (through the host: qcow2 disks without backing file)')
    .action(
      action(async (ref: string, opts: { diskAccess?: string }) => {
        if (opts.diskAccess === undefined) throw new CliError(`nothing to change: give --disk-access <${DISK_ACCESS.join('|')}>`, EXIT.usage);
        if (!(DISK_ACCESS as readonly string[]).includes(opts.diskAccess)) {
          throw new CliError(`--disk-access must be one of ${DISK_ACCESS.join(', ')} (got "${opts.diskAccess}")`, EXIT.usage);
        }
        const api = client();
        const h = await findHost(api, ref);
        const saved = await api.request<Host>('PATCH', `/api/v2/hosts/${h.id}`, { diskAccess: opts.diskAccess });
        out(`host ${saved.name}: disk access ${h.diskAccess ?? '?'} -> ${saved.diskAccess ?? '?'}`);
      }),
    );

  program
    .command('backup <vm>')
    .description('back up one VM now (name, uuid or id)')
    .option('--wait', 'follow the task with a progress bar until it ends')
    .action(
      action(async (ref: string, opts: { wait?: boolean }) => {
        const api = client();
        const v = await findVm(api, ref);
        return started(api, await api.request('POST', `/api/v2/virtual-machines/${v.id}/backups`, {}), opts.wait === true);
      }),
    );

  program
    .command('pool')
    .description('pools')
    .command('backup <pool>')
    .description('back up every eligible VM of a pool now (name or id)')
    .option('--wait', 'follow the task until it ends')
    .action(
      action(async (ref: string, opts: { wait?: boolean }) => {
        const api = client();
        const pools = await api.request<Page<{ id: string; name: string }>>('GET', `/api/v2/pools?limit=500`);
        const pool = pools.items.find((p) => p.id === ref || p.name === ref);
        if (!pool) throw new CliError(`no pool "${ref}"`, EXIT.notFound);
        return started(api, await api.request('POST', `/api/v2/pools/${pool.id}/backup`, {}), opts.wait === true);
      }),
    );

  program
    .command('restore <vm> <restorePoint>')
    .description('restore a VM from a restore point (id, epoch or "latest"): in place by default')
    .option('--as-new <name>', 'restore as a new VM with this name')
    .option('--host <hostId>', 'host of the new VM (default: the original host)')
    .option('--start', 'start the new VM')
    .option('--to-dir <dir>', 'write the disks and domain XML into a directory on the Backroll worker')
    .option('--wait', 'follow the task until it ends')
    .action(
      action(async (ref: string, rpRef: string, opts: { asNew?: string; host?: string; start?: boolean; toDir?: string; wait?: boolean }) => {
        if (opts.asNew && opts.toDir) throw new CliError('choose one of --as-new and --to-dir', EXIT.usage);
        const api = client();
        const v = await findVm(api, ref);
        const rp = await findRestorePoint(api, v, rpRef);
        const body = opts.asNew
          ? { restorePointId: rp.id, mode: 'new-vm', newName: opts.asNew, hostId: opts.host, start: opts.start === true }
          : opts.toDir
            ? { restorePointId: rp.id, mode: 'directory', directory: path.resolve(opts.toDir) }
            : { restorePointId: rp.id, mode: 'in-place' };
        return started(api, await api.request('POST', `/api/v2/virtual-machines/${v.id}/restores`, body), opts.wait === true);
      }),
    );

  const task = program.command('task').description('tasks');
  task
    .command('list')
    .option('--state <states>', 'comma list, e.g. running,queued')
    .option('--kind <kind>')
    .option('--limit <n>', 'how many', '20')
    .action(
      action(async (opts: { state?: string; kind?: string; limit: string }) => {
        const q = new URLSearchParams({ limit: opts.limit });
        if (opts.state) q.set('state', opts.state);
        if (opts.kind) q.set('kind', opts.kind);
        const page = await client().request<Page<Task>>('GET', `/api/v2/tasks?${q}`);
        out(
          table(
            ['ID', 'KIND', 'STATE', 'PROGRESS', 'CREATED', 'BY'],
            page.items.map((t) => [t.id, t.kind, t.state, t.progress.percent === null ? '' : `${t.progress.percent.toFixed(0)}%`, t.createdAt, t.startedBy]),
          ),
        );
      }),
    );
  task.command('show <id>').action(
    action(async (id: string) => {
      out(JSON.stringify(await client().request('GET', `/api/v2/tasks/${id}`), null, 2));
    }),
  );
  task
    .command('logs <id>')
    .option('-f, --follow', 'keep printing new lines until the task ends')
    .action(
      action(async (id: string, opts: { follow?: boolean }) => {
        const api = client();
        let after = 0;
        for (;;) {
          const page = await api.request<{ items: Array<{ seq: number; at: string; level: string; message: string }>; lastSeq: number }>(
            'GET',
            `/api/v2/tasks/${id}/log?after=${after}`,
          );
          for (const l of page.items) out(`${l.at} ${l.level.toUpperCase().padEnd(5)} ${l.message}`);
          after = Math.max(after, page.lastSeq);
          if (!opts.follow) return;
          if (page.items.length === 0) {
            const t = await api.request<Task>('GET', `/api/v2/tasks/${id}`);
            if (FINAL.has(t.state)) return exitCodeForTaskState(t.state);
            await sleep(1000);
          }
        }
      }),
    );
  task.command('cancel <id>').action(
    action(async (id: string) => {
      const t = await client().request<Task>('POST', `/api/v2/tasks/${id}/cancel`);
      out(`task ${t.id} ${t.state}`);
    }),
  );
  task
    .command('wait <id>')
    .description('follow a task with a progress bar until it ends')
    .action(action(async (id: string) => waitForTask(client(), id)));
}
