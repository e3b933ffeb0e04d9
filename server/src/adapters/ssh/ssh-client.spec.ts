/** SshConnection against an in-process ssh2 server: protocol handling without a lab. */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../errors.js';
import { hostKeyFromOpenSshLine } from './fingerprint.js';
import { buildCommand } from './quote.js';
import { SshConnection, type SshConnectOptions } from './ssh-client.js';
import { startTestSshServer, type TestSshServer } from './ssh-test-server.js';
import { STDIN_ENV_SCRIPT } from './stdin-env.js';

let srv: TestSshServer;
let opts: SshConnectOptions;
let fp: string;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    return (e as AppError).code;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  srv = await startTestSshServer();
  fp = hostKeyFromOpenSshLine(srv.hostPublicKey).fingerprint;
  opts = { host: '127.0.0.1', port: srv.port, username: srv.username, privateKeys: [srv.clientPrivateKey], connectTimeoutMs: 3000 };

  srv.on(['hello', "it's"], ({ stream }) => {
    stream.write('out ');
    stream.write(Buffer.from('é', 'utf8').subarray(0, 1)); // a multi-byte char split across chunks
    stream.write(Buffer.from('é', 'utf8').subarray(1));
    stream.stderr.write('err');
    stream.exit(3);
    stream.end();
  });
  srv.on(['cat'], async (ctx) => {
    const input = await ctx.stdin();
    ctx.stream.write(input);
    ctx.stream.exit(0);
    ctx.stream.end();
  });
  srv.on(['hang'], ({ stream }) => stream.resume()); // reads stdin, never answers
  srv.on(['big'], ({ stream }) => {
    stream.write(Buffer.alloc(300_000, 0x61));
    stream.exit(0);
    stream.end();
  });
  srv.on(['killed'], ({ stream }) => {
    stream.exit('KILL');
    stream.end();
  });
  srv.on(['drop'], ({ connection }) => connection.end());
  srv.on(['env'], ({ stream, env }) => {
    stream.write(JSON.stringify(env));
    stream.exit(0);
    stream.end();
  });
  srv.on(['sh', '-c', STDIN_ENV_SCRIPT, 'sh', 'SECRET', '--', 'cat'], async (ctx) => {
    ctx.stream.write(await ctx.stdin());
    ctx.stream.exit(0);
    ctx.stream.end();
  });
  srv.on(['stream'], ({ stream }) => {
    let i = 0;
    const tick = setInterval(() => {
      stream.write(`chunk${i}\n`);
      if (++i === 5) {
        clearInterval(tick);
        stream.stderr.write('done');
        stream.exit(0);
        stream.end();
      }
    }, 5);
  });
});
afterAll(async () => {
  await srv.close();
});

