import net from 'node:net';

/**
 * The warning `backroll start` prints when clients reach Backroll over plain HTTP on an address
 * other than loopback: bearer tokens, the bundled provider's sign-in and its cookies would cross
 * the network in clear. Null for https:// and for loopback (localhost, 127.0.0.0/8, ::1).
 */
export function insecurePublicUrlWarning(publicUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    return null; // loadConfig has refused it already
  }
  if (url.protocol !== 'http:') return null;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return null;
  if (net.isIPv4(host) && host.startsWith('127.')) return null;
  if (host === '::1') return null;
  return (
    `BACKROLL_PUBLIC_URL=${publicUrl} is plain HTTP on an address other than loopback: tokens and sign-ins cross the network unencrypted. ` +
    'Put a TLS reverse proxy in front (deploy/proxy/), then set BACKROLL_PUBLIC_URL=https://… and BACKROLL_TRUST_PROXY to the proxy.'
  );
}
