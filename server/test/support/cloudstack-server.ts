/**
 * A CloudStack management server's API on loopback, for tests: it checks every request's
 * signature strictly with its own implementation of CloudStack's verification
 * (ApiServer.verifyRequest: decoded parameters sorted by name, values re-encoded with Java's
 * URLEncoder, lower-cased, HMAC-SHA1, constant-time compare; signature version 3 with
 * `expires` no later than 15 minutes ahead) and answers with the response shapes
 * CloudStack 4.19 gives: lists with `count`, async jobs, its error objects and HTTP statuses.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

type Json = Record<string, unknown>;

/** Java's URLEncoder.encode(value, "UTF-8"), byte by byte. */
export function javaUrlEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9.\-*_]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The signature CloudStack computes for the decoded request parameters (the `signature` one excluded). */
export function serverSideSignature(params: Map<string, string>, secretKey: string): string {
  const names = [...params.keys()].filter((n) => n.toLowerCase() !== 'signature').sort();
  const unsigned = names.map((n) => `${n}=${javaUrlEncode(params.get(n)!).replace(/\+/g, '%20')}`).join('&');
  return createHmac('sha1', Buffer.from(secretKey, 'utf8')).update(unsigned.toLowerCase(), 'utf8').digest('base64');
}

/** `expires` as CloudStack parses it: the legacy `…'Z'Z` form or an ISO offset date-time. */
function parseExpires(value: string): number | undefined {
  const legacy = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z([+-])(\d\d)(\d\d)$/.exec(value);
  if (legacy) return Date.parse(`${legacy[1]}${legacy[2]}${legacy[3]}:${legacy[4]}`);
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value)) return Date.parse(value);
  return undefined;
}

// ---- recorded shapes (CloudStack 4.19, response=json) ----

const ACCOUNT = { account: 'admin', accountid: 'b5c2f4e6-1d18-11ec-9173-50eb7122da94', domainid: 'b5b1c0a2-1d18-11ec-9173-50eb7122da94', domain: 'ROOT' };
export const ZONE_ID = '753941b6-5239-4ab3-b2b3-7522d2a6d1ba';
export const POOL_ID = '44ad900d-785b-3eff-addc-a5e6bf4927ef';

export function zoneShape(name = 'zone-1', id = ZONE_ID): Json {
  return {
    id,
    name,
    dns1: '8.8.8.8',
    internaldns1: '10.0.0.1',
    guestcidraddress: '10.1.1.0/24',
    networktype: 'Advanced',
    securitygroupsenabled: false,
    allocationstate: 'Enabled',
    zonetoken: 'a5d4b9c0-4a4c-3c47-8c55-2a0e4b3f6f0e',
    dhcpprovider: 'VirtualRouter',
    localstorageenabled: false,
    tags: [],
    hasannotations: false,
    type: 'Core',
  };
}

export function capabilityShape(version = '4.19.1.0'): Json {
  return {
    securitygroupsenabled: false,
    dynamicrolesenabled: true,
    cloudstackversion: version,
    userpublictemplateenabled: true,
    supportELB: 'false',
    projectinviterequired: false,
    allowusercreateprojects: true,
    customdiskofferingminsize: 1,
    customdiskofferingmaxsize: 1024,
    regionsecondaryenabled: false,
    kvmsnapshotenabled: false,
    allowuserviewdestroyedvm: false,
    allowuserexpungerecovervm: false,
    allowuserexpungerecovervolume: true,
    allowuserviewalldomainaccounts: false,
    kubernetesserviceenabled: false,
    kubernetesclusterexperimentalfeaturesenabled: false,
    defaultuipagesize: 20,
    instancesstatsretentiontime: 720,
    instancesstatsuseronly: false,
    instancesdisksstatsretentionenabled: false,
    instancesdisksstatsretentiontime: 720,
  };
}

