/**
 * The start-up warning for an http public URL on a non-loopback address, from a real server
 * start (embedded: SQLite, bundled provider) with its log captured: logged once for
 * http://backroll.example.com, not for the default public URL nor for an https one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/app/server.js';
import { loadConfig } from '../../src/config/config.js';
import { INSECURE_PUBLIC_URL } from '../../src/config/public-url.js';
import { freePort } from '../support/ports.js';

const dirs: string[] = [];

/** Starts the API role with the given public URL (unset: the default) and returns the warnings it logged. */
async function warningsAtStart(publicUrl?: string): Promise<Array<{ code?: string; msg: string; publicUrl?: string }>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-puburl-'));
  dirs.push(dataDir);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const config = loadConfig({
    BACKROLL_DATA_DIR: dataDir,
    BACKROLL_HOST: '127.0.0.1',
    BACKROLL_PORT: String(await freePort()),
    BACKROLL_INVENTORY_INTERVAL_SECONDS: '0',
    ...(publicUrl ? { BACKROLL_PUBLIC_URL: publicUrl } : {}),
  });
  const server = await startServer(config, { logger: pino({ level: 'warn' }, sink), onAdminCreated: () => {}, roles: ['api', 'worker', 'scheduler'] });
  await server.close();
  return lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string; publicUrl?: string }).filter((l) => l.level === 40);
}

describe('warning at start: http public URL on a non-loopback address', () => {
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('is logged for http://backroll.example.com, with the fix', async () => {
    const w = (await warningsAtStart('http://backroll.example.com')).filter((l) => l.code === INSECURE_PUBLIC_URL);
    expect(w).toHaveLength(1);
    expect(w[0]!.publicUrl).toBe('http://backroll.example.com');
    expect(w[0]!.msg).toMatch(/reverse proxy.*deploy\/proxy.*https:\/\/.*BACKROLL_TRUST_PROXY/);
  });

  it('is not logged with the default public URL, nor with an https one', async () => {
    expect((await warningsAtStart()).filter((l) => l.code === INSECURE_PUBLIC_URL)).toEqual([]);
    expect((await warningsAtStart('https://backroll.example.com')).filter((l) => l.code === INSECURE_PUBLIC_URL)).toEqual([]);
  });
});
