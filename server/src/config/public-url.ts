/**
 * The start-up check of BACKROLL_PUBLIC_URL (pure): an `http://` public URL on an address other
 * than loopback means browsers and clients send the sign-in password, access tokens and session
 * cookies over the network in clear text. Backroll still starts (a lab, a trusted network), with
 * a warning that says how to fix it.
 */
import net from 'node:net';

export const INSECURE_PUBLIC_URL = 'CONFIG.PUBLIC_URL_INSECURE';

/** `localhost`, `*.localhost`, 127.0.0.0/8, ::1 (and ::ffff:127.x). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h) || /^0*:0*:0*:0*:0*:0*:0*:0*1$/.test(h);
  return false;
}

/** The warning to log at start, or null when the public URL is https or loopback. */
export function insecurePublicUrlWarning(publicUrl: string): string | null {
  let u: URL;
  try {
    u = new URL(publicUrl);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' || isLoopbackHost(u.hostname)) return null;
  return (
    `BACKROLL_PUBLIC_URL is ${u.origin}: plain http on a non-loopback address, so passwords, access tokens and session cookies cross the network unencrypted. ` +
    'Put an HTTPS reverse proxy in front of Backroll (examples: deploy/proxy/Caddyfile, deploy/proxy/nginx.conf), set BACKROLL_PUBLIC_URL to its https:// URL ' +
    "and BACKROLL_TRUST_PROXY to the proxy's address, and let Backroll listen on loopback only (BACKROLL_HOST=127.0.0.1)"
  );
}