describe('SshConnection.connect', () => {
  it('trusts on first use and reports the key; the pin then works', async () => {
    const c = await SshConnection.connect(opts);
    expect(c.trustedOnFirstUse).toBe(true);
    expect(c.hostKey.fingerprint).toBe(fp);
    expect(c.hostKey.algorithm).toBe('ssh-ed25519');
    expect(`${c.hostKey.algorithm} ${c.hostKey.publicKey}`).toBe(srv.hostPublicKey.split(' ').slice(0, 2).join(' '));
    c.close();
    const pinned = await SshConnection.connect({ ...opts, pinnedFingerprint: fp });
    expect(pinned.trustedOnFirstUse).toBe(false);
    pinned.close();
  });

  it('refuses a different key: HOST.KEY_CHANGED with both fingerprints', async () => {
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const err = await SshConnection.connect({ ...opts, pinnedFingerprint: wrong }).catch((e: AppError) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('HOST.KEY_CHANGED');
    expect((err as AppError).message).toContain(wrong);
    expect((err as AppError).message).toContain(fp);
  });

  it('HOST.AUTH_FAILED when every key is refused', async () => {
    expect(await codeOf(SshConnection.connect({ ...opts, privateKeys: [srv.otherPrivateKey] }))).toBe('HOST.AUTH_FAILED');
    expect(await codeOf(SshConnection.connect({ ...opts, username: 'nobody' }))).toBe('HOST.AUTH_FAILED');
  });

  it('tries keys in order until one is accepted', async () => {
    const c = await SshConnection.connect({ ...opts, privateKeys: [srv.otherPrivateKey, srv.clientPrivateKey] });
    c.close();
  });

  it('refuses unparseable keys and pins up front', async () => {
    expect(await codeOf(SshConnection.connect({ ...opts, privateKeys: ['not a key'] }))).toBe('HOST.INVALID_CREDENTIALS');
    expect(await codeOf(SshConnection.connect({ ...opts, privateKeys: [] }))).toBe('HOST.INVALID_CREDENTIALS');
    expect(await codeOf(SshConnection.connect({ ...opts, pinnedFingerprint: 'md5:aa:bb' }))).toBe('HOST.INVALID_CREDENTIALS');
  });

  it('HOST.UNREACHABLE on a closed port, with the address', async () => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    s.close();
    const err = (await SshConnection.connect({ ...opts, port }).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('HOST.UNREACHABLE');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('HOST.TIMEOUT when the server accepts TCP but never speaks SSH', async () => {
    const sockets: net.Socket[] = [];
    const s = net.createServer((sock) => sockets.push(sock));
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const t0 = Date.now();
    const err = (await SshConnection.connect({ ...opts, port: (s.address() as AddressInfo).port, connectTimeoutMs: 300 }).catch(
      (e: unknown) => e,
    )) as AppError;
    expect(err.code).toBe('HOST.TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(2500);
    for (const x of sockets) x.destroy();
    s.close();
  });
});

describe('SshConnection.exec', () => {
  let c: SshConnection;
  beforeAll(async () => {
    c = await SshConnection.connect({ ...opts, pinnedFingerprint: fp });
  });
  afterAll(() => c.close());

  it('sends exactly buildCommand(argv) and returns code, stdout, stderr', async () => {
    const r = await c.exec(['hello', "it's"], { timeoutMs: 2000 });
    expect(r).toEqual({ code: 3, signal: null, stdout: 'out é', stderr: 'err' });
    expect(srv.commands).toContain("'hello' 'it'\\''s'");
  });

  it('unknown command: exit 127 is a result, not an error', async () => {
    const r = await c.exec(['nope'], { timeoutMs: 2000 });
    expect(r.code).toBe(127);
  });

  it('passes stdin and ends it', async () => {
    expect((await c.exec(['cat'], { timeoutMs: 2000, stdin: 'to stdin\n' })).stdout).toBe('to stdin\n');
    expect((await c.exec(['cat'], { timeoutMs: 2000 })).stdout).toBe(''); // EOF sent even without stdin
  });

  it('reports death by signal', async () => {
    expect(await c.exec(['killed'], { timeoutMs: 2000 })).toMatchObject({ code: null, signal: 'SIGKILL' });
  });

  // That OpenSSH really kills the process is checked by the lab test (ssh2's server ignores
  // signals after stdin EOF, so only the channel close is visible here).
  it('a hanging command: HOST.TIMEOUT quickly and its channel is closed', async () => {
    const before = srv.contexts.length;
    const t0 = Date.now();
    const err = (await c.exec(['hang'], { timeoutMs: 200 }).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('HOST.TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(1500);
    const ctx = srv.contexts[before]!;
    await new Promise((r) => setTimeout(r, 100));
    expect(ctx.closed).toBe(true);
    expect(c.isOpen).toBe(true); // the connection survives
    expect((await c.exec(['cat'], { timeoutMs: 2000, stdin: 'x' })).stdout).toBe('x');
  });

  it('caps buffered output', async () => {
    expect(await codeOf(c.exec(['big'], { timeoutMs: 2000, maxOutputBytes: 100_000 }))).toBe('HOST.OUTPUT_TOO_LARGE');
    expect((await c.exec(['big'], { timeoutMs: 2000 })).stdout.length).toBe(300_000);
  });

  it('env goes as SSH env requests (the server may drop them)', async () => {
    expect(JSON.parse((await c.exec(['env'], { timeoutMs: 2000, env: { LANG: 'C' } })).stdout)).toEqual({ LANG: 'C' });
  });

  it('secretEnv goes on stdin, never in the command string', async () => {
    const r = await c.exec(['cat'], { timeoutMs: 2000, secretEnv: { SECRET: 'hunter2' }, stdin: 'payload' });
    expect(r.stdout).toBe('hunter2\npayload');
    expect(srv.commands.some((cmd) => cmd.includes('hunter2'))).toBe(false);
  });

  it('refuses unsafe argv before sending anything', async () => {
    expect(await codeOf(c.exec(['echo', 'a\0b'], { timeoutMs: 1000 }))).toBe('SSH.UNSAFE_ARGUMENT');
    expect(await codeOf(c.exec([], { timeoutMs: 1000 }))).toBe('SSH.UNSAFE_ARGUMENT');
  });

  it('runs many commands concurrently on one connection', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => c.exec(['cat'], { timeoutMs: 3000, stdin: `n${i}` })));
    expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 8 }, (_, i) => `n${i}`));
  });
});

