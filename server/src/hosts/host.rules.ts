import type { Result } from '../policies/policy.rules.js';

/** A DNS name (RFC 1123 labels), an IPv4 address or an IPv6 address (optionally bracketed). */
export function checkAddress(value: string): Result<string> {
  const v = value.trim().replace(/^\[(.*)\]$/, '$1');
  const label = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
  const dns = new RegExp(`^${label}(\\.${label})*\\.?$`);
  const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
  const ipv6 = /^[0-9A-Fa-f:.]+$/;
  if (v.length <= 253 && (ipv4.test(v) || (v.includes(':') && ipv6.test(v)) || (dns.test(v) && !/^[\d.]+$/.test(v)))) {
    return { ok: true, value: v };
  }
  return { ok: false, code: 'HOST.ADDRESS_INVALID', message: `"${value}" is not a host name or IP address` };
}

/** POSIX-portable user names: what `useradd` accepts by default. */
export function checkUsername(value: string): Result<string> {
  return /^[a-z_][a-z0-9_-]{0,31}\$?$/.test(value)
    ? { ok: true, value }
    : { ok: false, code: 'HOST.USERNAME_INVALID', message: `"${value}" is not a valid user name (lower-case letters, digits, _ and -, at most 32)` };
}

/**
 * Backroll runs virsh on the host itself, over SSH, so the URI must name a local
 * driver: qemu:///system or qemu:///session (transports to other machines are refused).
 */
export function checkLibvirtUri(value: string): Result<string> {
  return /^qemu:\/\/\/(system|session)$/.test(value)
    ? { ok: true, value }
    : {
        ok: false,
        code: 'HOST.LIBVIRT_URI_INVALID',
        message: `libvirt URI "${value}" is not supported: Backroll runs virsh on the host over SSH, use qemu:///system (or qemu:///session for a per-user libvirt)`,
      };
}

export function checkTags(tags: string[]): Result<string[]> {
  const bad = tags.find((t) => !/^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$/.test(t));
  return bad === undefined
    ? { ok: true, value: [...new Set(tags)] }
    : { ok: false, code: 'HOST.TAG_INVALID', message: `tag "${bad}" is invalid: up to 64 letters, digits, . _ : = -` };
}
