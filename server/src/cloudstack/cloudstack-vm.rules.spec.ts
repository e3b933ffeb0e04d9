import { describe, expect, it } from 'vitest';
import type { CsStoragePool, CsVirtualMachine, CsVolume } from '../adapters/cloudstack/cloudstack-client.js';
import { indexInstances, matchInstance, parseVmInfo, poolMountPath, vmInfo, volumeFile, volumeFormat, volumeTarget } from './cloudstack-vm.rules.js';

const pool = (p: Partial<CsStoragePool>): CsStoragePool => ({ id: '44ad900d-785b-3eff-addc-a5e6bf4927ef', name: 'p', type: 'NetworkFilesystem', ...p });
const vol = (v: Partial<CsVolume>): CsVolume => ({ id: 'v1', name: 'ROOT-1', type: 'ROOT', deviceid: 0, path: 'abc', format: 'QCOW2', ...v });

describe('CloudStack VM rules', () => {
  it('matches a domain by uuid (case-insensitive), else by instance name; non-KVM instances never match', () => {
    const vms = [
      { id: 'AAAA-1', name: 'web', instancename: 'i-2-10-VM', state: 'Running', hypervisor: 'KVM' },
      { id: 'bbbb-2', name: 'db', instancename: 'i-2-11-VM', state: 'Running', hypervisor: 'VMware' },
    ] as CsVirtualMachine[];
    const ix = indexInstances(vms);
    expect(matchInstance({ uuid: 'aaaa-1', name: 'other' }, ix.byId, ix.byInstanceName)?.name).toBe('web');
    expect(matchInstance({ uuid: 'zzz', name: 'i-2-10-VM' }, ix.byId, ix.byInstanceName)?.name).toBe('web');
    expect(matchInstance({ uuid: 'bbbb-2', name: 'i-2-11-VM' }, ix.byId, ix.byInstanceName)).toBeUndefined();
  });

  it('keeps id, names, account, domain, project and state; a bad stored value reads as null', () => {
    const info = vmInfo({ id: 'AB', name: 'web', displayname: 'Web 1', instancename: 'i-2-10-VM', state: 'Stopped', account: 'acme', domain: 'ROOT/acme', project: 'p1' }, true);
    expect(info).toEqual({ id: 'ab', instanceName: 'i-2-10-VM', displayName: 'Web 1', account: 'acme', domain: 'ROOT/acme', project: 'p1', state: 'Stopped', stoppedOutsideLibvirt: true });
    expect(parseVmInfo(JSON.stringify(info))).toEqual(info);
    expect(parseVmInfo('{')).toBeNull();
    expect(parseVmInfo('{"id":1}')).toBeNull();
    expect(parseVmInfo(null)).toBeNull();
  });

  it('names guest devices as the KVM agent does', () => {
    expect(volumeTarget(vol({ deviceid: 0 }), {})).toBe('vda');
    expect(volumeTarget(vol({ type: 'DATADISK', deviceid: 4 }), {})).toBe('vde');
    expect(volumeTarget(vol({ deviceid: 0 }), { details: { rootDiskController: 'scsi' } })).toBe('sda');
    expect(volumeTarget(vol({ type: 'DATADISK', deviceid: 1 }), { details: { dataDiskController: 'ide' } })).toBe('hdb');
    expect(() => volumeTarget(vol({ deviceid: 99 }), {})).toThrow(/device id/);
  });

  it('pool directories: NFS at /mnt/<id>, local and shared mount points at their path, nothing else', () => {
    expect(poolMountPath(pool({}))).toBe('/mnt/44ad900d-785b-3eff-addc-a5e6bf4927ef');
    expect(poolMountPath(pool({ type: 'SharedMountPoint', path: '/srv/primary/' }))).toBe('/srv/primary');
    expect(poolMountPath(pool({ type: 'Filesystem', path: '/var/lib/libvirt/images' }))).toBe('/var/lib/libvirt/images');
    for (const p of ['relative', '/a/../etc', '/a//b', '']) expect(() => poolMountPath(pool({ type: 'Filesystem', path: p }))).toThrow(/not a plain absolute path/);
    expect(() => poolMountPath(pool({ type: 'RBD' }))).toThrow(/not a file-based pool/);
    expect(() => poolMountPath(pool({ id: '../../etc' }))).toThrow(/not a uuid/);
  });

  it('volume files stay directly inside the pool directory', () => {
    expect(volumeFile('/mnt/p', vol({ path: '0b7a3f5e-1111' }))).toBe('/mnt/p/0b7a3f5e-1111');
    expect(volumeFile('/mnt/p', vol({ path: '/mnt/p/0b7a' }))).toBe('/mnt/p/0b7a');
    for (const p of ['../x', '/mnt/p/../x', '/mnt/q/x', 'a/b', '.hidden', '', 'a\nb', '/mnt/p/sub/x']) expect(() => volumeFile('/mnt/p', vol({ path: p }))).toThrow(/it is not read/);
    expect(() => volumeFile('/mnt/p', vol({ path: undefined }))).toThrow(/no path/);
  });

  it('formats come from CloudStack: QCOW2 and RAW only', () => {
    expect(volumeFormat(vol({ format: 'QCOW2' }))).toBe('qcow2');
    expect(volumeFormat(vol({ format: 'RAW' }))).toBe('raw');
    expect(() => volumeFormat(vol({ format: 'VHD' }))).toThrow(/QCOW2 and RAW/);
    expect(() => volumeFormat(vol({ format: undefined }))).toThrow(/QCOW2 and RAW/);
  });
});
