/**
 * The delivery history of a hook on every database: each test notification is recorded with
 * its status code, error and time, newest first; the URL (a secret) never appears; deleting
 * the hook removes its history.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { describeWhenAvailable } from '../support/unavailable.js';
import { startTestServer, type TestServer } from '../support/server.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  describeWhenAvailable(`hook delivery history on ${dialect}`, reasons[dialect] ?? null, () => {
    let t: TestServer;
    let receiver: http.Server;
    let url: string;
    const answers = [204, 503];
    let received = 0;

    beforeAll(async () => {
      receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.statusCode = answers[received++ % answers.length]!;
          res.end(res.statusCode === 503 ? 'maintenance' : '');
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in/secret-path-token`;
      t = await startTestServer(dialect);
    });
    afterAll(async () => {
      await t?.close();
      await new Promise((r) => receiver?.close(r));
    });

    it('records each delivery with status, error and time, newest first', async () => {
      const hook = await t.api('POST', '/api/v2/hooks', { body: { name: 'siem', kind: 'webhook', url, events: ['backup.failed', 'backup.succeeded'] } });
      expect(hook.status, hook.text).toBe(201);
      const id = hook.body.id as string;
      expect((await t.api('GET', `/api/v2/hooks/${id}/deliveries`, { token: t.viewerToken })).body).toEqual({ items: [] });
      const ok = await t.api('POST', `/api/v2/hooks/${id}/test`, { body: { event: 'backup.succeeded' } });
      expect(ok.body).toMatchObject({ delivered: true, status: 204 });
      await new Promise((r) => setTimeout(r, 5));
      const failed = await t.api('POST', `/api/v2/hooks/${id}/test`, { body: { event: 'backup.failed' } });
      expect(failed.body).toMatchObject({ delivered: false, status: 503 });

      const list = await t.api('GET', `/api/v2/hooks/${id}/deliveries?limit=10`, { token: t.viewerToken });
      expect(list.status, list.text).toBe(200);
      expect(list.body.items).toEqual([
        { id: failed.body.deliveryId, event: 'backup.failed', test: true, taskId: null, delivered: false, status: 503, error: 'HTTP 503: maintenance', attempts: 1, durationMs: expect.any(Number), at: expect.any(String) },
        { id: ok.body.deliveryId, event: 'backup.succeeded', test: true, taskId: null, delivered: true, status: 204, error: null, attempts: 1, durationMs: expect.any(Number), at: expect.any(String) },
      ]);
      expect(list.text).not.toContain('secret-path-token');
      expect((await t.api('GET', `/api/v2/hooks/${id}/deliveries?limit=1`)).body.items).toHaveLength(1);
      const missing = await t.api('GET', '/api/v2/hooks/00000000-0000-4000-8000-000000000000/deliveries');
      expect([missing.status, missing.body.code]).toEqual([404, 'HOOK.NOT_FOUND']);

      expect((await t.api('DELETE', `/api/v2/hooks/${id}`)).status).toBe(204);
      expect(await t.server.db.selectFrom('hook_deliveries').select('id').where('hook_id', '=', id).execute()).toEqual([]);
    });
  });
}
