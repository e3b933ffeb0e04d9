import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../crypto/secret-box.js';
import { AppError } from '../errors.js';
import { authenticate, hashPassword, readAccounts, verifyPassword } from './accounts.js';
import { MemoryAdapter, MemoryStore } from './adapters.js';
import { findMachineClient } from './clients.js';
import { createFileExclusive, withFileLock } from './files.js';
import { createMachineClient, deleteMachineClient, ensureAdminAccount, listMachineClients, resetAdminPassword } from './index.js';
import { loadCookieKeys, loadSigningKeys, pickSigningAlg } from './keys.js';
import { claimsAtPath, mountPathOf, resourceIndicatorFor } from './provider.js';
import { LoginThrottle } from './throttle.js';
import { escapeHtml, loginPage } from './views.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-idp-unit-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe('password hashing', () => {
  it('hashes with scrypt and a random salt, and verifies in constant time', async () => {
    const a = hashPassword('correct horse');
    const b = hashPassword('correct horse');
    expect(a).toMatch(/^scrypt\$15\$8\$1\$[\w-]+\$[\w-]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsf', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('refuses malformed or abusive stored hashes without throwing', async () => {
    expect(await verifyPassword('x', 'plain')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$30$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA')).toBe(false);
    expect(await verifyPassword('x', 'bcrypt$10$8$1$a$b')).toBe(false);
  });
});

describe('admin account', () => {
  it('is created once, with its password in a 0600 file and only a hash in the 0600 store', async () => {
    const dataDir = tempDir();
    const first = ensureAdminAccount(dataDir);
    expect(first.created).toBe(true);
    expect(first.password).toMatch(/^[\w-]{24}$/);
    expect(first.passwordFile).toBe(path.join(dataDir, 'admin-password.txt'));
    expect(fs.readFileSync(first.passwordFile, 'utf8')).toBe(`${first.password}\n`);
    expect(mode(first.passwordFile)).toBe(0o600);
    expect(mode(path.join(dataDir, 'idp'))).toBe(0o700);
    expect(mode(path.join(dataDir, 'idp', 'accounts.json'))).toBe(0o600);
    expect(fs.readFileSync(path.join(dataDir, 'idp', 'accounts.json'), 'utf8')).not.toContain(first.password);

    const [account] = readAccounts(dataDir);
    expect(account).toMatchObject({ username: 'admin', role: 'admin' });

    const second = ensureAdminAccount(dataDir);
    expect(second).toEqual({ created: false, passwordFile: first.passwordFile });
    expect(fs.readFileSync(first.passwordFile, 'utf8')).toBe(`${first.password}\n`);
    expect(readAccounts(dataDir)).toHaveLength(1);

    expect((await authenticate(dataDir, 'admin', first.password!))?.username).toBe('admin');
    expect(await authenticate(dataDir, 'admin', 'nope')).toBeUndefined();
    expect(await authenticate(dataDir, 'nobody', first.password!)).toBeUndefined();
  });

  it('gets a new password on reset, and the old one stops working', async () => {
    const dataDir = tempDir();
    const { password: old } = ensureAdminAccount(dataDir);
    const reset = resetAdminPassword(dataDir);
    expect(reset.password).not.toBe(old);
    expect(fs.readFileSync(reset.passwordFile, 'utf8').trim()).toBe(reset.password);
    expect(mode(reset.passwordFile)).toBe(0o600);
    expect(await authenticate(dataDir, 'admin', old!)).toBeUndefined();
    expect(await authenticate(dataDir, 'admin', reset.password)).toBeDefined();
    expect(readAccounts(dataDir)).toHaveLength(1);
  });

  it('reset creates the admin account when there is none yet', async () => {
    const dataDir = tempDir();
    const reset = resetAdminPassword(dataDir);
    expect(await authenticate(dataDir, 'admin', reset.password)).toBeDefined();
    expect(ensureAdminAccount(dataDir).created).toBe(false);
  });

  it('tightens a store file that others can read', () => {
    const dataDir = tempDir();
    ensureAdminAccount(dataDir);
    const file = path.join(dataDir, 'idp', 'accounts.json');
    fs.chmodSync(file, 0o644);
    readAccounts(dataDir);
    expect(mode(file)).toBe(0o600);
  });
});

