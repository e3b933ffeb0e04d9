import { describe, expect, it } from 'vitest';
import { insecurePublicUrlWarning, isLoopbackHost } from './public-url.js';

describe('the public URL check at start', () => {
  it('knows loopback addresses and names', () => {
    for (const h of ['localhost', 'LOCALHOST', 'api.localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1', '::ffff:127.0.0.1', 'localhost.']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['10.0.0.5', '192.168.1.10', '0.0.0.0', 'backroll.example.com', 'localhost.example.com', '[2001:db8::1]', '::', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('warns for http on a non-loopback address, with the fix', () => {
    for (const u of ['http://backroll.example.com', 'http://10.0.0.5:5050', 'http://[2001:db8::1]:5050/', 'http://0.0.0.0:5050']) {
      const w = insecurePublicUrlWarning(u);
      expect(w, u).toMatch(/plain http on a non-loopback address/);
      expect(w).toMatch(/deploy\/proxy\/Caddyfile.*nginx\.conf.*https:\/\/.*BACKROLL_TRUST_PROXY/);
    }
    // The default (http://localhost:<port>), loopback addresses and https: no warning.
    for (const u of ['http://localhost:5050', 'http://127.0.0.1:5050', 'http://[::1]:5050', 'https://backroll.example.com', 'https://10.0.0.5']) expect(insecurePublicUrlWarning(u), u).toBeNull();
  });
});
