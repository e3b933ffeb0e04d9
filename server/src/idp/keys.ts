import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createFileExclusive, ensureIdpDir, readJson, withFileLock, writeFileAtomic } from './files.js';

/** Signing algorithms the embedded provider can issue, in order of preference. */
export const SUPPORTED_SIGNING_ALGS = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;
export type SigningAlg = (typeof SUPPORTED_SIGNING_ALGS)[number];

/** The first algorithm Backroll both accepts (`BACKROLL_OIDC_ALGORITHMS`) and can issue. */
export function pickSigningAlg(accepted: readonly string[]): SigningAlg | undefined {
  return SUPPORTED_SIGNING_ALGS.find((alg) => accepted.includes(alg));
}

export interface PrivateJwks {
  keys: JWK[];
}

async function generateSigningKey(alg: SigningAlg): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

function parseJwks(raw: unknown, file: string): PrivateJwks {
  const keys = (raw as Partial<PrivateJwks> | undefined)?.keys;
  if (!Array.isArray(keys)) throw new Error(`${file} is not a JWKS ({"keys": [...]}); restore it from a backup or remove it to generate new keys`);
  return { keys };
}

/**
 * The provider's private signing keys, `<dataDir>/idp/jwks.json` (0600), generated on
 * first start. A key for `alg` is added when missing; older keys stay published so
 * tokens they signed keep verifying until they expire.
 */
export async function loadSigningKeys(dataDir: string, alg: SigningAlg): Promise<PrivateJwks> {
  const paths = ensureIdpDir(dataDir);
  const hasAlg = (jwks: PrivateJwks) => jwks.keys.some((k) => k.alg === alg && k.use === 'sig' && typeof k.d === 'string');
  let existing = readJson(paths.jwks);
  if (existing === undefined) {
    const created: PrivateJwks = { keys: [await generateSigningKey(alg)] };
    if (createFileExclusive(paths.jwks, JSON.stringify(created, null, 2) + '\n')) return created;
    existing = readJson(paths.jwks); // another process created it first
  }
  const jwks = parseJwks(existing, paths.jwks);
  if (hasAlg(jwks)) return jwks;
  const key = await generateSigningKey(alg);
  return withFileLock(paths.jwks, () => {
    const current = parseJwks(readJson(paths.jwks), paths.jwks);
    if (hasAlg(current)) return current;
    // The new key goes first: oidc-provider signs with the first key matching the algorithm.
    const next: PrivateJwks = { keys: [key, ...current.keys] };
    writeFileAtomic(paths.jwks, JSON.stringify(next, null, 2) + '\n');
    return next;
  });
}

/** Keys signing the provider's cookies, `<dataDir>/idp/cookie-keys.json` (0600), generated on first start. */
export function loadCookieKeys(dataDir: string): string[] {
  const paths = ensureIdpDir(dataDir);
  let raw = readJson(paths.cookieKeys);
  if (raw === undefined) {
    const created = { keys: [randomBytes(32).toString('base64url')] };
    if (createFileExclusive(paths.cookieKeys, JSON.stringify(created, null, 2) + '\n')) return created.keys;
    raw = readJson(paths.cookieKeys);
  }
  const keys = (raw as { keys?: unknown } | undefined)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k): k is string => typeof k === 'string' && k.length >= 32)) {
    throw new Error(`${paths.cookieKeys} must hold {"keys": ["<random string of 32+ characters>", ...]}; remove it to generate a new one`);
  }
  return keys;
}