describe('machine clients', () => {
  it('stores the secret sealed, lists without secrets and deletes', () => {
    const dataDir = tempDir();
    const box = SecretBox.openInDir(dataDir);
    const created = createMachineClient(dataDir, box, '  Nightly Export  ', 'viewer');
    expect(created).toMatchObject({ name: 'Nightly Export', role: 'viewer' });
    expect(created.clientId).toMatch(/^nightly-export-[0-9a-f]{8}$/);
    expect(Buffer.from(created.clientSecret, 'base64url').length).toBe(32);

    const file = path.join(dataDir, 'idp', 'clients.json');
    expect(mode(file)).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).not.toContain(created.clientSecret);
    const record = findMachineClient(dataDir, created.clientId)!;
    expect(record.secret.startsWith('v1:')).toBe(true);
    expect(box.decrypt(record.secret)).toBe(created.clientSecret);

    const listed = listMachineClients(dataDir);
    expect(listed).toEqual([{ clientId: created.clientId, name: 'Nightly Export', role: 'viewer', createdAt: expect.any(String) }]);
    expect(JSON.stringify(listed)).not.toContain(created.clientSecret);

    expect(deleteMachineClient(dataDir, created.clientId)).toBe(true);
    expect(listMachineClients(dataDir)).toEqual([]);
    expect(deleteMachineClient(dataDir, created.clientId)).toBe(false);
  });

  it('gives unique ids, falls back to "client" for names without letters, and refuses bad input', () => {
    const dataDir = tempDir();
    const box = SecretBox.openInDir(dataDir);
    const a = createMachineClient(dataDir, box, '§§§', 'admin');
    expect(a.clientId).toMatch(/^client-[0-9a-f]{8}$/);
    const b = createMachineClient(dataDir, box, '§§', 'admin');
    expect(b.clientId).not.toBe(a.clientId);

    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err instanceof AppError ? err.code : String(err);
      }
      return 'no error';
    };
    expect(code(() => createMachineClient(dataDir, box, '', 'admin'))).toBe('IDP.CLIENT_NAME_INVALID');
    expect(code(() => createMachineClient(dataDir, box, 'x'.repeat(65), 'admin'))).toBe('IDP.CLIENT_NAME_INVALID');
    expect(code(() => createMachineClient(dataDir, box, 'bad\nname', 'admin'))).toBe('IDP.CLIENT_NAME_INVALID');
    expect(code(() => createMachineClient(dataDir, box, 'ok', 'owner' as 'admin'))).toBe('IDP.CLIENT_ROLE_INVALID');
    expect(code(() => createMachineClient(dataDir, box, '§§§', 'viewer'))).toBe('IDP.CLIENT_EXISTS');
  });
});

