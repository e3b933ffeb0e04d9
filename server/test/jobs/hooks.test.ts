import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { verifySignature } from '../../src/hooks/hook.notifier.js';
import { unavailableReason } from '../support/databases.js';
import { dropPrefix, REDIS_URL, redisUnavailableReason, uniquePrefix } from '../support/redis.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { describeWhenAvailable } from '../support/unavailable.js';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown> & { task?: Record<string, unknown> };
}

/** A real HTTP endpoint on 127.0.0.1: /ok answers 200, /flaky 500 twice then 200, /down always 500, /hang never. */
async function startReceiver() {
  const received: Received[] = [];
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const p = req.url ?? '/';
      received.push({ path: p, headers: req.headers, raw, body: JSON.parse(raw) as Received['body'] });
      const n = (hits.get(p) ?? 0) + 1;
      hits.set(p, n);
      if (p.startsWith('/hang')) return; // no answer: the sender times out
      const status = p.startsWith('/ok') || p.startsWith('/slack') ? 200 : p.startsWith('/flaky') ? (n <= 2 ? 500 : 200) : 500;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'receiver error');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    at: (p: string) => received.filter((r) => r.path === p),
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

const SECRET = 'a-webhook-signing-secret-0123456789';
const redisReason = await redisUnavailableReason();
const dbReasons = { sqlite: await unavailableReason('sqlite'), postgres: await unavailableReason('postgres'), mysql: await unavailableReason('mysql') };

/**
 * The signature as a receiver computes it from docs/jobs.md, with node:crypto only (not the
 * project's signPayload/verifySignature): HMAC-SHA256(secret, "<timestamp>.<raw body>") in hex.
 */
const hmacSignature = (timestamp: string, raw: string, secret: string) => `sha256=${createHmac('sha256', secret).update(`${timestamp}.${raw}`).digest('hex')}`;

