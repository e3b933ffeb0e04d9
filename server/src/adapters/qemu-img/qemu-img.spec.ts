import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseQemuImgInfo } from './qemu-img-info.js';
import { classifyQemuImgFailure, QemuImg, type CommandResult } from './qemu-img.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const fail = (stderr: string, code = 1): CommandResult => ({ code, stdout: '', stderr });

describe('parseQemuImgInfo', () => {
  it('a qcow2 overlay on a base (qemu-img 7.2 --backing-chain output)', () => {
    expect(parseQemuImgInfo(fixture('chain.json'))).toEqual([
      {
        filename: '/home/kvmhost1/vms/vm-template-vda.qcow2',
        format: 'qcow2',
        virtualSizeBytes: 67108864,
        actualSizeBytes: 1314816,
        backingFilename: '/home/kvmhost1/templates/base.qcow2',
        backingFormat: 'qcow2',
        dirty: false,
        encrypted: false,
      },
      {
        filename: '/home/kvmhost1/templates/base.qcow2',
        format: 'qcow2',
        virtualSizeBytes: 67108864,
        actualSizeBytes: 1314816,
        backingFilename: null,
        backingFormat: null,
        dirty: false,
        encrypted: false,
      },
    ]);
  });

  it('a single object (no --backing-chain), a relative backing name, no actual size', () => {
    const out = JSON.stringify({ filename: '/v/a.qcow2', format: 'qcow2', 'virtual-size': 10, 'backing-filename': 'b.qcow2', 'dirty-flag': true, encrypted: true });
    expect(parseQemuImgInfo(out)).toEqual([
      { filename: '/v/a.qcow2', format: 'qcow2', virtualSizeBytes: 10, actualSizeBytes: null, backingFilename: 'b.qcow2', backingFormat: null, dirty: true, encrypted: true },
    ]);
  });

  it('refuses what is not qemu-img info JSON', () => {
    for (const out of ['', 'qemu-img: oops', '[]', '[1]', '{"format":"raw","virtual-size":1}', '{"filename":"/a","virtual-size":1}', '{"filename":"/a","format":"raw"}', '{"filename":"/a","format":"raw","virtual-size":-1}', '{"filename":"/a","format":"raw","virtual-size":"1"}', '{"filename":"/a","format":"raw","virtual-size":1e300}']) {
      expect(() => parseQemuImgInfo(out), out).toThrow(expect.objectContaining({ code: 'QEMU_IMG.BAD_OUTPUT' }));
    }
    const deep = JSON.stringify(Array.from({ length: 300 }, () => ({ filename: '/a', format: 'raw', 'virtual-size': 1 })));
    expect(() => parseQemuImgInfo(deep)).toThrow(/chain of 300/);
  });
});

describe('classifyQemuImgFailure', () => {
  it('maps qemu-img 7.2 stderr to a code per cause', () => {
    const p = '/home/kvmhost1/vms/nope.qcow2';
    expect(classifyQemuImgFailure(fail(`qemu-img: Could not open '${p}': Could not open '${p}': No such file or directory\n`), p)).toMatchObject({ code: 'QEMU_IMG.IMAGE_NOT_FOUND', kind: 'not_found' });
    expect(classifyQemuImgFailure(fail("qemu-img: Could not open '/root/x': Could not open '/root/x': Permission denied\n"), '/root/x')).toMatchObject({ code: 'QEMU_IMG.PERMISSION_DENIED' });
    expect(classifyQemuImgFailure(fail("qemu-img: Could not open '/etc/passwd': Image is not in qcow2 format\n"), '/etc/passwd')).toMatchObject({
      code: 'QEMU_IMG.FAILED',
      message: expect.stringContaining('Image is not in qcow2 format'),
    });
    expect(classifyQemuImgFailure(fail('env: ‘qemu-img’: No such file or directory\n', 127), '/a')).toMatchObject({ code: 'QEMU_IMG.NOT_INSTALLED' });
    expect(classifyQemuImgFailure(fail('', 1), '/a').message).toContain('exit code 1');
  });
});

describe('QemuImg', () => {
  const recorder = (result: CommandResult) => {
    const calls: string[][] = [];
    const q = new QemuImg(async (argv, o) => {
      calls.push([...argv]);
      expect(o.timeoutMs).toBe(5000);
      return result;
    }, { timeoutMs: 5000 });
    return { q, calls };
  };

  it('runs one argv: shared lock, JSON, the known format (raw when unknown), the path after --', async () => {
    const { q, calls } = recorder({ code: 0, stdout: fixture('chain.json'), stderr: '' });
    const chain = await q.info('/home/kvmhost1/vms/vm-template-vda.qcow2', { format: 'qcow2' });
    expect(chain.map((i) => i.filename)).toEqual(['/home/kvmhost1/vms/vm-template-vda.qcow2', '/home/kvmhost1/templates/base.qcow2']);
    await q.info('/dev/vg/lv', { format: null, backingChain: false });
    expect(calls).toEqual([
      ['env', 'LC_ALL=C', 'qemu-img', 'info', '--backing-chain', '--force-share', '--output=json', '-f', 'qcow2', '--', '/home/kvmhost1/vms/vm-template-vda.qcow2'],
      ['env', 'LC_ALL=C', 'qemu-img', 'info', '--force-share', '--output=json', '-f', 'raw', '--', '/dev/vg/lv'],
    ]);
  });

  it('never passes a relative path, a protocol, an option or a strange format', async () => {
    const { q, calls } = recorder({ code: 0, stdout: '{}', stderr: '' });
    for (const p of ['vms/a.qcow2', 'json:{"file.filename":"/etc/shadow"}', 'nbd:127.0.0.1:10809', '-U', '', '~/a.qcow2']) {
      await expect(q.info(p), p).rejects.toMatchObject({ code: 'QEMU_IMG.UNSAFE_PATH' });
    }
    await expect(q.info('/a', { format: 'qcow2 -U' })).rejects.toMatchObject({ code: 'QEMU_IMG.UNSAFE_PATH' });
    expect(calls).toEqual([]);
  });

  it('a failure becomes a typed error carrying stderr', async () => {
    const { q } = recorder(fail("qemu-img: Could not open '/x': Could not open '/x': No such file or directory"));
    await expect(q.info('/x')).rejects.toMatchObject({ code: 'QEMU_IMG.IMAGE_NOT_FOUND', details: { path: '/x', exitCode: 1 } });
  });
});
