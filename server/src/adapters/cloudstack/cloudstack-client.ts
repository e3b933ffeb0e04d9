import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock, type Clock } from '../../clock.js';
import type { AppError } from '../../errors.js';
import { CloudStackErrorCode, cloudStackError } from './cloudstack-errors.js';
import type { CsCapabilities, CsStoragePool, CsVirtualMachine, CsVolume, CsZone } from './cloudstack-types.js';
import { expiresAt, signature, signedBody, UnsignableParameterError } from './signing.js';
import { post, TooLargeError, type PostResponse, type TlsSettings } from './transport.js';

export * from './cloudstack-types.js';
export { CloudStackErrorCode } from './cloudstack-errors.js';

export interface CloudStackClientOptions {
  /** The API endpoint, e.g. https://cloud.example/client/api. */
  endpointUrl: string;
  apiKey: string;
  secretKey: string;
  /** Certificate verification: on by default; `ca` adds a trusted CA (PEM). */
  tls?: Partial<TlsSettings>;
  /** The connector's name, for messages. */
  name?: string;
  /** Per HTTP request (default 30 s). */
  timeoutMs?: number;
  /** Signature version 3: requests expire this long after signing (default 300 s, CloudStack allows 15 min); 0 signs without expiry. */
  expiresInSeconds?: number;
  /** Items per page of list calls (default 500, CloudStack's usual maximum). */
  pageSize?: number;
  /** How long an asynchronous job may take (default 15 min) and how often it is polled (default 2 s). */
  jobTimeoutMs?: number;
  jobPollMs?: number;
  /** Answers larger than this are refused (default 64 MiB). */
  maxResponseBytes?: number;
  clock?: Clock;
  userAgent?: string;
}

export interface CallOptions {
  /** Cancels the call (and a job's polling; the job itself goes on in CloudStack). */
  signal?: AbortSignal;
}

export interface JobOptions extends CallOptions {
  /** Overrides the client's jobTimeoutMs for this job. */
  timeoutMs?: number;
}

export type Params = Record<string, string | number | boolean | undefined>;

export const CLOUDSTACK_DEFAULTS = {
  timeoutMs: 30_000,
  expiresInSeconds: 300,
  pageSize: 500,
  jobTimeoutMs: 15 * 60_000,
  jobPollMs: 2_000,
  maxResponseBytes: 64 * 1024 * 1024,
} as const;

/** A list is never longer than this many pages: a server that keeps answering full pages is broken. */
const MAX_PAGES = 10_000;
/** Polling survives this many consecutive unreachable answers (a management server restart, a proxy blip). */
const POLL_RETRIES = 3;
const ERRORTEXT_MAX = 1000;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Node's network error codes, in words a person can act on. */
const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused: nothing listens on that port (check the host, port and that the management server runs)',
  ENOTFOUND: 'the host name does not resolve (check the endpoint URL and DNS)',
  EAI_AGAIN: 'the host name could not be resolved right now (DNS unavailable)',
  ECONNRESET: 'the connection was reset (a firewall, a proxy, or http sent to an https port)',
  EHOSTUNREACH: 'no route to the host (network or firewall)',
  ENETUNREACH: 'the network is unreachable from this machine',
  ETIMEDOUT: 'the connection timed out (network or firewall)',
  EPROTO: 'the TLS handshake failed (https to a plain-http port, or an incompatible TLS setup)',
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed: add it (PEM) as the connector's caCertificate",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in an untrusted CA: add that CA (PEM) as the connector's caCertificate",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not signed by a trusted CA: add the CA that signed it (PEM) as the connector's caCertificate, or make the server send its intermediate certificates",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the issuer of the server's certificate is not trusted: add that CA (PEM) as the connector's caCertificate",
  CERT_HAS_EXPIRED: "the server's certificate has expired: renew it on the server",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet: check the clocks of both machines",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not name the host of the endpoint URL: use the name the certificate is issued for",
};