/** Every database in embedded mode; PostgreSQL and MariaDB (a distributed installation's) with BullMQ. */
for (const [mode, dialect] of [
  ['embedded', 'sqlite'],
  ['embedded', 'postgres'],
  ['embedded', 'mysql'],
  ['distributed', 'postgres'],
  ['distributed', 'mysql'],
] as const) {
  const reason = (mode === 'distributed' ? redisReason : null) ?? dbReasons[dialect];
  describeWhenAvailable(`notification hooks (${mode} on ${dialect})`, reason, () => {
    let t: TestServer;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    let storageDir: string;
    let storageId: string;
    const prefix = uniquePrefix();

    beforeAll(async () => {
      receiver = await startReceiver();
      storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-storage-'));
      t = await startTestServer(
        dialect,
        {
          BACKROLL_HOOK_TIMEOUT_MS: '300',
          BACKROLL_HOOK_ATTEMPTS: '3',
          BACKROLL_HOOK_BACKOFF_MS: '50',
          ...(mode === 'distributed' ? { BACKROLL_REDIS_URL: REDIS_URL, BACKROLL_REDIS_PREFIX: prefix } : {}),
        },
        {
          handlers: (tasks) => {
            tasks.registerHandler<{ fail?: boolean }>(
              'test.backup',
              async (payload, ctx) => {
                await ctx.log('info', 'backing up (test)');
                if (payload.fail) throw new AppError('conflict', 'BORG.REPO_LOCKED', 'the repository is locked');
                return { archives: 2 };
              },
              { notify: { event: 'backup' } },
            );
            tasks.registerHandler('test.restore', async () => ({ restored: true }), { notify: { event: 'restore' } });
            tasks.registerHandler('test.quiet', async () => ({}));
          },
        },
      );
      storageId = (await t.api('POST', '/api/v2/storages', { body: { name: 'hooks-storage', path: storageDir } })).body.id;
    });
    afterAll(async () => {
      await t?.close();
      await receiver?.close();
      if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
      if (mode === 'distributed') await dropPrefix(prefix);
    });

    let n = 0;
    /** A hook and a policy using it; returns the policy id. */
    const policyWithHook = async (hook: { kind: 'webhook' | 'slack'; path: string; events: string[]; secret?: string | null }) => {
      n++;
      const h = await t.api('POST', '/api/v2/hooks', {
        body: { name: `hook-${n}`, kind: hook.kind, url: `${receiver.url}${hook.path}`, events: hook.events, ...(hook.secret !== undefined ? { secret: hook.secret } : {}) },
      });
      expect(h.status, h.text).toBe(201);
      const p = await t.api('POST', '/api/v2/policies', {
        body: { name: `policy-${n}`, schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, storageId, hookId: h.body.id },
      });
      expect(p.status, p.text).toBe(201);
      return { policyId: p.body.id as string, hookId: h.body.id as string, name: `hook-${n}` };
    };
    const tasks = () => t.server.services.tasks;
    const logOf = async (id: string) => (await tasks().logs(id)).items;
    const eventually = async <T>(what: string, get: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = await get();
        if (v !== undefined && v !== false) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const now = () => Math.floor(Date.now() / 1000);
    /** Signed with `secret` over exactly the bytes received, with a current timestamp: checked independently of the project's code. */
    const verified = (r: Received, secret = SECRET) => {
      const ts = r.headers['x-backroll-timestamp'] as string;
      return /^\d+$/.test(ts) && Math.abs(Number(ts) - now()) <= 60 && r.headers['x-backroll-signature'] === hmacSignature(ts, r.raw, secret);
    };

    it('sends a signed backup.succeeded and backup.failed to the policy hook', async () => {
      const { policyId, name } = await policyWithHook({ kind: 'webhook', path: '/ok', events: ['backup.succeeded', 'backup.failed'], secret: SECRET });
      const ok = await tasks().submit('test.backup', { policyId });
      expect((await tasks().waitFor(ok.id, 10_000)).state).toBe('succeeded');
      const sent = await eventually('the success notification', () => receiver.at('/ok').find((r) => (r.body.task as { id: string }).id === ok.id));
      expect(sent.headers['x-backroll-event']).toBe('backup.succeeded');
      expect(sent.headers['content-type']).toBe('application/json');
      expect(sent.headers['x-backroll-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(sent.headers['x-backroll-signature']).toBe(hmacSignature(sent.headers['x-backroll-timestamp'] as string, sent.raw, SECRET));
      expect(verified(sent)).toBe(true);
      expect(verified(sent, 'another-secret-0123456789')).toBe(false);
      // The project's receiver-side helper (documented for integrators) agrees, and refuses tampering.
      expect(verifySignature(SECRET, sent.headers['x-backroll-timestamp'] as string, sent.headers['x-backroll-signature'] as string, sent.raw, now())).toBe(true);
      expect(verifySignature(SECRET, sent.headers['x-backroll-timestamp'] as string, sent.headers['x-backroll-signature'] as string, sent.raw.replace('succeeded', 'failed'), now())).toBe(false);
      // An old timestamp is refused, so a captured request cannot be replayed later.
      expect(verifySignature(SECRET, sent.headers['x-backroll-timestamp'] as string, sent.headers['x-backroll-signature'] as string, sent.raw, now() + 3600)).toBe(false);
      expect(sent.body).toMatchObject({
        event: 'backup.succeeded',
        deliveryId: sent.headers['x-backroll-delivery'],
        task: { id: ok.id, kind: 'test.backup', state: 'succeeded', result: { archives: 2 }, error: null },
        policy: { id: policyId, name: expect.any(String) },
      });
      await eventually('the log line', async () => (await logOf(ok.id)).find((l) => l.message === `notified hook "${name}" (backup.succeeded) in 1 attempt(s)`));

      const bad = await tasks().submit('test.backup', { policyId, fail: true });
      expect((await tasks().waitFor(bad.id, 10_000)).state).toBe('failed');
      const failed = await eventually('the failure notification', () => receiver.at('/ok').find((r) => (r.body.task as { id: string }).id === bad.id));
      expect(failed.headers['x-backroll-event']).toBe('backup.failed');
      expect(verified(failed)).toBe(true);
      expect(failed.body.task).toMatchObject({ state: 'failed', error: { code: 'BORG.REPO_LOCKED', message: 'the repository is locked' } });
    });

    it('retries a failing receiver with backoff until it answers', async () => {
      const { policyId, name } = await policyWithHook({ kind: 'webhook', path: '/flaky', events: ['backup.succeeded'], secret: SECRET });
      const task = await tasks().submit('test.backup', { policyId });
      await tasks().waitFor(task.id, 10_000);
      await eventually('delivery after retries', async () => (await logOf(task.id)).find((l) => l.message === `notified hook "${name}" (backup.succeeded) in 3 attempt(s)`));
      const attempts = receiver.at('/flaky');
      expect(attempts).toHaveLength(3);
      expect(new Set(attempts.map((a) => a.headers['x-backroll-delivery'])).size).toBe(1);
      for (const a of attempts) expect(verified(a)).toBe(true);
    });

    it('logs a receiver that keeps failing or never answers on the task, which still succeeds', async () => {
      const down = await policyWithHook({ kind: 'webhook', path: '/down', events: ['backup.succeeded'], secret: SECRET });
      const hang = await policyWithHook({ kind: 'webhook', path: '/hang', events: ['backup.succeeded'], secret: null });
      const a = await tasks().submit('test.backup', { policyId: down.policyId });
      const b = await tasks().submit('test.backup', { policyId: hang.policyId });
      expect((await tasks().waitFor(a.id, 10_000)).state).toBe('succeeded');
      expect((await tasks().waitFor(b.id, 10_000)).state).toBe('succeeded');
      const la = await eventually('the failure log', async () => (await logOf(a.id)).find((l) => l.message.startsWith(`hook "${down.name}"`)));
      expect(la).toMatchObject({ level: 'warn', message: `hook "${down.name}" (backup.succeeded) could not be notified after 3 attempt(s): HTTP 500: receiver error` });
      const lb = await eventually('the timeout log', async () => (await logOf(b.id)).find((l) => l.message.startsWith(`hook "${hang.name}"`)));
      expect(lb).toMatchObject({ level: 'warn', message: `hook "${hang.name}" (backup.succeeded) could not be notified after 3 attempt(s): no answer within 300 ms` });
      expect(receiver.at('/down')).toHaveLength(3);
      expect(receiver.at('/hang')).toHaveLength(3);
      // Without a secret the webhook is sent unsigned (the timestamp header stays).
      expect(receiver.at('/hang')[0]!.headers['x-backroll-signature']).toBeUndefined();
      expect((await tasks().get(a.id)).state).toBe('succeeded');
    });

    it('posts Slack messages as {"text": …}', async () => {
      const { policyId } = await policyWithHook({ kind: 'slack', path: '/slack', events: ['backup.failed', 'restore.succeeded'] });
      const bad = await tasks().submit('test.backup', { policyId, fail: true });
      await tasks().waitFor(bad.id, 10_000);
      const msg = await eventually('the Slack message', () => receiver.at('/slack')[0]);
      expect(Object.keys(msg.body)).toEqual(['text']);
      expect(msg.body.text).toContain('backup.failed');
      expect(msg.body.text).toContain('BORG.REPO_LOCKED');
      expect(msg.body.text).toContain(`/api/v2/tasks/${bad.id}`);
      expect(msg.headers['x-backroll-signature']).toBeUndefined();
    });

    it('sends only the events a hook subscribes to, for kinds that notify, found through the target too', async () => {
      const { policyId } = await policyWithHook({ kind: 'webhook', path: '/ok?only-failed', events: ['backup.failed'], secret: SECRET });
      const pool = await t.api('POST', '/api/v2/pools', { body: { name: `pool-${n}`, policyId } });
      const quiet = await tasks().submit('test.backup', { policyId });
      const other = await tasks().submit('test.quiet', { policyId });
      await tasks().waitFor(quiet.id, 10_000);
      await tasks().waitFor(other.id, 10_000);
      // Through the target: pool → its policy → the hook.
      const viaPool = await tasks().submit('test.backup', { fail: true }, { target: { type: 'pool', id: pool.body.id } });
      await tasks().waitFor(viaPool.id, 10_000);
      const got = await eventually('the failure through the pool', () => receiver.at('/ok?only-failed')[0]);
      expect((got.body.task as { id: string }).id).toBe(viaPool.id);
      await new Promise((r) => setTimeout(r, 300));
      expect(receiver.at('/ok?only-failed')).toHaveLength(1);
    });

    it('tests a hook on demand: POST /hooks/{id}/test', async () => {
      const good = await policyWithHook({ kind: 'webhook', path: '/ok?test', events: ['restore.failed'], secret: SECRET });
      const res = await t.api('POST', `/api/v2/hooks/${good.hookId}/test`);
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ delivered: true, event: 'restore.failed', attempts: 1, status: 200 });
      const sent = receiver.at('/ok?test')[0]!;
      expect(sent.body).toMatchObject({ event: 'restore.failed', test: true, hook: { id: good.hookId } });
      expect(verified(sent)).toBe(true);

      const bad = await policyWithHook({ kind: 'webhook', path: '/down?test', events: ['backup.failed'], secret: SECRET });
      const res2 = await t.api('POST', `/api/v2/hooks/${bad.hookId}/test`, { body: { event: 'verify.failed' } });
      expect(res2.body).toMatchObject({ delivered: false, event: 'verify.failed', attempts: 1, status: 500, error: 'HTTP 500: receiver error' });
      expect((await t.api('POST', `/api/v2/hooks/${bad.hookId}/test`, { token: t.viewerToken })).status).toBe(403);
      expect((await t.api('POST', `/api/v2/hooks/00000000-0000-4000-8000-000000000000/test`)).body.code).toBe('HOOK.NOT_FOUND');
    });
  });
}
