import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HostKey } from './fingerprint.js';
import type { ExecOptions, ExecResult, ExecStream, SshConnectOptions } from './ssh-client.js';
import { SshErrorCode, sshError } from './ssh-errors.js';
import { SshPool, type PooledConnection } from './ssh-pool.js';

const KEY: HostKey = { algorithm: 'ssh-ed25519', publicKey: 'AAAA', fingerprint: 'SHA256:kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk' };

/** A fake connection whose commands finish when the test says so. */
class FakeConn implements PooledConnection {
  isOpen = true;
  readonly pending: Array<{ argv: readonly string[]; resolve: (r: ExecResult) => void; reject: (e: unknown) => void }> = [];
  private listeners: Array<() => void> = [];
  failNextOpen = false;
  constructor(
    readonly opts: SshConnectOptions,
    readonly hostKey: HostKey = KEY,
  ) {}
  get trustedOnFirstUse() {
    return !this.opts.pinnedFingerprint;
  }
  exec(argv: readonly string[], _o: ExecOptions): Promise<ExecResult> {
    if (!this.isOpen || this.failNextOpen) {
      this.failNextOpen = false;
      return Promise.reject(
        sshError(SshErrorCode.CONNECTION_LOST, 'connection is closed', { commandStarted: false }),
      );
    }
    return new Promise((resolve, reject) => this.pending.push({ argv, resolve, reject }));
  }
  async execStream(): Promise<ExecStream> {
    let done!: (r: { code: number; signal: null; stderr: string }) => void;
    const result = new Promise<{ code: number | null; signal: string | null; stderr: string }>((r) => (done = r));
    this.pending.push({ argv: ['stream'], resolve: () => done({ code: 0, signal: null, stderr: '' }), reject: () => {} });
    return { stdout: new PassThrough(), result, abort: () => {} };
  }
  onClose(l: () => void) {
    this.listeners.push(l);
    return () => {};
  }
  close() {
    if (!this.isOpen) return;
    this.isOpen = false;
    for (const l of this.listeners) l();
  }
  finishAll() {
    for (const p of this.pending.splice(0)) p.resolve({ code: 0, signal: null, stdout: p.argv.join(' '), stderr: '' });
  }
}