export interface VmSeed {
  id?: string;
  name: string;
  displayname?: string;
  state?: 'Running' | 'Stopped';
  instancename?: string;
  account?: string;
  projectid?: string;
  project?: string;
  /** Volume file names (or paths) in the primary storage, ROOT first; default random uuids. */
  volumePaths?: string[];
  /** The primary storage of its volumes (default POOL_ID). */
  storageId?: string;
}

export function vmShape(seed: VmSeed, n = 12): Json {
  const id = seed.id ?? randomUUID();
  const state = seed.state ?? 'Running';
  return {
    id,
    name: seed.name,
    displayname: seed.displayname ?? seed.name,
    ...ACCOUNT,
    ...(seed.account ? { account: seed.account } : {}),
    ...(seed.projectid ? { projectid: seed.projectid, project: seed.project ?? 'project-1' } : {}),
    userid: 'b5c3a1d4-1d18-11ec-9173-50eb7122da94',
    username: 'admin',
    created: '2025-06-03T09:12:44+0000',
    state,
    haenable: false,
    zoneid: ZONE_ID,
    zonename: 'zone-1',
    ...(state === 'Running' ? { hostid: 'c1f1e2d3-0000-4000-8000-000000000001', hostname: 'kvmhost1', hostcontrolstate: 'Enabled' } : {}),
    templateid: '2f1a3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
    templatename: 'Ubuntu 22.04',
    templatedisplaytext: 'Ubuntu 22.04 LTS',
    passwordenabled: false,
    serviceofferingid: '7e8f9a0b-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
    serviceofferingname: 'Small Instance',
    cpunumber: 1,
    cpuspeed: 1000,
    memory: 1024,
    guestosid: '1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e',
    rootdeviceid: 0,
    rootdevicetype: 'ROOT',
    securitygroup: [],
    nic: [
      {
        id: randomUUID(),
        networkid: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
        networkname: 'guest-net',
        netmask: '255.255.255.0',
        gateway: '10.1.1.1',
        ipaddress: `10.1.1.${(n % 250) + 2}`,
        isolationuri: 'vlan://1234',
        broadcasturi: 'vlan://1234',
        traffictype: 'Guest',
        type: 'Isolated',
        isdefault: true,
        macaddress: `02:00:4c:9e:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`,
        deviceid: '0',
      },
    ],
    hypervisor: 'KVM',
    instancename: seed.instancename ?? `i-2-${n}-VM`,
    details: { rootDiskController: 'virtio', dataDiskController: 'virtio' },
    affinitygroup: [],
    displayvm: true,
    isdynamicallyscalable: false,
    ostypeid: '1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e',
    osdisplayname: 'Ubuntu 22.04 LTS',
    tags: [],
  };
}

export function volumeShape(vm: Json, type: 'ROOT' | 'DATADISK', deviceid: number, pathId: string = randomUUID(), storageId = POOL_ID): Json {
  return {
    id: randomUUID(),
    name: type === 'ROOT' ? `ROOT-${String(vm.instancename).split('-')[2]}` : `DATA-${String(vm.instancename).split('-')[2]}-${deviceid}`,
    zoneid: ZONE_ID,
    zonename: 'zone-1',
    type,
    deviceid,
    virtualmachineid: vm.id,
    vmname: vm.name,
    vmdisplayname: vm.displayname,
    vmstate: vm.state,
    provisioningtype: 'thin',
    size: type === 'ROOT' ? 8589934592 : 21474836480,
    created: '2025-06-03T09:12:44+0000',
    state: 'Ready',
    account: vm.account,
    domainid: vm.domainid,
    domain: vm.domain,
    ...(vm.projectid ? { projectid: vm.projectid, project: vm.project } : {}),
    storagetype: 'shared',
    hypervisor: 'KVM',
    storage: 'primary-nfs',
    storageid: storageId,
    format: 'QCOW2',
    destroyed: false,
    isextractable: true,
    tags: [],
    displayvolume: true,
    path: pathId,
    physicalsize: 1610612736,
    virtualsize: type === 'ROOT' ? 8589934592 : 21474836480,
  };
}

