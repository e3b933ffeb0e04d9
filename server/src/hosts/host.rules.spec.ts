import { describe, expect, it } from 'vitest';
import { checkAddress, checkLibvirtUri, checkTags, checkUsername } from './host.rules.js';

describe('host rules', () => {
  it('accepts host names and IP addresses, refuses the rest', () => {
    for (const ok of ['kvm1', 'kvm-1.example.org', '127.0.0.1', '10.0.0.254', '::1', '[fe80::1]', 'a.b']) expect(checkAddress(ok).ok, ok).toBe(true);
    for (const bad of ['', '-kvm', 'kvm_1', '999.1.1.1', 'host name', 'a;rm -rf /', '$(id)', 'x'.repeat(254)]) {
      expect(checkAddress(bad), bad).toMatchObject({ ok: false, code: 'HOST.ADDRESS_INVALID' });
    }
  });
  it('accepts POSIX user names only', () => {
    expect(checkUsername('root').ok).toBe(true);
    expect(checkUsername('kvmhost1').ok).toBe(true);
    for (const bad of ['Root', '1abc', 'a b', 'a;b', '', 'x'.repeat(33)]) expect(checkUsername(bad).ok, bad).toBe(false);
  });
  it('accepts only local qemu URIs', () => {
    expect(checkLibvirtUri('qemu:///system').ok).toBe(true);
    expect(checkLibvirtUri('qemu:///session').ok).toBe(true);
    for (const bad of ['qemu+ssh://other/system', 'xen:///', 'qemu:///system?socket=/tmp/x', '']) {
      expect(checkLibvirtUri(bad)).toMatchObject({ ok: false, code: 'HOST.LIBVIRT_URI_INVALID' });
    }
  });
  it('validates and de-duplicates tags', () => {
    expect(checkTags(['rack:1', 'rack:1', 'ssd'])).toEqual({ ok: true, value: ['rack:1', 'ssd'] });
    expect(checkTags(['bad tag'])).toMatchObject({ ok: false, code: 'HOST.TAG_INVALID' });
  });
});
