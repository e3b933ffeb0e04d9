/** imageChain with the real qemu-img on real image files: formats never probed, backing names checked before anything opens them. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeProcessRunner } from '../adapters/process/process-runner.js';
import { imageChain, unsafeBackingName } from './disk-image.js';

function qemuImg(...args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
}

/** A raw disk whose guest wrote a qcow2 header naming `backing` at offset 0 (the bytes a guest can write). */
export function rawDiskWithFakeHeader(file: string, backing: string, sizeBytes = 4 << 20): void {
  const header = `${file}.hdr`;
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw', header, String(sizeBytes));
  const bytes = fs.readFileSync(header);
  fs.rmSync(header);
  fs.writeFileSync(file, bytes);
  fs.truncateSync(file, sizeBytes);
}

describe('imageChain (real qemu-img)', () => {
  let dir: string;
  let secret: string;
  let server: net.Server;
  let port: number;
  let connections = 0;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-disk-image-'));
    secret = path.join(dir, 'secret.key');
    fs.writeFileSync(secret, 'top secret key material\n', { mode: 0o600 });
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a raw disk whose guest wrote a qcow2 header naming a worker file or a network export: read as raw, nothing followed', async () => {
    const toSecret = path.join(dir, 'guest-secret.raw');
    rawDiskWithFakeHeader(toSecret, secret);
    const toNbd = path.join(dir, 'guest-nbd.raw');
    rawDiskWithFakeHeader(toNbd, `nbd://127.0.0.1:${port}/x`);
    // Probing would see qcow2 here: the header really is there.
    expect(JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', toSecret], { encoding: 'utf8' }).stdout)).toMatchObject({ format: 'qcow2' });
    for (const declared of [{ format: 'raw' }, { format: null }, {}]) {
      expect(await imageChain(nodeProcessRunner, toSecret, declared)).toEqual([{ filename: toSecret, format: 'raw', virtualSize: 4 << 20, actualSize: expect.any(Number), backingFilename: null }]);
      expect((await imageChain(nodeProcessRunner, toNbd, declared)).map((i) => [i.format, i.backingFilename])).toEqual([['raw', null]]);
    }
    expect(connections).toBe(0);
  });

  it('a qcow2 disk: its recorded backing file with its recorded format; protocol and relative names refused before anything opens them', async () => {
    const base = path.join(dir, 'base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '1M');
    const top = path.join(dir, 'top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top, '1M');
    const chain = await imageChain(nodeProcessRunner, top, { format: 'qcow2' });
    expect(chain.map((i) => [i.filename, i.format, i.backingFilename])).toEqual([
      [top, 'qcow2', base],
      [base, 'qcow2', null],
    ]);
    // libvirt reports the same chain (a running domain): accepted.
    expect(await imageChain(nodeProcessRunner, top, { format: 'qcow2', libvirtChain: [{ type: 'file', path: base, format: 'qcow2' }] })).toHaveLength(2);
    // libvirt reports another chain: the header is not what the host's disk has.
    await expect(imageChain(nodeProcessRunner, top, { format: 'qcow2', libvirtChain: [{ type: 'file', path: '/var/lib/libvirt/images/base.qcow2', format: 'qcow2' }] })).rejects.toMatchObject({
      code: 'BACKUP.BACKING_CHAIN_MISMATCH',
      message: expect.stringContaining('libvirt reports "/var/lib/libvirt/images/base.qcow2"'),
    });

    for (const name of [`nbd://127.0.0.1:${port}/x`, `nbd:127.0.0.1:${port}`, `json:{"file.driver":"nbd","file.host":"127.0.0.1","file.port":"${port}"}`, `http://127.0.0.1:${port}/x`]) {
      const evil = path.join(dir, 'evil.qcow2');
      fs.rmSync(evil, { force: true });
      qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', name, '-F', 'raw', evil, '1M');
      await expect(imageChain(nodeProcessRunner, evil, { format: 'qcow2' }), name).rejects.toMatchObject({ code: 'BACKUP.BACKING_CHAIN_INVALID' });
    }
    expect(connections).toBe(0);
  });

  it('a backing file whose format is not recorded is refused (it would be probed), unless libvirt reports it', async () => {
    const base = path.join(dir, 'plain.raw');
    fs.writeFileSync(base, Buffer.alloc(1 << 20));
    const top = path.join(dir, 'noformat.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', top, '1M');
    // Drop the recorded backing format (as images made by old qemu-img have it): turn its header
    // extension (magic 0xE2792ACA) into an unknown one, which qemu ignores.
    const bytes = fs.readFileSync(top);
    const at = bytes.subarray(0, 65536).indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
    expect(at).toBeGreaterThan(0);
    bytes.writeUInt32BE(0x0b0b0b0b, at);
    fs.writeFileSync(top, bytes);
    const header = JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', '-f', 'qcow2', top], { encoding: 'utf8' }).stdout) as Record<string, unknown>;
    expect(header['backing-filename-format']).toBeUndefined();
    await expect(imageChain(nodeProcessRunner, top, { format: 'qcow2' })).rejects.toMatchObject({ code: 'BACKUP.BACKING_FORMAT_UNKNOWN', message: expect.stringContaining('qemu-img rebase -u -F') });
    const chain = await imageChain(nodeProcessRunner, top, { format: 'qcow2', libvirtChain: [{ type: 'file', path: base, format: 'raw' }] });
    expect(chain.map((i) => i.format)).toEqual(['qcow2', 'raw']);
  });

  it('names a backing file may have (pure)', () => {
    expect(unsafeBackingName('/home/kvm/templates/base.qcow2')).toBeNull();
    expect(unsafeBackingName('nbd://h:1')).toMatch(/protocol \(nbd:\)/);
    expect(unsafeBackingName('json:{}')).toMatch(/protocol \(json:\)/);
    expect(unsafeBackingName('base.qcow2')).toMatch(/not an absolute path/);
    expect(unsafeBackingName('/a/../etc/shadow')).toMatch(/"\.\."/);
    expect(unsafeBackingName('/a\nb')).toMatch(/control/);
    expect(unsafeBackingName('')).toMatch(/empty/);
  });
});
