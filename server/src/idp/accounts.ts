import { randomBytes, scrypt, scryptSync, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { ensureIdpDir, idpPaths, readJson, withFileLock, writeFileAtomic } from './files.js';

/** The two Backroll roles an account or machine client can hold. */
export type IdpRole = 'admin' | 'viewer';
export const IDP_ROLES: readonly IdpRole[] = ['admin', 'viewer'];
export const ADMIN_USERNAME = 'admin';

export interface AccountRecord {
  username: string;
  role: IdpRole;
  /** `scrypt$<log2 N>$<r>$<p>$<salt b64url>$<hash b64url>` */
  passwordHash: string;
  createdAt: string;
  updatedAt: string;
}

interface AccountsFile {
  version: 1;
  accounts: AccountRecord[];
}

// scrypt cost: N=2^15, r=8, p=1 (~32 MiB, ~50-100 ms): the OWASP recommended minimum.
const LOG2_N = 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const SALT_LEN = 16;
const maxmemFor = (log2N: number, r: number) => 128 * r * 2 ** log2N * 2;

export function generatePassword(): string {
  // 18 random bytes: 144 bits, 24 URL-safe characters.
  return randomBytes(18).toString('base64url');
}

export function hashPassword(password: string): string {
  const salt = randomBytes(SALT_LEN);
  const hash = scryptSync(password.normalize('NFC'), salt, KEY_LEN, { N: 2 ** LOG2_N, r: R, p: P, maxmem: maxmemFor(LOG2_N, R) });
  return ['scrypt', LOG2_N, R, P, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

function scryptAsync(password: string, salt: Buffer, keyLen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Constant-time check of a password against a stored hash; false on any malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [log2N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  // Bounds guard against a tampered file making us burn memory/CPU.
  if (![log2N, r, p].every(Number.isInteger) || log2N < 10 || log2N > 20 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const expected = Buffer.from(parts[5] ?? '', 'base64url');
  if (salt.length < 8 || expected.length < 16) return false;
  const actual = await scryptAsync(password.normalize('NFC'), salt, expected.length, { N: 2 ** log2N, r, p, maxmem: maxmemFor(log2N, r) });
  return timingSafeEqual(actual, expected);
}

// Checked when the username is unknown, so the response time does not reveal which accounts exist.
let dummyHash: string | undefined;

export function readAccounts(dataDir: string): AccountRecord[] {
  const raw = readJson(idpPaths(dataDir).accounts) as Partial<AccountsFile> | undefined;
  if (raw === undefined) return [];
  if (!Array.isArray(raw.accounts)) throw new Error(`${idpPaths(dataDir).accounts} has no "accounts" list; restore it from a backup`);
  return raw.accounts.filter(
    (a): a is AccountRecord =>
      typeof a?.username === 'string' && typeof a.passwordHash === 'string' && (IDP_ROLES as readonly string[]).includes(a.role),
  );
}

export function findAccountRecord(dataDir: string, username: string): AccountRecord | undefined {
  return readAccounts(dataDir).find((a) => a.username === username);
}

/** The account when username and password match, otherwise undefined (same time either way). */
export async function authenticate(dataDir: string, username: string, password: string): Promise<AccountRecord | undefined> {
  const account = findAccountRecord(dataDir, username);
  if (!account) {
    dummyHash ??= hashPassword(generatePassword());
    await verifyPassword(password, dummyHash);
    return undefined;
  }
  return (await verifyPassword(password, account.passwordHash)) ? account : undefined;
}

function updateAccounts<T>(dataDir: string, fn: (accounts: AccountRecord[]) => T): T {
  const paths = ensureIdpDir(dataDir);
  return withFileLock(paths.accounts, () => {
    const accounts = readAccounts(dataDir);
    const result = fn(accounts);
    const file: AccountsFile = { version: 1, accounts };
    writeFileAtomic(paths.accounts, JSON.stringify(file, null, 2) + '\n');
    return result;
  });
}

function writePasswordFile(dataDir: string, password: string): string {
  const file = idpPaths(dataDir).adminPassword;
  writeFileAtomic(file, `${password}\n`);
  return file;
}

/**
 * On first start: creates the `admin` account with a random password, written to
 * `<dataDir>/admin-password.txt` (0600) and returned once for the caller to print.
 * Later starts change nothing.
 */
export function ensureAdminAccount(dataDir: string): { created: boolean; password?: string; passwordFile: string } {
  const passwordFile = idpPaths(dataDir).adminPassword;
  const exists = (accounts: AccountRecord[]) => accounts.some((a) => a.role === 'admin' || a.username === ADMIN_USERNAME);
  ensureIdpDir(dataDir);
  if (exists(readAccounts(dataDir))) return { created: false, passwordFile };
  const password = generatePassword();
  const passwordHash = hashPassword(password); // outside the lock: scrypt takes a while
  return updateAccounts(dataDir, (accounts) => {
    if (exists(accounts)) return { created: false, passwordFile }; // another process was faster
    // The password file first: if the store write failed, the next start simply retries.
    writePasswordFile(dataDir, password);
    const now = new Date().toISOString();
    accounts.push({ username: ADMIN_USERNAME, role: 'admin', passwordHash, createdAt: now, updatedAt: now });
    return { created: true, password, passwordFile };
  });
}

/** Gives `admin` a new random password (creating the account if needed) and rewrites the password file. */
export function resetAdminPassword(dataDir: string): { password: string; passwordFile: string } {
  const password = generatePassword();
  const passwordHash = hashPassword(password);
  return updateAccounts(dataDir, (accounts) => {
    const passwordFile = writePasswordFile(dataDir, password);
    const now = new Date().toISOString();
    const admin = accounts.find((a) => a.username === ADMIN_USERNAME);
    if (admin) {
      admin.passwordHash = passwordHash;
      admin.role = 'admin';
      admin.updatedAt = now;
    } else {
      accounts.push({ username: ADMIN_USERNAME, role: 'admin', passwordHash, createdAt: now, updatedAt: now });
    }
    return { password, passwordFile };
  });
}
