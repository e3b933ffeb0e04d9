import { describe, expect, it } from 'vitest';
import { buildCommand } from '../ssh/quote.js';
import { diskspec, snapshotArgv } from './snapshots.js';

describe('disk-only snapshot command', () => {
  it('escapes commas in diskspec paths and leaves disks out with snapshot=no', () => {
    expect(diskspec({ target: 'vda', overlay: '/vms/a,b.backroll-1.qcow2' })).toBe('vda,snapshot=external,driver=qcow2,file=/vms/a,,b.backroll-1.qcow2');
    expect(diskspec({ target: 'vdb', overlay: null })).toBe('vdb,snapshot=no');
  });

  it('is an argv addressed by uuid, quoted once for the remote shell', () => {
    const argv = snapshotArgv('3f2504e0-4f89-11d3-9a0c-0305e82c3301', 'backroll-1700000000', [{ target: 'vda', overlay: "/vms/evil$(x)'.backroll-1700000000.qcow2" }], true);
    expect(argv).toEqual([
      'snapshot-create-as', '--domain', '3f2504e0-4f89-11d3-9a0c-0305e82c3301', '--name', 'backroll-1700000000',
      '--disk-only', '--atomic', '--no-metadata', '--quiesce',
      '--diskspec', "vda,snapshot=external,driver=qcow2,file=/vms/evil$(x)'.backroll-1700000000.qcow2",
    ]);
    expect(buildCommand(argv)).toContain(`'vda,snapshot=external,driver=qcow2,file=/vms/evil$(x)'\\''.backroll-1700000000.qcow2'`);
  });
});