/**
 * A client of the Apache CloudStack API: signed requests (POST, signature version 3),
 * every page of list calls, asynchronous jobs polled to their end, a timeout on every
 * request, certificate verification on by default. Errors are AppErrors with the codes of
 * CloudStackErrorCode; neither the secret key nor a signature ever appears in one.
 */
export class CloudStackClient {
  private readonly endpoint: URL;
  private readonly o: Required<Omit<CloudStackClientOptions, 'tls' | 'name' | 'apiKey' | 'secretKey'>> & { tls: TlsSettings; name: string };
  // Private fields: util.inspect and JSON.stringify of the client never show the keys.
  readonly #apiKey: string;
  readonly #secretKey: string;

  constructor(options: CloudStackClientOptions) {
    const { apiKey, secretKey, ...rest } = options;
    this.endpoint = new URL(options.endpointUrl);
    this.#apiKey = apiKey;
    this.#secretKey = secretKey;
    this.o = {
      ...CLOUDSTACK_DEFAULTS,
      clock: systemClock,
      userAgent: 'Backroll',
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      tls: { verify: options.tls?.verify ?? true, ca: options.tls?.ca ?? null },
      name: options.name ?? 'CloudStack',
    } as CloudStackClient['o'];
  }

  /** scheme://host/path of the endpoint: what was tried, with nothing secret in it. */
  get where(): string {
    return `${this.endpoint.origin}${this.endpoint.pathname}`;
  }

  // ---- typed calls ----

  listZones(opts: CallOptions = {}): Promise<CsZone[]> {
    return this.listAll<CsZone>('listZones', 'zone', {}, opts);
  }

  async listCapabilities(opts: CallOptions = {}): Promise<CsCapabilities> {
    const res = await this.call('listCapabilities', {}, opts);
    const cap = res.capability;
    if (!isObject(cap) || typeof cap.cloudstackversion !== 'string') {
      throw this.unexpected('listCapabilities', 'the answer has no capability.cloudstackversion');
    }
    return cap as CsCapabilities;
  }

  /**
   * Every VM the account may see, projects' VMs included (CloudStack lists those only when
   * asked with projectid=-1, so that is a second listing).
   */
  async listVirtualMachines(
    filter: { id?: string; hostid?: string; zoneid?: string; state?: string; keyword?: string; projectid?: string; details?: string[] } = {},
    opts: CallOptions = {},
  ): Promise<CsVirtualMachine[]> {
    const { details, ...rest } = filter;
    return this.listWithProjects<CsVirtualMachine>('listVirtualMachines', 'virtualmachine', { ...rest, listall: true, details: details?.join(',') }, opts);
  }

  /** The volumes of a VM (`virtualmachineid`) or the given volume, projects' included. */
  listVolumes(filter: { virtualmachineid?: string; id?: string; storageid?: string; projectid?: string } = {}, opts: CallOptions = {}): Promise<CsVolume[]> {
    return this.listWithProjects<CsVolume>('listVolumes', 'volume', { ...filter, listall: true }, opts);
  }

  /** Primary storage pools (an admin call). */
  listStoragePools(filter: { id?: string; zoneid?: string; clusterid?: string; name?: string } = {}, opts: CallOptions = {}): Promise<CsStoragePool[]> {
    return this.listAll<CsStoragePool>('listStoragePools', 'storagepool', filter, opts);
  }

  /** Starts a VM through CloudStack and waits for the job; returns the VM as CloudStack reports it after. */
  async startVirtualMachine(id: string, opts: JobOptions & { hostid?: string } = {}): Promise<CsVirtualMachine> {
    const { hostid, ...jobOpts } = opts;
    return this.vmOf('startVirtualMachine', await this.runJob('startVirtualMachine', { id, hostid }, jobOpts));
  }