export function storagePoolShape(id = POOL_ID, name = 'primary-nfs', where: { type?: string; path?: string } = {}): Json {
  return {
    id,
    zoneid: ZONE_ID,
    zonename: 'zone-1',
    podid: 'b52f7877-227e-4e3f-974b-2397a37d6e1c',
    podname: 'pod-1',
    name,
    ipaddress: '10.0.0.5',
    path: where.path ?? '/export/primary',
    created: '2025-05-27T06:01:56+0000',
    type: where.type ?? 'NetworkFilesystem',
    clusterid: 'a7b4c0e1-8ba4-41ea-a2f4-490798ddd166',
    clustername: 'cluster-1',
    disksizetotal: 1099511627776,
    disksizeallocated: 107374182400,
    disksizeused: 53687091200,
    state: 'Up',
    scope: 'CLUSTER',
    hypervisor: 'KVM',
    overprovisionfactor: '2.0',
    provider: 'DefaultPrimary',
    managed: false,
    hasannotations: false,
  };
}

// ---- the server ----

export interface RecordedRequest {
  method: string;
  command: string;
  /** Decoded parameters, without the signature. */
  params: Record<string, string>;
  /** The raw request body and query (for checks that nothing secret is sent in the clear). */
  raw: string;
}

export interface JobPlan {
  /** Polls answered with jobstatus 0 before the job ends. */
  pendingPolls: number;
  /** Success, or CloudStack's failure result. */
  fail?: { errorcode: number; errortext: string };
}

interface Job {
  id: string;
  command: string;
  vmId: string;
  polls: number;
  plan: JobPlan;
  done?: Json;
  /** The onJob hook's work: the job stays pending until it settles; its failure fails the job. */
  work?: { settled: boolean; error?: string };
}

export interface CloudStackServerOptions {
  apiKey?: string;
  secretKey?: string;
  /** Serve https with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  version?: string;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
}

export interface CloudStackTestServer {
  /** The API endpoint: http(s)://127.0.0.1:<port>/client/api. */
  url: string;
  apiKey: string;
  secretKey: string;
  /** Every request whose signature verified. */
  requests: RecordedRequest[];
  /** Requests refused with 401 (bad signature, unknown key, expired). */
  rejected: Array<{ command: string; reason: string }>;
  zones: Json[];
  capabilities: Json;
  vms: Json[];
  volumes: Json[];
  pools: Json[];
  jobs: Map<string, Job>;
  /** Plans of the next async jobs, taken in order; afterwards one pending poll, then success. */
  jobPlans: JobPlan[];
  /** The next answers of a command: a CloudStack error, a delay, or a raw HTTP answer (a proxy's). */
  failNext(command: string, error: { errorcode: number; errortext: string; cserrorcode?: number }): void;
  delayNext(command: string, ms: number): void;
  rawNext(command: string, answer: { status: number; contentType: string; body: string }): void;
  /** Commands the account's role may not run (432). */
  denied: Set<string>;
  /**
   * What a start/stop job does besides changing the VM's state here (e.g. really start or stop a
   * libvirt domain of the lab, as CloudStack's agent would); the job is pending until it settles.
   */
  onJob?: (command: 'startVirtualMachine' | 'stopVirtualMachine', vm: Json, params: Record<string, string>) => Promise<void>;
  /** Adds a VM (and its ROOT volume plus `dataDisks` data volumes) to the fake cloud. */
  addVm(seed: VmSeed, dataDisks?: number): Json;
  close(): Promise<void>;
}

const MAX_PAGE_SIZE = 500;
const CALLER_ACCOUNT = 'admin';

class ApiError extends Error {
  constructor(readonly errorcode: number, readonly errortext: string, readonly cserrorcode = 9999) {
    super(errortext);
  }
}

const invalidParam = (command: string, name: string, value: string) =>
  new ApiError(
    431,
    `Unable to execute API command ${command.toLowerCase()} due to invalid value. Invalid parameter ${name} value=${value} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.`,
    4350,
  );

