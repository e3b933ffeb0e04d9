/**
 * The image writer (server/python/backroll_image_writer.py) against a real qemu-nbd and a real
 * borg, without a VM: a full read archives an image that converts back to the disk's bytes;
 * an NBD connection that breaks mid-read (its reader thread reads ahead) ends the writer
 * promptly with BACKUP.NBD_FAILED and leaves no archive.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeProcessRunner } from '../process/process-runner.js';
import { Borg, type RepoAccess } from './borg.js';
import { BorgReader } from './extract.js';
import { ImageWriter } from './image-writer.js';

const missing = ['borg', 'qemu-nbd', 'qemu-img'].filter((c) => spawnSync(c, ['--version']).status !== 0);
const MiB = 1024 * 1024;
const SIZE = 48 * MiB;

describe.skipIf(missing.length > 0)(`image writer against qemu-nbd${missing.length ? ` (SKIPPED: ${missing.join(', ')} not installed)` : ''}`, () => {
  let tmp: string;
  let borg: Borg;
  let access: RepoAccess;
  let writer: ImageWriter;
  let raw: Buffer;
  const sock = () => path.join(tmp, 'nbd.sock');

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-writer-'));
    raw = randomBytes(SIZE);
    // A zero MiB in the middle: the writer skips zero extents and must still archive them as zeros.
    raw.fill(0, 20 * MiB, 21 * MiB);
    fs.writeFileSync(path.join(tmp, 'disk.raw'), raw);
    const conv = spawnSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=1.1', path.join(tmp, 'disk.raw'), path.join(tmp, 'disk.qcow2')], { encoding: 'utf8' });
    expect(conv.status, conv.stderr).toBe(0);
    const nbd = spawnSync('qemu-nbd', ['-r', '-k', sock(), '-f', 'qcow2', '-x', 'vda', '--fork', '--persistent', '--shared=8', '--pid-file', path.join(tmp, 'nbd.pid'), path.join(tmp, 'disk.qcow2')], { encoding: 'utf8' });
    expect(nbd.status, nbd.stderr).toBe(0);
    borg = new Borg({ baseDir: tmp });
    access = { repo: path.join(tmp, 'repo'), unencrypted: true };
    await borg.init(access, 'none');
    writer = new ImageWriter(borg, nodeProcessRunner);
  });
  afterAll(() => {
    try {
      process.kill(Number(fs.readFileSync(path.join(tmp, 'nbd.pid'), 'utf8').trim()));
    } catch {
      /* already gone */
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const options = (archive: string, socket: string) => ({ archive, baseArchive: null, bitmap: null, itemPath: 'vms/disk.qcow2', compression: 'lz4', timestamp: new Date('2026-12-03T05:00:00Z'), socket, exportName: 'vda', virtualSize: SIZE });

  it('a full read archives a complete qcow2 image of the disk', async () => {
    const r = await writer.write(access, options('full', sock()));
    expect(r.mode).toBe('full');
    expect(r.bytesRead).toBe(SIZE - MiB); // the zero MiB is not read
    const out = path.join(tmp, 'x');
    fs.mkdirSync(out);
    const x = spawnSync('borg', ['extract', `${access.repo}::full`], { cwd: out, env: { ...process.env, BORG_BASE_DIR: tmp, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' }, encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    const back = path.join(tmp, 'back.raw');
    const c = spawnSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', path.join(out, 'vms/disk.qcow2'), back], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    expect(fs.readFileSync(back).equals(raw)).toBe(true);
  }, 60_000);

  it('writes the config archive in the same process once it has the disk result; reports each archive as written', async () => {
    const written: string[] = [];
    const files = [
      { name: 'domain.xml', data: Buffer.from("<domain><name>vm-ü</name></domain>") },
      { name: 'backroll.json', data: Buffer.from('{"read":{"mode":"full"}}\n') },
      { name: 'empty', data: Buffer.alloc(0) },
    ];
    let seen: number | null = null;
    const r = await writer.write(access, {
      ...options('vda_1796272300', sock()),
      onWritten: (a) => written.push(a),
      thenConfig: async (disk) => {
        seen = disk.bytesRead;
        return { archive: 'config_1796272300', timestamp: new Date(1796272300 * 1000), files };
      },
    });
    expect(seen).toBe(SIZE - MiB);
    expect(written).toEqual(['vda_1796272300', 'config_1796272300']);
    expect(r.config?.archive).toBe('config_1796272300');
    // borg counts the files and the archive's item metadata.
    expect(r.config!.originalSize).toBeGreaterThanOrEqual(files.reduce((s, f) => s + f.data.length, 0));
    const got = await new BorgReader({ baseDir: tmp }).readSmallFiles(access, 'config_1796272300');
    expect(got.map((f) => [f.path, f.data.toString()])).toEqual(files.map((f) => [f.name, f.data.toString()]));
    const info = spawnSync('borg', ['info', '--json', `${access.repo}::config_1796272300`], { env: { ...process.env, BORG_BASE_DIR: tmp, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' }, encoding: 'utf8' });
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout).archives[0].start).toBe(`${new Date(1796272300 * 1000).toISOString().slice(0, 19)}.000000`);
  }, 60_000);

  it('a config that cannot be prepared: the disk archive was reported written (so the caller removes it), the error says why', async () => {
    const written: string[] = [];
    const err = (await writer
      .write(access, {
        ...options('vda_1796272400', sock()),
        onWritten: (a) => written.push(a),
        thenConfig: async () => {
          throw new Error('database gone');
        },
      })
      .catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err.code).toBe('BACKUP.CONFIG_FAILED');
    expect(err.message).toMatch(/database gone/);
    expect(written).toEqual(['vda_1796272400']);
    expect((await borg.list(access)).map((a) => a.name)).not.toContain('config_1796272400');
  }, 60_000);

  it('an NBD connection cut mid-read: BACKUP.NBD_FAILED at once, no archive written', async () => {
    // A proxy in front of qemu-nbd that breaks every connection after 8 MiB of data towards the writer
    // (qemu-img map's connections carry far less and pass).
    const proxyPath = path.join(tmp, 'proxy.sock');
    const proxy = net.createServer((client) => {
      const upstream = net.connect(sock());
      let sent = 0;
      upstream.on('data', (d: Buffer) => {
        sent += d.length;
        if (sent > 8 * MiB) {
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(d);
      });
      client.on('data', (d: Buffer) => upstream.write(d));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(proxyPath, r));
    try {
      const t0 = Date.now();
      const err = (await writer.write(access, options('cut', proxyPath)).catch((e: unknown) => e)) as { code?: string; message?: string };
      expect(err.code, err.message).toBe('BACKUP.NBD_FAILED');
      expect(err.message).toMatch(/NBD connection closed/);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect((await borg.list(access)).map((a) => a.name)).not.toContain('cut');
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  }, 60_000);
});