describe('keys', () => {
  it('generates the signing JWKS once, and adds a key when the algorithm changes', async () => {
    const dataDir = tempDir();
    const first = await loadSigningKeys(dataDir, 'ES256');
    expect(first.keys).toHaveLength(1);
    expect(first.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(first.keys[0]?.kid).toBeTruthy();
    const file = path.join(dataDir, 'idp', 'jwks.json');
    expect(mode(file)).toBe(0o600);

    expect(await loadSigningKeys(dataDir, 'ES256')).toEqual(first);
    const rotated = await loadSigningKeys(dataDir, 'RS256');
    expect(rotated.keys.map((k) => k.alg)).toEqual(['RS256', 'ES256']);
    expect(rotated.keys[1]).toEqual(first.keys[0]);
  });

  it('generates the cookie keys once', () => {
    const dataDir = tempDir();
    const keys = loadCookieKeys(dataDir);
    expect(keys).toHaveLength(1);
    expect(keys[0]!.length).toBeGreaterThanOrEqual(43);
    expect(loadCookieKeys(dataDir)).toEqual(keys);
    expect(mode(path.join(dataDir, 'idp', 'cookie-keys.json'))).toBe(0o600);
  });

  it('picks the first algorithm both accepted and issuable', () => {
    expect(pickSigningAlg(['RS256', 'PS256', 'ES256', 'EdDSA'])).toBe('ES256');
    expect(pickSigningAlg(['PS256', 'RS256'])).toBe('RS256');
    expect(pickSigningAlg(['EdDSA'])).toBe('EdDSA');
    expect(pickSigningAlg(['ES512'])).toBeUndefined();
  });
});

describe('files', () => {
  it('creates a file exclusively, once', () => {
    const file = path.join(tempDir(), 'x.json');
    expect(createFileExclusive(file, 'a')).toBe(true);
    expect(createFileExclusive(file, 'b')).toBe(false);
    expect(fs.readFileSync(file, 'utf8')).toBe('a');
    expect(mode(file)).toBe(0o600);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['x.json']); // no temp file left
  });

  it('takes over a stale lock and releases it', () => {
    const file = path.join(tempDir(), 'store.json');
    fs.writeFileSync(`${file}.lock`, '');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(`${file}.lock`, old, old);
    expect(withFileLock(file, () => 42)).toBe(42);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });
});

describe('provider helpers', () => {
  it('builds the roles claim at a dotted path', () => {
    expect(claimsAtPath('roles', ['admin'])).toEqual({ roles: ['admin'] });
    expect(claimsAtPath('realm_access.roles', ['admin'])).toEqual({ realm_access: { roles: ['admin'] } });
    expect(claimsAtPath('https://backroll/claims.roles', ['viewer'])).toEqual({ 'https://backroll/claims': { roles: ['viewer'] } });
    const proto = claimsAtPath('__proto__.roles', ['x']);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(JSON.stringify(proto)).toBe('{"__proto__":{"roles":["x"]}}');
  });

  it('derives the resource indicator and the mount path', () => {
    expect(resourceIndicatorFor('backroll')).toBe('urn:backroll:api');
    expect(resourceIndicatorFor('https://backroll.example/api')).toBe('https://backroll.example/api');
    expect(resourceIndicatorFor('api://backroll')).toBe('api://backroll');
    expect(mountPathOf('http://127.0.0.1:5050/oidc')).toBe('/oidc');
    expect(mountPathOf('https://example.com/backroll/oidc/')).toBe('/backroll/oidc');
  });

  it('escapes HTML', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const html = loginPage({ action: '/oidc/interaction/"x', abortAction: '/a', username: '<script>', error: '<b>' });
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).toContain('action="/oidc/interaction/&quot;x"');
  });
});