  /** Stops a VM through CloudStack (`forced` powers it off) and waits for the job. */
  async stopVirtualMachine(id: string, opts: JobOptions & { forced?: boolean } = {}): Promise<CsVirtualMachine> {
    const { forced, ...jobOpts } = opts;
    return this.vmOf('stopVirtualMachine', await this.runJob('stopVirtualMachine', { id, forced: forced || undefined }, jobOpts));
  }

  // ---- generic calls ----

  /** One signed call; returns the object inside `<command>response`. */
  async call(command: string, params: Params = {}, opts: CallOptions = {}): Promise<Json> {
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (v !== undefined) all[k.toLowerCase()] = String(v);
    all.command = command;
    all.response = 'json';
    all.apikey = this.#apiKey;
    if (this.o.expiresInSeconds > 0) {
      all.signatureversion = '3';
      all.expires = expiresAt(new Date(this.o.clock.now().getTime() + this.o.expiresInSeconds * 1000));
    }
    let body: string;
    try {
      body = signedBody(all, this.#secretKey);
    } catch (err) {
      if (err instanceof UnsignableParameterError) throw cloudStackError('CONNECTOR.API_ERROR', `${err.message}; nothing was sent to CloudStack`, { command, parameter: err.parameter });
      throw err;
    }
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: PostResponse;
    try {
      res = await post({ url: this.endpoint, body, tls: this.o.tls, signal, maxBytes: this.o.maxResponseBytes, userAgent: this.o.userAgent });
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (err instanceof TooLargeError) throw this.unexpected(command, err.message);
      throw this.unreachable(command, timeout.aborted ? 'TIMEOUT' : err);
    }
    return this.interpret(command, res, [signature(all, this.#secretKey)]);
  }

  /** Every item of a list call: pages of pageSize until a short page or `count` items. */
  async listAll<T>(command: string, itemKey: string, params: Params = {}, opts: CallOptions = {}): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    for (let page = 1; page <= MAX_PAGES; page++) {
      const res = await this.call(command, { ...params, page, pagesize: this.o.pageSize }, opts);
      const batch = res[itemKey] ?? [];
      if (!Array.isArray(batch) || !batch.every(isObject)) throw this.unexpected(command, `"${itemKey}" is not a list of objects`);
      for (const item of batch) {
        // A list that changes while it is paged can repeat an item on the next page.
        const id = typeof item.id === 'string' ? item.id : undefined;
        if (id !== undefined && seen.has(id)) continue;
        if (id !== undefined) seen.add(id);
        items.push(item as T);
      }
      const count = typeof res.count === 'number' ? res.count : undefined;
      if (batch.length < this.o.pageSize || (count !== undefined && page * this.o.pageSize >= count)) return items;
    }
    throw this.unexpected(command, `more than ${MAX_PAGES} full pages; the server does not page`);
  }

  /** Runs an asynchronous command and polls queryAsyncJobResult until it ends; returns its jobresult. */
  async runJob(command: string, params: Params = {}, opts: JobOptions = {}): Promise<Json> {
    const res = await this.call(command, params, opts);
    if (typeof res.jobid !== 'string') throw this.unexpected(command, 'the answer has no jobid');
    return this.waitForJob(command, res.jobid, opts);
  }

  async waitForJob(command: string, jobid: string, opts: JobOptions = {}): Promise<Json> {
    const waitMs = opts.timeoutMs ?? this.o.jobTimeoutMs;
    const started = performance.now();
    let failures = 0;
    for (;;) {
      let job: Json | undefined;
      try {
        job = await this.call('queryAsyncJobResult', { jobid }, opts);
        failures = 0;
      } catch (err) {
        if ((err as AppError).code !== CloudStackErrorCode.UNREACHABLE || ++failures > POLL_RETRIES) throw err;
      }
      if (job) {
        const status = Number(job.jobstatus);
        if (status === 1) return isObject(job.jobresult) ? job.jobresult : {};
        if (status === 2) throw this.jobFailed(command, jobid, job);
        if (status !== 0) throw this.unexpected('queryAsyncJobResult', `job ${jobid} has jobstatus ${String(job.jobstatus)}`);
      }
      const left = waitMs - (performance.now() - started);
      if (left <= 0) {
        throw cloudStackError(
          'CONNECTOR.JOB_TIMEOUT',
          `CloudStack job ${jobid} (${command}) of connector "${this.o.name}" did not finish within ${Math.round(waitMs / 1000)} s; it may still finish: check it in CloudStack (async job ${jobid}) before retrying`,
          { endpoint: this.where, command, jobid, waitedMs: waitMs },
        );
      }
      try {
        await sleep(Math.min(this.o.jobPollMs, left), undefined, { signal: opts.signal });
      } catch (err) {
        // The caller's reason, as a canceled request rejects with it.
        throw opts.signal?.aborted ? opts.signal.reason : err;
      }
    }
  }

  // ---- answers and errors ----

  private listWithProjects<T>(command: string, itemKey: string, params: Params, opts: CallOptions): Promise<T[]> {
    if (params.projectid !== undefined) return this.listAll<T>(command, itemKey, params, opts);
    return Promise.all([this.listAll<T>(command, itemKey, params, opts), this.listAll<T>(command, itemKey, { ...params, projectid: '-1' }, opts)]).then(([own, projects]) => {
      const ids = new Set(own.map((i) => (i as { id?: unknown }).id));
      return [...own, ...projects.filter((i) => !ids.has((i as { id?: unknown }).id))];
    });
  }

  private vmOf(command: string, result: Json): CsVirtualMachine {
    const vm = result.virtualmachine;
    if (!isObject(vm) || typeof vm.id !== 'string') throw this.unexpected(command, 'the job result has no virtualmachine');
    return vm as CsVirtualMachine;
  }

  private interpret(command: string, res: PostResponse, signatures: string[]): Json {
    if (res.status >= 300 && res.status < 400) {
      throw cloudStackError(
        'CONNECTOR.API_ERROR',
        `${this.prefix(command)} was answered with a redirect (HTTP ${res.status}); set the connector's endpoint URL to the address it redirects to (often https:// instead of http://, or a path ending in /client/api)`,
        { endpoint: this.where, command, httpStatus: res.status },
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      parsed = undefined;
    }
    const inner = isObject(parsed) ? this.inner(command, parsed) : undefined;
    if (!inner) {
      if (res.status === 401 || res.status === 403) return this.authFailed(command, res.status, undefined, `HTTP ${res.status}`);
      if (res.status === 502 || res.status === 503 || res.status === 504) {
        throw this.unreachable(command, `a proxy in front of CloudStack answered HTTP ${res.status}: the management server behind it does not answer`);
      }
      throw this.unexpected(command, `HTTP ${res.status} with ${res.contentType || 'no content type'}, not CloudStack JSON; check that the endpoint URL is CloudStack's API, e.g. https://cloud.example/client/api`, res.status);
    }
    if (inner.errorcode === undefined && res.status === 200) return inner;
    const errorcode = Number(inner.errorcode ?? res.status);
    const errortext = this.scrub(typeof inner.errortext === 'string' ? inner.errortext : '', signatures);
    if (errorcode === 401 || errorcode === 432 || errorcode === 531) return this.authFailed(command, res.status, errorcode, errortext);
    throw cloudStackError('CONNECTOR.API_ERROR', `${this.prefix(command)} failed in CloudStack (error ${errorcode}): ${errortext || '(no errortext)'}`, {
      endpoint: this.where,
      command,
      httpStatus: res.status,
      errorcode,
      ...(inner.cserrorcode !== undefined ? { cserrorcode: inner.cserrorcode } : {}),
      errortext,
    });
  }

  /** `<command>response`; CloudStack names a few differently, so the one `…response` key otherwise. */
  private inner(command: string, json: Json): Json | undefined {
    const exact = json[`${command.toLowerCase()}response`];
    if (isObject(exact)) return exact;
    const keys = Object.keys(json).filter((k) => k.endsWith('response'));
    const only = keys.length === 1 ? json[keys[0]!] : undefined;
    return isObject(only) ? only : undefined;
  }

  private authFailed(command: string, httpStatus: number, errorcode: number | undefined, errortext: string): never {
    const said = `${errorcode ?? httpStatus}: ${errortext || 'no reason given'}`;
    const expiry = this.o.expiresInSeconds > 0 ? `, and that this machine's clock is right (each request expires ${this.o.expiresInSeconds} s after it is signed)` : '';
    const message =
      errorcode === 432
        ? `${this.prefix(command)} is not available to the connector's account (${said}); give the account a role that allows ${command}, e.g. a root admin's keys`
        : errorcode === 531
          ? `${this.prefix(command)} was denied to the connector's account (${said}); check the account's role and domain in CloudStack`
          : `CloudStack refused the credentials of connector "${this.o.name}" for ${command} (${said}); check that the API key and secret key are the current pair of one CloudStack user (generating keys replaces the old pair), that the user and its account are enabled and allowed API key access${expiry}`;
    throw cloudStackError('CONNECTOR.AUTH_FAILED', message, { endpoint: this.where, command, httpStatus, ...(errorcode !== undefined ? { errorcode } : {}), errortext });
  }

  private jobFailed(command: string, jobid: string, job: Json): AppError {
    const result = isObject(job.jobresult) ? job.jobresult : {};
    const errorcode = Number(result.errorcode ?? job.jobresultcode ?? 530);
    const errortext = this.scrub(typeof result.errortext === 'string' ? result.errortext : '', []);
    return cloudStackError('CONNECTOR.API_ERROR', `CloudStack job ${jobid} (${command}) failed (error ${errorcode}): ${errortext || '(no errortext)'}`, {
      endpoint: this.where,
      command,
      jobid,
      errorcode,
      errortext,
    });
  }

  private unreachable(command: string, cause: unknown): AppError {
    const code = (cause as { code?: string } | undefined)?.code;
    const reason =
      cause === 'TIMEOUT'
        ? `no answer within ${this.o.timeoutMs < 10_000 ? `${this.o.timeoutMs} ms` : `${Math.round(this.o.timeoutMs / 1000)} s`}`
        : typeof cause === 'string'
          ? cause
          : (code && NETWORK_HINTS[code]) ?? (cause instanceof Error ? cause.message : String(cause));
    return cloudStackError(
      'CONNECTOR.UNREACHABLE',
      `could not reach CloudStack for connector "${this.o.name}": POST ${this.where} (${command}): ${reason}`,
      { endpoint: this.where, command, ...(code ? { cause: code } : {}), ...(cause === 'TIMEOUT' ? { timeoutMs: this.o.timeoutMs } : {}) },
      cause instanceof Error ? cause : undefined,
    );
  }

  private unexpected(command: string, what: string, httpStatus?: number): AppError {
    return cloudStackError('CONNECTOR.API_ERROR', `${this.prefix(command)} got an answer Backroll cannot use: ${what}`, {
      endpoint: this.where,
      command,
      ...(httpStatus !== undefined ? { httpStatus } : {}),
    });
  }

  private prefix(command: string): string {
    return `${command} on CloudStack ${this.where} (connector "${this.o.name}")`;
  }

  /** CloudStack's own words, without anything secret and within reason in length. */
  private scrub(text: string, signatures: string[]): string {
    let out = text;
    for (const secret of [this.#secretKey, this.#apiKey, ...signatures]) if (secret) out = out.split(secret).join('[redacted]');
    return out.length > ERRORTEXT_MAX ? `${out.slice(0, ERRORTEXT_MAX)}…` : out;
  }
}
