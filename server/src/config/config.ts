import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../errors.js';

export type Role = 'api' | 'worker' | 'scheduler';
export const ALL_ROLES: readonly Role[] = ['api', 'worker', 'scheduler'];

export type DatabaseDialect = 'sqlite' | 'postgres' | 'mysql';

export interface DatabaseConfig {
  dialect: DatabaseDialect;
  /** sqlite: absolute file path; others: connection URL. */
  url: string;
}

export interface OidcConfig {
  /** true: the bundled OpenID provider is served under /oidc and is the issuer. */
  embedded: boolean;
  issuer: string;
  audience: string;
  jwksUri?: string;
  /** Dotted path to the roles array in the access token, e.g. `realm_access.roles`. */
  rolesClaim: string;
  adminRole: string;
  viewerRole: string;
  algorithms: string[];
  clockToleranceSeconds: number;
  /** Public client of the web UI (authorization code + PKCE). */
  webClientId: string;
  webRedirectUris: string[];
}

/** The job system: limits, leases, where the queue lives (see src/tasks). */
export interface JobsConfig {
  /** Tasks running at once in the whole installation (every worker together). */
  maxConcurrent: number;
  /** Tasks running at once against one KVM host. */
  maxPerHost: number;
  /** Tasks running at once against one backup storage. */
  maxPerStorage: number;
  /** Jobs one worker process takes from the queue at once (distributed mode). */
  workerConcurrency: number;
  /** A running task's lease: a worker that stops renewing it for this long is presumed dead. */
  leaseSeconds: number;
  /** Redis key prefix of the queues (several installations can share one Redis). */
  redisPrefix: string;
}

export interface SchedulerConfig {
  /** Fire the latest missed occurrence once when the scheduler comes back. */
  catchUp: boolean;
  /** An occurrence fired later than this after its time counts as missed. */
  misfireGraceSeconds: number;
}

export interface HookDeliveryConfig {
  timeoutMs: number;
  /** Attempts per notification, the first included. */
  attempts: number;
  /** Wait before the second attempt; doubles after each further failure. */
  backoffMs: number;
}

/** SSH to the hypervisor hosts (one pooled connection per host). */
export interface SshConfig {
  /** TCP connect + handshake + authentication. */
  connectTimeoutMs: number;
  /** A host connection without a command for this long is closed. */
  idleTimeoutMs: number;
  /** Limit of one inventory command (virsh, qemu-img) on a host; it is killed after it. */
  commandTimeoutMs: number;
}

/** The VM inventory cache (see src/virtual-machines). */
export interface InventoryConfig {
  /** Seconds between periodic refreshes of every host by the worker role; 0 = off. */
  intervalSeconds: number;
  /** Domains read at once on one host while refreshing. */
  concurrencyPerHost: number;
}

