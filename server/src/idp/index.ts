import type { FastifyInstance } from 'fastify';
import type { OidcConfig } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { MemoryStore } from './adapters.js';
import { ensureIdpDir } from './files.js';
import { loadCookieKeys, loadSigningKeys, pickSigningAlg } from './keys.js';
import { MOUNT, mountProvider, type AnyFastify } from './mount.js';
import { createProvider, mountPathOf, type IdpLogger } from './provider.js';
import type { LoginThrottle } from './throttle.js';

/**
 * The bundled OpenID provider (oidc-provider) served by Backroll under `/oidc`:
 * JWT access tokens for the API audience carrying the subject's role, the web UI
 * signing in with authorization code + PKCE, machine clients with client credentials.
 * State lives in `<dataDir>/idp/` (keys, accounts, clients), never in Backroll's database.
 */

export { ensureAdminAccount, resetAdminPassword, type IdpRole } from './accounts.js';
export { createMachineClient, deleteMachineClient, listMachineClients, type MachineClientInfo } from './clients.js';
export type { IdpLogger } from './provider.js';
export { LoginThrottle } from './throttle.js';

export interface EmbeddedIdpOptions {
  dataDir: string;
  oidc: OidcConfig;
  secretBox: SecretBox;
  logger?: IdpLogger;
  /** Entries kept per model in the provider's memory store; default 20 000. */
  storeMaxEntries?: number;
  /** The sign-in throttle (tests pass their own to observe it); default a new LoginThrottle. */
  throttle?: LoginThrottle;
}

export interface EmbeddedIdp {
  /** The issuer, e.g. `http://127.0.0.1:5050/oidc`. */
  readonly issuer: string;
  /** Adds the `/oidc` routes to the server; call once, before `listen`. */
  register(app: FastifyInstance): Promise<void>;
  close?(): Promise<void>;
}

const consoleLogger: IdpLogger = {
  info: () => {},
  warn: (obj, msg) => console.warn(msg ?? obj, msg === undefined ? '' : obj),
  error: (obj, msg) => console.error(msg ?? obj, msg === undefined ? '' : obj),
};

/**
 * Prepares the provider: loads (or generates on first start) the signing keys and
 * cookie keys in `<dataDir>/idp/`. Does not create the admin account: call
 * `ensureAdminAccount(dataDir)` and print the password it returns.
 */
export async function createEmbeddedIdp(opts: EmbeddedIdpOptions): Promise<EmbeddedIdp> {
  const logger = opts.logger ?? consoleLogger;
  const { dataDir, oidc } = opts;
  ensureIdpDir(dataDir);

  let signingAlg = pickSigningAlg(oidc.algorithms);
  if (!signingAlg) {
    signingAlg = 'ES256';
    logger.warn(
      { accepted: oidc.algorithms },
      'OpenID provider: none of BACKROLL_OIDC_ALGORITHMS can be issued by the bundled provider (ES256, RS256, PS256, EdDSA); signing with ES256, which the API will refuse',
    );
  }
  const jwks = await loadSigningKeys(dataDir, signingAlg);
  const cookieKeys = loadCookieKeys(dataDir);
  const store = new MemoryStore(opts.storeMaxEntries);
  const provider = createProvider({ dataDir, oidc, secretBox: opts.secretBox, logger, jwks, signingAlg, cookieKeys, store });
  const publicMountPath = mountPathOf(oidc.issuer);
  if (publicMountPath !== MOUNT && !publicMountPath.endsWith(MOUNT)) {
    logger.warn({ issuer: oidc.issuer }, `OpenID provider: the issuer path should end with ${MOUNT}; the provider is served at ${MOUNT}`);
  }

  let registered = false;
  return {
    issuer: oidc.issuer,
    async register(app: FastifyInstance) {
      if (registered) throw new Error('the embedded OpenID provider is already registered');
      registered = true;
      await mountProvider(app as AnyFastify, provider, { dataDir, oidc, logger, publicMountPath, throttle: opts.throttle });
      logger.info({ issuer: oidc.issuer, alg: signingAlg }, 'OpenID provider: serving');
    },
    async close() {
      // Sessions and grants are in memory only; nothing to flush.
    },
  };
}