export async function startCloudStackServer(opts: CloudStackServerOptions = {}): Promise<CloudStackTestServer> {
  const apiKey = opts.apiKey ?? `ak-${randomUUID()}`;
  const secretKey = opts.secretKey ?? `sk-${randomUUID()}-${randomUUID()}`;
  const queued = new Map<string, Array<{ error?: ApiError; delayMs?: number; raw?: { status: number; contentType: string; body: string } }>>();
  const next = (command: string) => queued.get(command)?.shift();
  const queue = (command: string, item: { error?: ApiError; delayMs?: number; raw?: { status: number; contentType: string; body: string } }) =>
    queued.set(command, [...(queued.get(command) ?? []), item]);
  let vmCounter = 10;

  const s: CloudStackTestServer = {
    url: '',
    apiKey,
    secretKey,
    requests: [],
    rejected: [],
    zones: [zoneShape()],
    capabilities: capabilityShape(opts.version),
    vms: [],
    volumes: [],
    pools: [storagePoolShape()],
    jobs: new Map(),
    jobPlans: [],
    denied: new Set(),
    failNext: (command, e) => queue(command, { error: new ApiError(e.errorcode, e.errortext, e.cserrorcode) }),
    delayNext: (command, ms) => queue(command, { delayMs: ms }),
    rawNext: (command, raw) => queue(command, { raw }),
    addVm(seed, dataDisks = 0) {
      const vm = vmShape(seed, ++vmCounter);
      s.vms.push(vm);
      const paths = seed.volumePaths ?? [];
      s.volumes.push(volumeShape(vm, 'ROOT', 0, paths[0], seed.storageId));
      // Device id 3 is the CD-ROM's (hdc) on KVM: CloudStack skips it for data disks.
      for (let i = 1; i <= dataDisks; i++) s.volumes.push(volumeShape(vm, 'DATADISK', i >= 3 ? i + 1 : i, paths[i], seed.storageId));
      return vm;
    },
    close: async () => {},
  };

  /** CloudStack's project scoping: none → no project's items; -1 → every project's; an id → that project's. */
  const inScope = (item: Json, p: Record<string, string>) => {
    if (p.projectid === '-1') return item.projectid !== undefined;
    if (p.projectid !== undefined) return item.projectid === p.projectid;
    if (item.projectid !== undefined) return false;
    return p.listall === 'true' || item.account === CALLER_ACCOUNT;
  };

  const page = (command: string, key: string, all: Json[], p: Record<string, string>): Json => {
    if (p.page !== undefined && p.pagesize === undefined) throw new ApiError(431, `"page" parameter is required when "pagesize" is specified`, 4350);
    const size = p.pagesize === undefined ? MAX_PAGE_SIZE : Number(p.pagesize);
    if (!Number.isInteger(size) || size < 1) throw invalidParam(command, 'pagesize', p.pagesize!);
    if (size > MAX_PAGE_SIZE) throw new ApiError(431, `Page size can't exceed max allowed page size value: ${MAX_PAGE_SIZE}`, 4350);
    const n = p.page === undefined ? 1 : Number(p.page);
    if (!Number.isInteger(n) || n < 1) throw invalidParam(command, 'page', p.page!);
    const items = all.slice((n - 1) * size, n * size);
    // CloudStack leaves both out of an empty list.
    return all.length === 0 ? {} : { count: all.length, [key]: items };
  };

  const vmById = (command: string, id: string | undefined) => {
    const vm = s.vms.find((v) => v.id === id);
    if (!vm) throw invalidParam(command, 'id', id ?? '');
    return vm;
  };

  const jobAnswer = (job: Job): Json => {
    const base = {
      accountid: ACCOUNT.accountid,
      userid: 'b5c3a1d4-1d18-11ec-9173-50eb7122da94',
      cmd: job.command === 'startVirtualMachine' ? 'org.apache.cloudstack.api.command.admin.vm.StartVMCmdByAdmin' : 'org.apache.cloudstack.api.command.admin.vm.StopVMCmdByAdmin',
      jobprocstatus: 0,
      jobinstancetype: 'VirtualMachine',
      jobinstanceid: job.vmId,
      created: '2026-12-02T10:00:00+0000',
      jobid: job.id,
    };
    if (job.polls <= job.plan.pendingPolls || (job.work && !job.work.settled)) return { ...base, jobstatus: 0, jobresultcode: 0 };
    if (!job.done) {
      const fail = job.plan.fail ?? (job.work?.error !== undefined ? { errorcode: 530, errortext: job.work.error } : undefined);
      if (fail) {
        job.done = { jobstatus: 2, jobresultcode: fail.errorcode, jobresulttype: 'object', jobresult: { errorcode: fail.errorcode, errortext: fail.errortext } };
      } else {
        const vm = vmById(job.command, job.vmId);
        if (job.command === 'startVirtualMachine') Object.assign(vm, { state: 'Running', hostid: 'c1f1e2d3-0000-4000-8000-000000000001', hostname: 'kvmhost1' });
        else {
          vm.state = 'Stopped';
          delete vm.hostid;
          delete vm.hostname;
        }
        job.done = { jobstatus: 1, jobresultcode: 0, jobresulttype: 'object', jobresult: { virtualmachine: { ...vm } } };
      }
    }
    return { ...base, ...job.done, completed: '2026-12-02T10:00:05+0000' };
  };

  const dispatch = (command: string, p: Record<string, string>): Json => {
    switch (command) {
      case 'listZones':
        return page(command, 'zone', s.zones.filter((z) => p.id === undefined || z.id === p.id), p);
      case 'listCapabilities':
        return { capability: s.capabilities };
      case 'listVirtualMachines': {
        // CloudStack refuses an id it does not know (431) rather than answering an empty list.
        if (p.id !== undefined && !s.vms.some((v) => v.id === p.id)) throw invalidParam(command, 'id', p.id);
        const vms = s.vms.filter(
          (v) =>
            inScope(v, p) &&
            (p.id === undefined || v.id === p.id) &&
            (p.hostid === undefined || v.hostid === p.hostid) &&
            (p.state === undefined || v.state === p.state) &&
            (p.keyword === undefined || String(v.name).includes(p.keyword)),
        );
        return page(command, 'virtualmachine', vms, p);
      }
      case 'listVolumes': {
        const vols = s.volumes.filter(
          (v) => inScope(v, p) && (p.id === undefined || v.id === p.id) && (p.virtualmachineid === undefined || v.virtualmachineid === p.virtualmachineid) && (p.storageid === undefined || v.storageid === p.storageid),
        );
        return page(command, 'volume', vols, p);
      }
      case 'listStoragePools':
        return page(command, 'storagepool', s.pools.filter((x) => (p.id === undefined || x.id === p.id) && (p.name === undefined || x.name === p.name)), p);
      case 'startVirtualMachine':
      case 'stopVirtualMachine': {
        const vm = vmById(command, p.id);
        const job: Job = { id: randomUUID(), command, vmId: String(vm.id), polls: 0, plan: s.jobPlans.shift() ?? { pendingPolls: 1 } };
        if (s.onJob && !job.plan.fail) {
          const work: NonNullable<Job['work']> = { settled: false };
          job.work = work;
          s.onJob(command, vm, p).then(
            () => (work.settled = true),
            (err: unknown) => Object.assign(work, { settled: true, error: String((err as Error)?.message ?? err) }),
          );
        }
        s.jobs.set(job.id, job);
        return { id: vm.id, jobid: job.id };
      }
      case 'queryAsyncJobResult': {
        const job = s.jobs.get(p.jobid ?? '');
        if (!job) throw invalidParam(command, 'jobid', p.jobid ?? '');
        job.polls++;
        return jobAnswer(job);
      }
      default:
        throw new ApiError(432, `The given command '${command}' either does not exist, is not available for user, or not available from ip address '127.0.0.1'.`, 9999);
    }
  };

  /** The checks of ApiServer.verifyRequest; a reason when the request is refused. */
  const verify = (params: Map<string, string>): string | undefined => {
    const get = (name: string) => [...params].find(([k]) => k.toLowerCase() === name)?.[1];
    const signature = get('signature');
    const key = get('apikey');
    if (!signature || !key) return 'missing signature or apiKey';
    if (get('signatureversion') === '3') {
      const expires = get('expires');
      const at = expires === undefined ? undefined : parseExpires(expires);
      if (at === undefined || Number.isNaN(at)) return `unparseable expires ${String(expires)}`;
      if (at < Date.now()) return 'request expired';
      if (at > Date.now() + 15 * 60_000) return 'expires too far ahead';
    }
    if (key !== apiKey) return 'apiKey does not map to a user';
    const expected = Buffer.from(serverSideSignature(params, secretKey));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'signature mismatch';
    return undefined;
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = Buffer.concat(chunks).toString('utf8');
      const send = (status: number, json: Json, contentType = 'application/json;charset=UTF-8') => {
        res.writeHead(status, { 'content-type': contentType });
        res.end(JSON.stringify(json));
      };
      if (url.pathname !== '/client/api') {
        res.writeHead(404, { 'content-type': 'text/html' });
        res.end('<html><body>HTTP Status 404 – Not Found</body></html>');
        return;
      }
      // The servlet's parameter map: query string first, then the form body; the first value counts.
      const params = new Map<string, string>();
      for (const source of [url.searchParams, new URLSearchParams(req.method === 'POST' ? body : '')]) {
        for (const [k, v] of source) if (!params.has(k)) params.set(k, v);
      }
      const command = params.get('command') ?? '';
      const responseName = `${command.toLowerCase()}response`;
      const refusal = verify(params);
      if (refusal) {
        s.rejected.push({ command, reason: refusal });
        send(401, { [responseName]: { uuidList: [], errorcode: 401, errortext: 'unable to verify user credentials and/or request signature' } });
        return;
      }
      const decoded = Object.fromEntries([...params].filter(([k]) => k !== 'signature'));
      s.requests.push({ method: req.method ?? '', command, params: decoded, raw: `${url.search}&${body}` });
      const respond = () => {
        try {
          if (decoded.response !== 'json') throw new ApiError(431, 'this test server answers response=json only', 4350);
          if (s.denied.has(command)) {
            throw new ApiError(432, `The given command '${command}' either does not exist, is not available for user, or not available from ip address '127.0.0.1'.`, 9999);
          }
          const queuedItem = next(command);
          if (queuedItem?.raw) {
            res.writeHead(queuedItem.raw.status, { 'content-type': queuedItem.raw.contentType });
            res.end(queuedItem.raw.body);
            return;
          }
          if (queuedItem?.error) throw queuedItem.error;
          send(200, { [responseName]: dispatch(command, decoded) });
        } catch (err) {
          const e = err instanceof ApiError ? err : new ApiError(530, `internal error: ${String(err)}`);
          send(e.errorcode, { [responseName]: { uuidList: [], errorcode: e.errorcode, cserrorcode: e.cserrorcode, errortext: e.errortext } });
        }
      };
      const delay = queued.get(command)?.[0]?.delayMs;
      if (delay !== undefined) {
        queued.get(command)!.shift();
        setTimeout(respond, delay);
      } else respond();
    });
  };

  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : http.createServer(handler);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  s.url = `${opts.tls ? 'https' : 'http'}://${host}:${port}/client/api`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}

export interface TestCertificates {
  /** The CA's certificate (PEM): what a connector's caCertificate holds. */
  caPem: string;
  /** The server's certificate for 127.0.0.1 and localhost, signed by the CA, and its key. */
  certPem: string;
  keyPem: string;
}

/** A throw-away CA and a server certificate it signed, made with openssl (argv, no shell). */
export function makeTestCertificates(): TestCertificates {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-cs-ca-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Backroll Test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    openssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
    fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
    openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf'));
    return { caPem: fs.readFileSync(f('ca.pem'), 'utf8'), certPem: fs.readFileSync(f('server.pem'), 'utf8'), keyPem: fs.readFileSync(f('server.key'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