describe('SshConnection.execStream', () => {
  let c: SshConnection;
  beforeAll(async () => {
    c = await SshConnection.connect({ ...opts, pinnedFingerprint: fp });
  });
  afterAll(() => c.close());

  it('streams stdout and resolves the exit status', async () => {
    const s = await c.execStream(['stream']);
    const chunks: string[] = [];
    for await (const d of s.stdout) chunks.push(String(d));
    expect(chunks.join('')).toBe('chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n');
    expect(await s.result).toEqual({ code: 0, signal: null, stderr: 'done' });
  });

  it('pipes a Readable into stdin', async () => {
    const s = await c.execStream(['cat'], { stdin: Readable.from([Buffer.from('a'), Buffer.from('b')]) });
    const chunks: Buffer[] = [];
    for await (const d of s.stdout) chunks.push(d as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('ab');
    expect((await s.result).code).toBe(0);
  });

  it('idle timeout kills and errors the stream', async () => {
    const s = await c.execStream(['hang'], { idleTimeoutMs: 150 });
    const err = await (async () => {
      try {
        for await (const _ of s.stdout) void _;
      } catch (e) {
        return e as AppError;
      }
      return null;
    })();
    expect(err?.code).toBe('HOST.TIMEOUT');
    expect(await codeOf(s.result)).toBe('HOST.TIMEOUT');
  });

  it('abort() ends the command; an unobserved result does not crash', async () => {
    const s = await c.execStream(['hang']);
    s.abort();
    expect(await codeOf(s.result)).toBe('HOST.SSH_FAILED');
  });
});

describe('connection loss', () => {
  it('a command running when the connection drops fails with HOST.CONNECTION_LOST', async () => {
    const c = await SshConnection.connect(opts);
    let closed = false;
    c.onClose(() => (closed = true));
    expect(await codeOf(c.exec(['drop'], { timeoutMs: 3000 }))).toBe('HOST.CONNECTION_LOST');
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(true);
    expect(c.isOpen).toBe(false);
    const err = (await c.exec(['cat'], { timeoutMs: 1000 }).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('HOST.CONNECTION_LOST');
    expect(err.details?.commandStarted).toBe(false);
  });
});

it('buildCommand is what the server receives for hostile names', async () => {
  const c = await SshConnection.connect(opts);
  const evil = 'evil$(touch PWNED);\'"`id` x';
  await c.exec(['virsh', 'domstate', '--domain', evil], { timeoutMs: 1000 });
  expect(srv.commands.at(-1)).toBe(buildCommand(['virsh', 'domstate', '--domain', evil]));
  c.close();
});