export interface Config {
  dataDir: string;
  host: string;
  port: number;
  publicUrl: string;
  /**
   * Which proxies' X-Forwarded-For/-Proto/-Host are believed (Fastify's trustProxy): false
   * (none, the default), true (any: only when nothing but the proxy can reach Backroll),
   * a number of hops, or the proxies' addresses/CIDRs.
   */
  trustProxy: boolean | number | string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  roles: Role[];
  database: DatabaseConfig;
  oidc: OidcConfig;
  metrics: boolean;
  redisUrl?: string;
  jobs: JobsConfig;
  scheduler: SchedulerConfig;
  hooks: HookDeliveryConfig;
  ssh: SshConfig;
  inventory: InventoryConfig;
  /** The web console: BACKROLL_WEB_DIR (default: web/dist of the installation) and usage sampling. */
  console: { webDir?: string; storageSampleIntervalSeconds: number };
  /** Seconds a restore waits for a guest to shut down (ACPI) before powering it off. */
  vmShutdownTimeoutSeconds: number;
  /** Minimum hours between two compactions of a repository by backups (backups/compaction.ts). */
  compactIntervalHours: number;
  /** The daily self-backup of Backroll's database and keys into every storage (server/src/dr/). */
  dr: { passphraseFile?: string; selfBackupHours: number; selfBackupKeep: number };
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const JWS_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Every variable Backroll reads, with its meaning; drives `config check` and the README. */
export const CONFIG_VARIABLES: Record<string, string> = {
  BACKROLL_DATA_DIR: 'data directory (SQLite file, SSH keys, secret key, identity provider state); default ./data',
  BACKROLL_HOST: 'listen address; default 0.0.0.0',
  BACKROLL_PORT: 'listen port; default 5050',
  BACKROLL_PUBLIC_URL: 'URL clients use to reach Backroll; default http://localhost:<port>',
  BACKROLL_TRUST_PROXY:
    'reverse proxy whose X-Forwarded-For/-Proto headers are believed (client address for the sign-in throttle, https for secure cookies): false | true (any peer) | number of hops | comma list of proxy addresses or CIDRs; default false',
  BACKROLL_LOG_LEVEL: 'fatal|error|warn|info|debug|trace|silent; default info',
  BACKROLL_ROLES: 'comma list of api,worker,scheduler run by `backroll start`; default all three',
  BACKROLL_DATABASE_URL: 'sqlite:<file> | postgres://… | mysql://… (MariaDB too); default sqlite in the data dir',
  BACKROLL_OIDC_ISSUER: 'external OpenID issuer URL; unset = the bundled provider at <public url>/oidc',
  BACKROLL_OIDC_AUDIENCE: 'expected `aud` of access tokens; default backroll',
  BACKROLL_OIDC_JWKS_URI: 'JWKS URL; default: discovered from the issuer',
  BACKROLL_OIDC_ROLES_CLAIM: 'dotted path of the roles array in tokens (e.g. realm_access.roles); default roles',
  BACKROLL_OIDC_ADMIN_ROLE: 'role value granting admin; default admin',
  BACKROLL_OIDC_VIEWER_ROLE: 'role value granting read-only access; default viewer',
  BACKROLL_OIDC_ALGORITHMS: 'allowed JWS algorithms; default RS256,PS256,ES256,EdDSA',
  BACKROLL_OIDC_CLOCK_TOLERANCE: 'seconds of clock skew accepted on exp/nbf; default 5',
  BACKROLL_OIDC_WEB_CLIENT_ID: 'client id of the web UI (public client, PKCE); default backroll-web',
  BACKROLL_OIDC_WEB_REDIRECT_URIS: 'comma list of the web UI redirect URIs; default <public url>/ui/callback',
  BACKROLL_METRICS: 'serve Prometheus metrics at /metrics (true|false); default true',
  BACKROLL_REDIS_URL: 'Redis URL for the distributed job queue (BullMQ); unset = in-process jobs persisted in the database',
  BACKROLL_REDIS_PREFIX: 'key prefix of the queues in Redis; default backroll',
  BACKROLL_MAX_CONCURRENT_TASKS: 'tasks running at once across all workers; default 4',
  BACKROLL_MAX_TASKS_PER_HOST: 'tasks running at once against one KVM host; default 2',
  BACKROLL_MAX_TASKS_PER_STORAGE: 'tasks running at once against one backup storage; default 2',
  BACKROLL_WORKER_CONCURRENCY: 'queue jobs one worker process takes at once (distributed mode); default BACKROLL_MAX_CONCURRENT_TASKS',
  BACKROLL_TASK_LEASE_SECONDS: 'a running task whose worker stops renewing its lease for this long is marked interrupted; default 30',
  BACKROLL_SCHEDULER_CATCH_UP: 'run the latest missed schedule occurrence once after downtime (true|false); default false',
  BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS: 'an occurrence starting later than this is recorded as missed; default 60',
  BACKROLL_HOOK_TIMEOUT_MS: 'timeout of one notification request; default 10000',
  BACKROLL_HOOK_ATTEMPTS: 'attempts per notification (first included); default 4',
  BACKROLL_HOOK_BACKOFF_MS: 'wait before the first retry of a notification, doubled each time; default 2000',
  BACKROLL_SSH_CONNECT_TIMEOUT_SECONDS: 'SSH connect + handshake + authentication limit per host; default 15',
  BACKROLL_SSH_IDLE_SECONDS: 'an SSH connection to a host unused for this long is closed; default 60',
  BACKROLL_HOST_COMMAND_TIMEOUT_SECONDS: 'limit of one inventory command (virsh, qemu-img) on a host, killed after it; default 30',
  BACKROLL_COMPACT_INTERVAL_HOURS: 'minimum hours between two borg compactions of a repository by backups (only when archives were deleted since the last one; 0: every time); default 24',
  BACKROLL_VM_SHUTDOWN_TIMEOUT_SECONDS: 'seconds a restore in place waits for the guest to shut down before powering it off; default 120',
  BACKROLL_DR_PASSPHRASE_FILE: 'file holding the passphrase of the daily self-backup (database and keys, encrypted) into <storage>/.backroll/; unset = no self-backup',
  BACKROLL_DR_SELF_BACKUP_HOURS: 'hours between self-backups; 0 = off; default 24',
  BACKROLL_DR_SELF_BACKUP_KEEP: 'self-backup files kept per storage; default 7',
  BACKROLL_INVENTORY_INTERVAL_SECONDS: 'seconds between periodic VM inventory refreshes of every host (worker role); 0 = off; default 300',
  BACKROLL_WEB_DIR: 'directory of the built web console served at / (api role); default web/dist of the installation',
  BACKROLL_STORAGE_SAMPLE_INTERVAL_SECONDS: 'seconds between storage usage samples (api role; usage charts, estimated full date); 0 = off; default 3600',
  BACKROLL_INVENTORY_CONCURRENCY: 'domains read at once on one host during an inventory refresh (below the 8 SSH channels per host); default 4',
};

/**
 * Reads and validates the environment once. Collects every problem before failing,
 * so an operator fixes them in one go. Pure: no I/O.
 */
export function loadConfig(env: Env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  const str = (name: string, fallback: string): string => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? fallback : v.trim();
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer between ${min} and ${max}`);
      return fallback;
    }
    return Number(raw);
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name}=${JSON.stringify(env[name])}: expected true or false`);
    return fallback;
  };
  const url = (name: string, value: string, protocols: string[]): string => {
    try {
      const u = new URL(value);
      if (!protocols.includes(u.protocol)) throw new Error('protocol');
      return value.replace(/\/+$/, '');
    } catch {
      problems.push(`${name}=${JSON.stringify(value)}: expected a URL starting with ${protocols.map((p) => p + '//').join(' or ')}`);
      return value;
    }
  };

  const dataDir = path.resolve(cwd, str('BACKROLL_DATA_DIR', './data'));
  const host = str('BACKROLL_HOST', '0.0.0.0');
  const port = int('BACKROLL_PORT', 5050, 0, 65535);
  const publicUrl = url('BACKROLL_PUBLIC_URL', str('BACKROLL_PUBLIC_URL', `http://localhost:${port}`), ['http:', 'https:']);

  const trustProxy = parseTrustProxy(env.BACKROLL_TRUST_PROXY, (msg) => problems.push(`BACKROLL_TRUST_PROXY=${JSON.stringify(env.BACKROLL_TRUST_PROXY)}: ${msg}`));

  const logLevel = str('BACKROLL_LOG_LEVEL', 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`BACKROLL_LOG_LEVEL=${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }

  const roles = parseRoles(str('BACKROLL_ROLES', ALL_ROLES.join(',')), (msg) => problems.push(`BACKROLL_ROLES: ${msg}`));

  const database = parseDatabaseUrl(str('BACKROLL_DATABASE_URL', `sqlite:${path.join(dataDir, 'backroll.db')}`), cwd, (msg) =>
    problems.push(`BACKROLL_DATABASE_URL: ${msg}`),
  );

  const externalIssuer = env.BACKROLL_OIDC_ISSUER?.trim();
  const embedded = !externalIssuer;
  const issuer = embedded ? `${publicUrl}/oidc` : url('BACKROLL_OIDC_ISSUER', externalIssuer, ['http:', 'https:']);
  const jwksRaw = env.BACKROLL_OIDC_JWKS_URI?.trim();
  const algorithms = str('BACKROLL_OIDC_ALGORITHMS', 'RS256,PS256,ES256,EdDSA')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  for (const alg of algorithms) {
    if (!JWS_ALGS.includes(alg)) problems.push(`BACKROLL_OIDC_ALGORITHMS: ${JSON.stringify(alg)} is not an asymmetric JWS algorithm (${JWS_ALGS.join(', ')})`);
  }
  const rolesClaim = str('BACKROLL_OIDC_ROLES_CLAIM', 'roles');
  if (!/^[A-Za-z0-9_:\-/]+(\.[A-Za-z0-9_:\-/]+)*$/.test(rolesClaim)) {
    problems.push(`BACKROLL_OIDC_ROLES_CLAIM=${JSON.stringify(rolesClaim)}: expected a dotted claim path such as realm_access.roles`);
  }

  const oidc: OidcConfig = {
    embedded,
    issuer,
    audience: str('BACKROLL_OIDC_AUDIENCE', 'backroll'),
    jwksUri: jwksRaw ? url('BACKROLL_OIDC_JWKS_URI', jwksRaw, ['http:', 'https:']) : undefined,
    rolesClaim,
    adminRole: str('BACKROLL_OIDC_ADMIN_ROLE', 'admin'),
    viewerRole: str('BACKROLL_OIDC_VIEWER_ROLE', 'viewer'),
    algorithms,
    clockToleranceSeconds: int('BACKROLL_OIDC_CLOCK_TOLERANCE', 5, 0, 300),
    webClientId: str('BACKROLL_OIDC_WEB_CLIENT_ID', 'backroll-web'),
    webRedirectUris: str('BACKROLL_OIDC_WEB_REDIRECT_URIS', `${publicUrl}/ui/callback`)
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean),
  };

  const redisRaw = env.BACKROLL_REDIS_URL?.trim();
  const redisUrl = redisRaw ? url('BACKROLL_REDIS_URL', redisRaw, ['redis:', 'rediss:']) : undefined;

  const maxConcurrent = int('BACKROLL_MAX_CONCURRENT_TASKS', 4, 1, 1000);
  const jobs: JobsConfig = {
    maxConcurrent,
    maxPerHost: int('BACKROLL_MAX_TASKS_PER_HOST', 2, 1, 1000),
    maxPerStorage: int('BACKROLL_MAX_TASKS_PER_STORAGE', 2, 1, 1000),
    workerConcurrency: int('BACKROLL_WORKER_CONCURRENCY', maxConcurrent, 1, 1000),
    leaseSeconds: int('BACKROLL_TASK_LEASE_SECONDS', 30, 2, 3600),
    redisPrefix: str('BACKROLL_REDIS_PREFIX', 'backroll'),
  };
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(jobs.redisPrefix)) {
    problems.push(`BACKROLL_REDIS_PREFIX=${JSON.stringify(jobs.redisPrefix)}: expected 1–64 letters, digits, dots, dashes or underscores`);
  }
  const scheduler: SchedulerConfig = {
    catchUp: bool('BACKROLL_SCHEDULER_CATCH_UP', false),
    misfireGraceSeconds: int('BACKROLL_SCHEDULER_MISFIRE_GRACE_SECONDS', 60, 1, 86400),
  };
  const hooks: HookDeliveryConfig = {
    timeoutMs: int('BACKROLL_HOOK_TIMEOUT_MS', 10_000, 100, 120_000),
    attempts: int('BACKROLL_HOOK_ATTEMPTS', 4, 1, 10),
    backoffMs: int('BACKROLL_HOOK_BACKOFF_MS', 2000, 0, 600_000),
  };

  const ssh: SshConfig = {
    connectTimeoutMs: int('BACKROLL_SSH_CONNECT_TIMEOUT_SECONDS', 15, 1, 600) * 1000,
    idleTimeoutMs: int('BACKROLL_SSH_IDLE_SECONDS', 60, 1, 86400) * 1000,
    commandTimeoutMs: int('BACKROLL_HOST_COMMAND_TIMEOUT_SECONDS', 30, 1, 3600) * 1000,
  };
  const inventory: InventoryConfig = {
    intervalSeconds: int('BACKROLL_INVENTORY_INTERVAL_SECONDS', 300, 0, 7 * 86400),
    concurrencyPerHost: int('BACKROLL_INVENTORY_CONCURRENCY', 4, 1, 8),
  };

  const config: Config = {
    dataDir,
    host,
    port,
    publicUrl,
    trustProxy,
    logLevel,
    roles,
    database,
    oidc,
    metrics: bool('BACKROLL_METRICS', true),
    redisUrl,
    vmShutdownTimeoutSeconds: int('BACKROLL_VM_SHUTDOWN_TIMEOUT_SECONDS', 120, 0, 3600),
    compactIntervalHours: int('BACKROLL_COMPACT_INTERVAL_HOURS', 24, 0, 24 * 365),
    dr: {
      passphraseFile: env.BACKROLL_DR_PASSPHRASE_FILE?.trim() ? path.resolve(cwd, env.BACKROLL_DR_PASSPHRASE_FILE.trim()) : undefined,
      selfBackupHours: int('BACKROLL_DR_SELF_BACKUP_HOURS', 24, 0, 24 * 365),
      selfBackupKeep: int('BACKROLL_DR_SELF_BACKUP_KEEP', 7, 1, 1000),
    },
    jobs,
    scheduler,
    hooks,
    ssh,
    inventory,
    console: {
      webDir: env.BACKROLL_WEB_DIR?.trim() ? path.resolve(cwd, env.BACKROLL_WEB_DIR.trim()) : undefined,
      storageSampleIntervalSeconds: int('BACKROLL_STORAGE_SAMPLE_INTERVAL_SECONDS', 3600, 0, 7 * 86400),
    },
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** BACKROLL_TRUST_PROXY: false | true | hops | comma list of IP addresses or CIDRs. */
export function parseTrustProxy(raw: string | undefined, onError: (msg: string) => void): boolean | number | string[] {
  const v = raw?.trim() ?? '';
  if (v === '' || ['0', 'false', 'no', 'off'].includes(v.toLowerCase())) return false;
  if (['true', 'yes', 'on'].includes(v.toLowerCase())) return true;
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops >= 1 && hops <= 10) return hops;
    onError('a number of proxy hops must be between 1 and 10');
    return false;
  }
  const list = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = list.filter((x) => {
    const [addr, bits, ...rest] = x.split('/');
    const family = net.isIP(addr ?? '');
    if (family === 0 || rest.length > 0) return true;
    if (bits === undefined) return false;
    return !/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128);
  });
  if (bad.length > 0 || list.length === 0) {
    onError(`expected false, true, a number of hops, or a comma list of proxy IP addresses/CIDRs (not ${bad.map((b) => JSON.stringify(b)).join(', ') || 'empty'})`);
    return false;
  }
  return list;
}

export function parseRoles(value: string, onError: (msg: string) => void): Role[] {
  const roles = value
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const bad = roles.filter((r) => !(ALL_ROLES as readonly string[]).includes(r));
  if (bad.length > 0 || roles.length === 0) {
    onError(`${JSON.stringify(value)}: expected a comma list of ${ALL_ROLES.join(', ')}`);
    return [...ALL_ROLES];
  }
  return [...new Set(roles)] as Role[];
}

export function parseDatabaseUrl(value: string, cwd: string, onError: (msg: string) => void): DatabaseConfig {
  if (value.startsWith('sqlite:')) {
    const file = value.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file === '') {
      onError('sqlite: needs a file path, e.g. sqlite:/var/lib/backroll/backroll.db');
      return { dialect: 'sqlite', url: '' };
    }
    return { dialect: 'sqlite', url: file === ':memory:' ? file : path.resolve(cwd, file) };
  }
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    onError(`${JSON.stringify(maskUrl(value))}: expected sqlite:<file>, postgres://user@host/db or mysql://user@host/db`);
    return { dialect: 'sqlite', url: '' };
  }
  switch (parsed.protocol) {
    case 'postgres:':
    case 'postgresql:':
      return { dialect: 'postgres', url: value };
    case 'mysql:':
    case 'mariadb:':
      return { dialect: 'mysql', url: value.replace(/^mariadb:/, 'mysql:') };
    default:
      onError(`unsupported scheme ${JSON.stringify(parsed.protocol)}: expected sqlite:, postgres:, postgresql:, mysql: or mariadb:`);
      return { dialect: 'sqlite', url: '' };
  }
}

/** Hides the password of a URL (for logs and `config check`). */
export function maskUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return value.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:****@');
  }
}

/** The configuration as printed by `backroll config check`: secrets masked. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    database: { ...config.database, url: maskUrl(config.database.url) },
    redisUrl: config.redisUrl ? maskUrl(config.redisUrl) : undefined,
  };
}
