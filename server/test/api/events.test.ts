/**
 * GET /api/v2/events on every database: task, host and VM changes arrive live, a reconnect
 * with Last-Event-ID replays what changed meanwhile, a too-old id asks for a resync; on SQLite
 * also the shared stream caps and the end of the stream with its token.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SSE_MAX_PER_CALLER } from '../../src/tasks/sse-limits.js';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { iso, seedHost, seedPolicy, seedPool, seedStorage, seedVm } from '../support/console-seed.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

interface SseEvent {
  event: string;
  id?: string;
  data: any;
}

/** An open SSE stream, parsed into events as they come. */
async function open(url: string, token: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const events: SseEvent[] = [];
  let ended = false;
  const done = (async () => {
    if (!res.ok) return;
    let buf = '';
    try {
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done: d } = await reader.read();
        if (d) break;
        buf += dec.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: Partial<SseEvent> & { dataText?: string } = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('data: ')) e.dataText = line.slice(6);
          }
          if (e.event) events.push({ event: e.event, id: e.id, data: e.dataText ? JSON.parse(e.dataText) : undefined });
        }
      }
    } catch {
      // aborted
    } finally {
      ended = true;
    }
  })();
  const waitFor = async (pred: (e: SseEvent) => boolean, ms = 8000): Promise<SseEvent> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = events.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no matching event within ${ms} ms; got ${events.map((e) => e.event).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { status: res.status, res, events, waitFor, ended: done, isEnded: () => ended, close: () => ac.abort() };
}

for (const dialect of DIALECTS) {
  describeWhenAvailable(`console event stream on ${dialect}`, reasons[dialect] ?? null, () => {
    let t: TestServer;
    let hostId: string;

    beforeAll(async () => {
      t = await startTestServer(dialect);
      const db = t.server.db;
      const storage = await seedStorage(db, 's', t.dataDir);
      const pool = await seedPool(db, 'p', await seedPolicy(db, { name: 'p', storageId: storage }));
      hostId = await seedHost(db, { name: 'kvm1', poolId: pool });
    });
    afterAll(async () => t?.close());

    it('streams task, host and VM changes, and replays them after a reconnect with Last-Event-ID', async () => {
      const s = await open(`${t.url}/api/v2/events`, t.viewerToken);
      expect(s.status).toBe(200);
      expect(s.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      try {
        expect((await s.waitFor((e) => e.event === 'hello')).data).toMatchObject({ resumed: false });
        // A task with no handler: created (queued), then failed by the worker.
        const task = await t.server.services.tasks.submit('test.no-such-kind', { n: 1 }, { target: { type: 'vm', id: randomUUID() }, startedBy: 'user:test' });
        const created = await s.waitFor((e) => e.event === 'task' && e.data.id === task.id);
        expect(created.data).toMatchObject({ kind: 'test.no-such-kind', startedBy: 'user:test' });
        expect(created.id).toMatch(/^\d{4}-\d{2}-\d{2}T/);
        await s.waitFor((e) => e.event === 'task' && e.data.id === task.id && e.data.state === 'failed');
        // A host's connection changes.
        await t.server.db.updateTable('hosts').set({ connection_state: 'failed', connection_error_code: 'HOST.UNREACHABLE', updated_at: iso(Date.now()) }).where('id', '=', hostId).execute();
        const host = await s.waitFor((e) => e.event === 'host' && e.data.id === hostId && e.data.connection.state === 'failed');
        expect(host.data).toMatchObject({ name: 'kvm1', connection: { state: 'failed', errorCode: 'HOST.UNREACHABLE' } });
        expect(host.data).not.toHaveProperty('hostKey');
        // The inventory finds a VM.
        const vmId = await seedVm(t.server.db, { name: 'fresh-vm', hostId });
        expect((await s.waitFor((e) => e.event === 'vm' && e.data.id === vmId)).data).toMatchObject({ name: 'fresh-vm', hostId, present: true, state: 'running' });

        // Resume from the task's creation: its later change and the host/VM changes come again.
        const resumed = await open(`${t.url}/api/v2/events`, t.viewerToken, { 'last-event-id': created.id! });
        try {
          expect((await resumed.waitFor((e) => e.event === 'hello')).data).toMatchObject({ resumed: true });
          await resumed.waitFor((e) => e.event === 'task' && e.data.id === task.id && e.data.state === 'failed');
          await resumed.waitFor((e) => e.event === 'host' && e.data.id === hostId && e.data.connection.state === 'failed');
          await resumed.waitFor((e) => e.event === 'vm' && e.data.id === vmId);
          const ids = resumed.events.filter((e) => e.id).map((e) => e.id!);
          expect([...ids].sort()).toEqual(ids); // oldest first
        } finally {
          resumed.close();
        }
        // Too old to replay: the client must re-fetch.
        const stale = await open(`${t.url}/api/v2/events?lastEventId=${encodeURIComponent(iso(Date.now() - 2 * 86_400_000))}`, t.viewerToken);
        try {
          expect((await stale.waitFor((e) => e.event === 'hello')).data).toMatchObject({ resumed: false });
          await stale.waitFor((e) => e.event === 'resync');
        } finally {
          stale.close();
        }
      } finally {
        s.close();
      }
    }, 30_000);

    if (dialect === 'sqlite') {
      it('shares the per-caller cap with the task streams and ends with its token', async () => {
        const streams = [];
        try {
          for (let i = 0; i < SSE_MAX_PER_CALLER; i++) streams.push(await open(`${t.url}/api/v2/events`, t.adminToken));
          expect(streams.map((s) => s.status)).toEqual(Array(SSE_MAX_PER_CALLER).fill(200));
          const refused = await open(`${t.url}/api/v2/events`, t.adminToken);
          expect(refused.status).toBe(429);
          expect(((await refused.res.json()) as { code: string }).code).toBe('TASK.TOO_MANY_STREAMS');
          const task = await t.server.services.tasks.submit('test.no-such-kind', null);
          const taskStream = await fetch(`${t.url}/api/v2/tasks/${task.id}/events`, { headers: { authorization: `Bearer ${t.adminToken}` } });
          expect(taskStream.status).toBe(429);
          await taskStream.body?.cancel();
          // Another caller still gets one.
          const other = await open(`${t.url}/api/v2/events`, t.viewerToken);
          expect(other.status).toBe(200);
          other.close();
        } finally {
          for (const s of streams) s.close();
        }

        const jwks = JSON.parse(fs.readFileSync(path.join(t.dataDir, 'idp', 'jwks.json'), 'utf8')) as { keys: JWK[] };
        const kid = decodeProtectedHeader(t.adminToken).kid!;
        const jwk = jwks.keys.find((k) => k.kid === kid)!;
        const exp = Math.floor(Date.now() / 1000) + 2;
        const shortLived = await new SignJWT({ roles: ['viewer'] })
          .setProtectedHeader({ alg: jwk.alg!, kid, typ: 'at+jwt' })
          .setSubject('short-lived-user')
          .setIssuedAt()
          .setIssuer(t.config.oidc.issuer)
          .setAudience(t.config.oidc.audience)
          .setExpirationTime(exp)
          .sign(await importJWK(jwk, jwk.alg));
        const s = await open(`${t.url}/api/v2/events`, shortLived);
        try {
          expect(s.status).toBe(200);
          const expired = await s.waitFor((e) => e.event === 'expired', 6000);
          expect(expired.data.code).toBe('AUTH.TOKEN_EXPIRED');
          await s.ended;
          expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
        } finally {
          s.close();
        }
      }, 30_000);
    }
  });
}
