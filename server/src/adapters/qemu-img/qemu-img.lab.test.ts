/** qemu-img over real SSH on the lab's real disk images. */
import { afterAll, describe, expect, it } from 'vitest';
import { SshPool } from '../ssh/ssh-pool.js';
import { canaryPresent, lab, labConnectOptions, labSkipReason } from '../ssh/test-lab.js';
import { QemuImg } from './qemu-img.js';

describe.skipIf(!lab)(`qemu-img adapter over SSH against the KVM lab${labSkipReason}`, () => {
  const l = lab!;
  const h = l.hosts[0]!;
  const pool = new SshPool({ resolveHost: () => labConnectOptions(l, h.user) });
  const q = QemuImg.overSsh(pool.executor(h.name), { timeoutMs: 20_000 });
  afterAll(() => {
    pool.closeAll();
    expect(canaryPresent(l)).toEqual([]);
  });

  it('every lab disk: format, virtual size, backing chain as lab.json says (running VMs too: shared lock)', async () => {
    for (const vm of h.vms) {
      for (const d of vm.disks as unknown as Array<{ path: string; format: string; backing: string | null; sizeBytes: number }>) {
        const chain = await q.info(d.path, { format: d.format });
        expect(chain[0]).toMatchObject({ filename: d.path, format: d.format, virtualSizeBytes: d.sizeBytes, backingFilename: d.backing });
        expect(chain[0]!.actualSizeBytes).toBeGreaterThan(0);
        expect(chain.slice(1).map((i) => i.filename)).toEqual(d.backing ? [d.backing] : []);
      }
    }
  });

  it('the format is never probed: a qcow2 read as raw shows no backing file', async () => {
    const overlay = h.vms.flatMap((v) => v.disks).find((d) => d.backing)!;
    const chain = await q.info(overlay.path, { format: 'raw' });
    expect(chain).toHaveLength(1);
    expect(chain[0]).toMatchObject({ format: 'raw', backingFilename: null });
  });

  it('missing, unreadable and hostile paths: typed errors, and nothing runs', async () => {
    await expect(q.info(`${h.home}/vms/nope.qcow2`)).rejects.toMatchObject({ code: 'QEMU_IMG.IMAGE_NOT_FOUND' });
    await expect(q.info('/root/secret.qcow2')).rejects.toMatchObject({ code: 'QEMU_IMG.PERMISSION_DENIED' });
    await expect(q.info('/etc/passwd', { format: 'qcow2' })).rejects.toMatchObject({ code: 'QEMU_IMG.FAILED', message: expect.stringContaining('not in qcow2 format') });
    await expect(q.info(`${h.home}/vms/evil$(touch PWNED);'"\`id\` x.qcow2`)).rejects.toMatchObject({ code: 'QEMU_IMG.IMAGE_NOT_FOUND' });
    await expect(q.info('$(touch PWNED)')).rejects.toMatchObject({ code: 'QEMU_IMG.UNSAFE_PATH' });
    expect(canaryPresent(l)).toEqual([]);
  });
});
