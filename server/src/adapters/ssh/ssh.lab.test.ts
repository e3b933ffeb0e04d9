/** SSH adapter against the real lab sshd (OpenSSH) on 127.0.0.1:2222. */
import { randomInt } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { AppError } from '../../errors.js';
import { SshConnection } from './ssh-client.js';
import { SshPool } from './ssh-pool.js';
import { canaryPresent, lab, labConnectOptions, labSkipReason, sshKeygenFingerprint } from './test-lab.js';

const HOSTILE = [
  'evil$(touch PWNED);\'"`id` x',
  '$(touch PWNED)',
  '`touch PWNED`',
  '; touch PWNED',
  '&& touch PWNED',
  "'; touch PWNED; '",
  'line\ntouch PWNED',
  '',
  ' spaced  out ',
  '-rf',
  'ünïcödé 🐧',
  '*',
  '~',
  '\\',
];

async function codeOf(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    return e as AppError;
  }
  throw new Error('expected a rejection');
}

describe.skipIf(!lab)(`SSH adapter against the KVM lab${labSkipReason}`, () => {
  const l = lab!;
  const user = 'kvmhost1';
  const opts = () => labConnectOptions(l, user);
  const expectedFp = () => sshKeygenFingerprint(l.hostKeyPath);

  afterAll(() => {
    expect(canaryPresent(l)).toEqual([]);
  });

  it('the canary is absent before we start', () => {
    expect(canaryPresent(l)).toEqual([]);
  });

  it('first connection: trust on first use, fingerprint equals ssh-keygen -lf of the host key', async () => {
    const c = await SshConnection.connect(opts());
    try {
      expect(c.trustedOnFirstUse).toBe(true);
      expect(c.hostKey.fingerprint).toBe(expectedFp());
      expect(c.hostKey.algorithm).toBe('ssh-ed25519');
      const r = await c.exec(['id', '-un'], { timeoutMs: 10_000 });
      expect(r).toMatchObject({ code: 0, stdout: `${user}\n` });
    } finally {
      c.close();
    }
  });

  it('second connection with that pin succeeds', async () => {
    const c = await SshConnection.connect({ ...opts(), pinnedFingerprint: expectedFp() });
    expect(c.trustedOnFirstUse).toBe(false);
    c.close();
  });

  it('a wrong pin: HOST.KEY_CHANGED naming both fingerprints', async () => {
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const e = await codeOf(SshConnection.connect({ ...opts(), pinnedFingerprint: wrong }));
    expect(e.code).toBe('HOST.KEY_CHANGED');
    expect(e.message).toContain(wrong);
    expect(e.message).toContain(expectedFp());
    expect(e.message).toMatch(/re-trust/);
  });

  it('a wrong user: HOST.AUTH_FAILED', async () => {
    const e = await codeOf(SshConnection.connect({ ...opts(), username: 'nosuchuser' }));
    expect(e.code).toBe('HOST.AUTH_FAILED');
  });

  it('a closed port: HOST.UNREACHABLE with the address', async () => {
    const e = await codeOf(SshConnection.connect({ ...opts(), port: 1 }));
    expect(e.code).toBe('HOST.UNREACHABLE');
    expect(e.message).toContain('127.0.0.1:1');
  });

  it('a hanging command: HOST.TIMEOUT quickly, and the remote process is killed', async () => {
    const c = await SshConnection.connect(opts());
    try {
      const marker = `30.${randomInt(100000, 999999)}`; // a unique sleep duration to find the process
      const t0 = Date.now();
      const e = await codeOf(c.exec(['sleep', marker], { timeoutMs: 500 }));
      expect(e.code).toBe('HOST.TIMEOUT');
      expect(Date.now() - t0).toBeLessThan(2_000);
      let alive = true;
      for (let i = 0; i < 20 && alive; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const r = await c.exec(['pgrep', '-u', user, '-f', '-x', `sleep ${marker}`], { timeoutMs: 5_000 });
        alive = r.code === 0;
      }
      expect(alive).toBe(false);
      expect(c.isOpen).toBe(true);
    } finally {
      c.close();
    }
  });

  it('hostile arguments reach the remote program exactly, and nothing is executed', async () => {
    const c = await SshConnection.connect(opts());
    try {
      const r = await c.exec(['printf', '%s\\0', ...HOSTILE], { timeoutMs: 10_000 });
      expect(r.code).toBe(0);
      expect(r.stdout.slice(0, -1).split('\0')).toEqual(HOSTILE);
      expect(canaryPresent(l)).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('env requests are dropped by this sshd (no AcceptEnv); secretEnv arrives via stdin', async () => {
    const c = await SshConnection.connect(opts());
    try {
      const dropped = await c.exec(['sh', '-c', 'printf %s "${BACKROLL_TEST-unset}"'], { timeoutMs: 10_000, env: { BACKROLL_TEST: 'x' } });
      expect(dropped.stdout).toBe('unset');
      const secret = "pa ss'$(touch PWNED)\\";
      const r = await c.exec(['sh', '-c', 'printf %s "$SECRET"; cat', 'sh'], {
        timeoutMs: 10_000,
        secretEnv: { SECRET: secret },
        stdin: 'payload',
      });
      expect(r).toMatchObject({ code: 0, stdout: `${secret}payload` });
      expect(canaryPresent(l)).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('quick commands keep their exit status when the event loop was busy (reply and status in one read)', async () => {
    const c = await SshConnection.connect(opts());
    try {
      const codes: Array<number | null | string> = [];
      for (let i = 0; i < 30; i++) {
        const p = c.exec(['true'], { timeoutMs: 10_000 }).then(
          (r) => r.code,
          (e: AppError) => e.code,
        );
        const s = c.execStream(['true']).then((x) => x.result).then(
          (r) => r.code,
          (e: AppError) => e.code,
        );
        await new Promise((r) => setTimeout(r, i % 10));
        const t0 = Date.now();
        while (Date.now() - t0 < 50) {
          // busy: sshd's replies pile up and are parsed in one go
        }
        codes.push(await p, await s);
      }
      expect(codes.filter((x) => x !== 0)).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('execStream streams large output with backpressure', async () => {
    const c = await SshConnection.connect(opts());
    try {
      const s = await c.execStream(['head', '-c', '5000000', '/dev/zero'], { idleTimeoutMs: 10_000 });
      let n = 0;
      for await (const d of s.stdout) n += (d as Buffer).length;
      expect(n).toBe(5_000_000);
      expect(await s.result).toEqual({ code: 0, signal: null, stderr: '' });
      const bad = await c.execStream(['cat', '/nonexistent']);
      for await (const _ of bad.stdout) void _;
      expect((await bad.result).code).toBe(1);
      expect((await bad.result).stderr).toMatch(/No such file/);
    } finally {
      c.close();
    }
  });

  describe('SshPool', () => {
    const seen: string[] = [];
    const makePool = (idleTimeoutMs: number) =>
      new SshPool({
        resolveHost: (id) => labConnectOptions(l, id),
        onHostKeyTrusted: (_id, key) => void seen.push(key.fingerprint),
        idleTimeoutMs,
      });

    it('two execs share one connection (same client port), TOFU reported once', async () => {
      const pool = makePool(60_000);
      try {
        const [a, b] = await Promise.all([
          pool.exec(user, ['sh', '-c', 'echo "$SSH_CLIENT"'], { timeoutMs: 10_000 }),
          pool.exec(user, ['sh', '-c', 'echo "$SSH_CLIENT"'], { timeoutMs: 10_000 }),
        ]);
        expect(a.stdout).toBe(b.stdout);
        expect(pool.stats(user)).toMatchObject({ connected: true, connectionsOpened: 1 });
        expect(seen).toEqual([expectedFp()]);
      } finally {
        pool.closeAll();
      }
    });

    it('more commands than channels: queued, all succeed on one connection', async () => {
      const pool = makePool(60_000);
      try {
        const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.exec(user, ['sh', '-c', 'sleep 0.2; echo "$1"', 'sh', String(i)], { timeoutMs: 20_000 })));
        expect(rs.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
        expect(pool.stats(user)?.connectionsOpened).toBe(1);
      } finally {
        pool.closeAll();
      }
    });

    it('idle connections are closed, and the next command reconnects', async () => {
      const pool = makePool(300);
      try {
        await pool.exec(user, ['true'], { timeoutMs: 10_000 });
        expect(pool.stats(user)?.connected).toBe(true);
        await new Promise((r) => setTimeout(r, 800));
        expect(pool.stats(user)?.connected).toBe(false);
        expect((await pool.exec(user, ['echo', 'again'], { timeoutMs: 10_000 })).stdout).toBe('again\n');
        expect(pool.stats(user)?.connectionsOpened).toBe(2);
      } finally {
        pool.closeAll();
      }
    });

    it('hosts are separate connections as separate users', async () => {
      const pool = makePool(60_000);
      try {
        const [a, b] = await Promise.all([
          pool.exec('kvmhost1', ['id', '-un'], { timeoutMs: 10_000 }),
          pool.exec('kvmhost2', ['id', '-un'], { timeoutMs: 10_000 }),
        ]);
        expect([a.stdout, b.stdout]).toEqual(['kvmhost1\n', 'kvmhost2\n']);
      } finally {
        pool.closeAll();
      }
    });
  });
});
