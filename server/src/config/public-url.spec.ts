import { describe, expect, it } from 'vitest';
import { insecurePublicUrlWarning } from './public-url.js';

describe('insecurePublicUrlWarning', () => {
  it('warns for http:// on a name or an address other than loopback', () => {
    for (const u of ['http://backroll.example.com', 'http://10.0.0.5:5050', 'http://[2001:db8::1]:5050/', 'http://0.0.0.0:5050', 'http://localhost.example.com']) {
      expect(insecurePublicUrlWarning(u), u).toMatch(/plain HTTP .*reverse proxy .*BACKROLL_TRUST_PROXY/);
    }
  });

  it('is silent for https:// and for loopback (the default http://localhost:5050)', () => {
    for (const u of ['https://backroll.example.com', 'http://localhost:5050', 'http://LOCALHOST', 'http://ui.localhost:8080', 'http://127.0.0.1:5050', 'http://127.1.2.3', 'http://[::1]:5050']) {
      expect(insecurePublicUrlWarning(u), u).toBeNull();
    }
  });
});