describe('login throttle', () => {
  it('allows a few failures, then locks out with a doubling delay, and forgets after success', () => {
    const t = new LoginThrottle(3, 1000, 8000, 60_000);
    const now = 1_000_000;
    for (let i = 0; i < 3; i++) t.recordFailure('ip', now);
    expect(t.retryAfterMs('ip', now)).toBe(0);
    t.recordFailure('ip', now);
    expect(t.retryAfterMs('ip', now)).toBe(1000);
    t.recordFailure('ip', now + 1000);
    expect(t.retryAfterMs('ip', now + 1000)).toBe(2000);
    for (let i = 0; i < 10; i++) t.recordFailure('ip', now + 2000);
    expect(t.retryAfterMs('ip', now + 2000)).toBe(8000); // capped
    expect(t.retryAfterMs('other', now)).toBe(0);
    t.recordSuccess('ip');
    expect(t.retryAfterMs('ip', now + 2000)).toBe(0);
  });

  it('forgets failures after a quiet period', () => {
    const t = new LoginThrottle(1, 1000, 8000, 60_000);
    t.recordFailure('ip', 0);
    t.recordFailure('ip', 0);
    expect(t.retryAfterMs('ip', 500)).toBe(500);
    expect(t.retryAfterMs('ip', 61_000)).toBe(0);
    t.recordFailure('ip', 61_000);
    expect(t.retryAfterMs('ip', 61_000)).toBe(0); // counts from 1 again
  });

  it('counts attempts still being checked: parallel guesses get the free failures, then one at a time', () => {
    const t = new LoginThrottle(3, 1000, 8000, 60_000);
    const now = 1_000_000;
    const slots = Array.from({ length: 6 }, () => t.begin('ip', now));
    expect(slots.map((s) => s.ok)).toEqual([true, true, true, false, false, false]);
    for (let i = 0; i < 3; i++) t.end('ip', false, now);
    // The free failures are used: one guess at a time, and each failure locks the address.
    expect(t.begin('ip', now)).toMatchObject({ ok: true });
    expect(t.begin('ip', now)).toMatchObject({ ok: false });
    t.end('ip', false, now);
    expect(t.begin('ip', now + 999)).toEqual({ ok: false, retryAfterMs: 1 });
    // After the lock expires, parallel guesses again get one check, not one each.
    expect([t.begin('ip', now + 1000), t.begin('ip', now + 1000), t.begin('ip', now + 1000)].map((x) => x.ok)).toEqual([true, false, false]);
    t.end('ip', false, now + 1000);
    expect(t.retryAfterMs('ip', now + 1000)).toBe(2000);
    // A success resets the count; an abandoned attempt (server busy) counts nothing.
    expect(t.begin('other', now)).toMatchObject({ ok: true });
    t.abandon('other');
    expect(t.begin('other', now)).toMatchObject({ ok: true });
    t.end('other', true, now);
    expect(t.retryAfterMs('other', now)).toBe(0);
  });

  it('runs at most maxConcurrentChecks password checks at once and refuses beyond the queue', async () => {
    const t = new LoginThrottle(5, 1000, 8000, 60_000, 10_000, 2, 3);
    let active = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const job = () =>
      t.check(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise<void>((r) => release.push(r));
        active--;
      });
    const running = Array.from({ length: 5 }, job);
    await expect(job()).rejects.toMatchObject({ code: 'IDP.BUSY' });
    while (release.length > 0 || active > 0) {
      await new Promise((r) => setTimeout(r, 5));
      release.splice(0).forEach((r) => r());
    }
    await Promise.all(running);
    expect(peak).toBe(2);
    expect(t.peakChecks).toBe(2);
  });
});

describe('in-memory adapter', () => {
  it('stores with expiry, finds by uid, consumes and revokes by grant', async () => {
    const store = new MemoryStore(100, 0);
    const sessions = new MemoryAdapter('Session', store);
    const tokens = new MemoryAdapter('AccessToken', store);
    await sessions.upsert('s1', { uid: 'u1', accountId: 'admin' }, 60);
    expect(await sessions.findByUid('u1')).toMatchObject({ accountId: 'admin' });

    await tokens.upsert('t1', { grantId: 'g1' }, 60);
    await tokens.upsert('t2', { grantId: 'g1' }, 60);
    await tokens.upsert('t3', { grantId: 'g2' }, 60);
    await tokens.consume('t3');
    expect((await tokens.find('t3'))?.consumed).toEqual(expect.any(Number));
    await tokens.revokeByGrantId('g1');
    expect(await tokens.find('t1')).toBeUndefined();
    expect(await tokens.find('t2')).toBeUndefined();
    expect(await tokens.find('t3')).toBeDefined();

    await tokens.upsert('short', {}, -1); // already expired
    expect(await tokens.find('short')).toBeUndefined();
    await tokens.destroy('t3');
    expect(await tokens.find('t3')).toBeUndefined();
  });

  it('evicts the oldest entries beyond its bound', async () => {
    const store = new MemoryStore(10, 0);
    const a = new MemoryAdapter('Interaction', store);
    for (let i = 0; i < 30; i++) await a.upsert(`i${i}`, { n: i }, 600);
    expect(store.size).toBeLessThanOrEqual(10);
    expect(await a.find('i29')).toEqual({ n: 29 });
    expect(await a.find('i0')).toBeUndefined();
  });
});