function setup(extra: Partial<ConstructorParameters<typeof SshPool>[0]> = {}) {
  const conns: FakeConn[] = [];
  const connect = vi.fn(async (o: SshConnectOptions) => {
    const c = new FakeConn(o);
    conns.push(c);
    return c;
  });
  const pool = new SshPool({
    resolveHost: (id) => ({ host: id, username: 'u', privateKeys: ['k'], pinnedFingerprint: KEY.fingerprint }),
    connect,
    ...extra,
  });
  return { pool, conns, connect };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe('SshPool', () => {
  it('reuses one connection per host; hosts are independent', async () => {
    const { pool, conns, connect } = setup();
    const a = pool.exec('h1', ['a'], { timeoutMs: 1000 });
    const b = pool.exec('h1', ['b'], { timeoutMs: 1000 });
    const c = pool.exec('h2', ['c'], { timeoutMs: 1000 });
    await tick();
    expect(connect).toHaveBeenCalledTimes(2); // concurrent first uses share the connecting promise
    expect(conns[0]!.pending.map((p) => p.argv[0])).toEqual(['a', 'b']);
    for (const x of conns) x.finishAll();
    expect((await a).stdout).toBe('a');
    await Promise.all([b, c]);
    const d = pool.exec('h1', ['d'], { timeoutMs: 1000 });
    await tick();
    expect(connect).toHaveBeenCalledTimes(2);
    conns[0]!.finishAll();
    await d;
    expect(pool.stats('h1')).toMatchObject({ connected: true, connectionsOpened: 1, activeChannels: 0 });
    pool.closeAll();
  });

  it('limits concurrent channels per connection and queues the rest in order', async () => {
    const { pool, conns } = setup({ maxChannelsPerConnection: 2 });
    const ps = ['1', '2', '3', '4', '5'].map((n) => pool.exec('h', [n], { timeoutMs: 1000 }));
    await tick();
    const c = conns[0]!;
    expect(c.pending.map((p) => p.argv[0])).toEqual(['1', '2']);
    expect(pool.stats('h')).toMatchObject({ activeChannels: 2, queued: 3 });
    c.pending.shift()!.resolve({ code: 0, signal: null, stdout: '', stderr: '' });
    await tick();
    await tick();
    expect(c.pending.map((p) => p.argv[0])).toEqual(['2', '3']);
    while (c.pending.length) {
      c.finishAll();
      await tick();
      await tick();
    }
    await Promise.all(ps);
    expect(pool.stats('h')).toMatchObject({ activeChannels: 0, queued: 0 });
    pool.closeAll();
  });

  it('closes idle connections after idleTimeoutMs and reconnects on demand', async () => {
    vi.useFakeTimers();
    const { pool, conns, connect } = setup({ idleTimeoutMs: 5000 });
    const p = pool.exec('h', ['x'], { timeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    conns[0]!.finishAll();
    await p;
    await vi.advanceTimersByTimeAsync(4000);
    expect(conns[0]!.isOpen).toBe(true);
    // A new command before the deadline cancels the idle close.
    const q = pool.exec('h', ['y'], { timeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(conns[0]!.isOpen).toBe(true);
    conns[0]!.finishAll();
    await q;
    await vi.advanceTimersByTimeAsync(5001);
    expect(conns[0]!.isOpen).toBe(false);
    expect(pool.stats('h')?.connected ?? false).toBe(false);
    const r = pool.exec('h', ['z'], { timeoutMs: 1000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(connect).toHaveBeenCalledTimes(2);
    conns[1]!.finishAll();
    await r;
    pool.closeAll();
  });

  it('drops a broken connection and the next command reconnects', async () => {
    const { pool, conns, connect } = setup();
    const p = pool.exec('h', ['x'], { timeoutMs: 1000 });
    await tick();
    conns[0]!.finishAll();
    await p;
    conns[0]!.close(); // e.g. keepalive timeout
    const q = pool.exec('h', ['y'], { timeoutMs: 1000 });
    await tick();
    expect(connect).toHaveBeenCalledTimes(2);
    conns[1]!.finishAll();
    expect((await q).stdout).toBe('y');
    pool.closeAll();
  });

  it('retries once, on a new connection, a command that could not start because the connection had died', async () => {
    const { pool, conns, connect } = setup();
    const p = pool.exec('h', ['x'], { timeoutMs: 1000 });
    await tick();
    conns[0]!.finishAll();
    await p;
    conns[0]!.failNextOpen = true; // looks open, but the channel cannot be opened
    const q = pool.exec('h', ['y'], { timeoutMs: 1000 });
    await tick();
    await tick();
    expect(connect).toHaveBeenCalledTimes(2);
    expect(conns[0]!.isOpen).toBe(false);
    conns[1]!.finishAll();
    expect((await q).stdout).toBe('y');
    pool.closeAll();
  });

  it('does not retry a command that started (its outcome is unknown)', async () => {
    const { pool, conns, connect } = setup();
    const p = pool.exec('h', ['x'], { timeoutMs: 1000 });
    await tick();
    conns[0]!.pending[0]!.reject(sshError(SshErrorCode.CONNECTION_LOST, 'lost'));
    await expect(p).rejects.toMatchObject({ code: 'HOST.CONNECTION_LOST' });
    expect(connect).toHaveBeenCalledTimes(1);
    pool.closeAll();
  });

  it('trust on first use: reports the key once and pins it for reconnects', async () => {
    const trusted: Array<[string, HostKey]> = [];
    const { pool, conns } = setup({
      resolveHost: (id) => ({ host: id, username: 'u', privateKeys: ['k'], pinnedFingerprint: null }),
      onHostKeyTrusted: (id, k) => void trusted.push([id, k]),
    });
    const p = pool.exec('h', ['x'], { timeoutMs: 1000 });
    await tick();
    conns[0]!.finishAll();
    await p;
    expect(trusted).toEqual([['h', KEY]]);
    conns[0]!.close();
    const q = pool.exec('h', ['y'], { timeoutMs: 1000 });
    await tick();
    expect(conns[1]!.opts.pinnedFingerprint).toBe(KEY.fingerprint);
    conns[1]!.finishAll();
    await q;
    expect(trusted).toHaveLength(1);
    pool.reset('h'); // admin re-trust: forget the learned key
    const r = pool.exec('h', ['z'], { timeoutMs: 1000 });
    await tick();
    expect(conns[2]!.opts.pinnedFingerprint).toBeNull();
    conns[2]!.finishAll();
    await r;
    pool.closeAll();
  });

  it('a failing onHostKeyTrusted closes the connection and fails the command', async () => {
    const { pool, conns } = setup({
      resolveHost: (id) => ({ host: id, username: 'u', privateKeys: ['k'] }),
      onHostKeyTrusted: () => {
        throw new Error('db down');
      },
    });
    await expect(pool.exec('h', ['x'], { timeoutMs: 1000 })).rejects.toThrow('db down');
    expect(conns[0]!.isOpen).toBe(false);
    expect(pool.stats('h')?.activeChannels ?? 0).toBe(0);
  });

  it('connect errors propagate and free the slot', async () => {
    const pool = new SshPool({
      resolveHost: () => ({ host: 'x', username: 'u', privateKeys: ['k'] }),
      connect: () => Promise.reject(sshError(SshErrorCode.UNREACHABLE, 'nope')),
      maxChannelsPerConnection: 1,
    });
    await expect(pool.exec('h', ['a'], { timeoutMs: 10 })).rejects.toMatchObject({ code: 'HOST.UNREACHABLE' });
    await expect(pool.exec('h', ['b'], { timeoutMs: 10 })).rejects.toMatchObject({ code: 'HOST.UNREACHABLE' });
  });

  it('a stream holds its channel slot until its result settles', async () => {
    const { pool, conns } = setup({ maxChannelsPerConnection: 1 });
    const s = await pool.execStream('h', ['stream']);
    const q = pool.exec('h', ['after'], { timeoutMs: 1000 });
    await tick();
    expect(pool.stats('h')).toMatchObject({ activeChannels: 1, queued: 1 });
    conns[0]!.pending.shift()!.resolve({ code: 0, signal: null, stdout: '', stderr: '' });
    await s.result;
    await tick();
    conns[0]!.finishAll();
    expect((await q).stdout).toBe('after');
    pool.closeAll();
  });

  it('executor(hostId) binds a host', async () => {
    const { pool, conns } = setup();
    const ex = pool.executor('h9');
    const p = ex.exec(['id'], { timeoutMs: 1000 });
    await tick();
    expect(conns[0]!.opts.host).toBe('h9');
    conns[0]!.finishAll();
    await p;
    pool.closeAll();
    await expect(pool.exec('h9', ['x'], { timeoutMs: 1 })).rejects.toMatchObject({ code: 'HOST.SSH_FAILED' });
  });
});
