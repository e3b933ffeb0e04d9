import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Page, Timestamps, Uuid, errorResponses, listQuery } from '../http/schemas.js';
import type { InventoryService } from './inventory.service.js';
import type { VmService } from './vm.service.js';

const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(t: T) => Type.Union([t, Type.Null()]);
const Size = Nullable(Type.Integer({ minimum: 0 }));
const STATES = ['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended', 'no state', 'unknown'] as const;
const State = Type.Union(STATES.map((s) => Type.Literal(s)), { description: "libvirt's domain state, as virsh prints it" });

const Image = Type.Object({ path: Nullable(Type.String()), format: Nullable(Type.String()), virtualSizeBytes: Size, actualSizeBytes: Size });
const Disk = Type.Object({
  target: Type.String({ description: 'guest device: vda, sda' }),
  bus: Nullable(Type.String()),
  type: Type.String({ description: 'file, block, network, volume… (backups handle file and block)' }),
  path: Nullable(Type.String()),
  source: Nullable(Type.String({ description: 'for sources without a path: rbd:pool/image, volume:pool/vol' })),
  format: Nullable(Type.String({ description: 'qcow2, raw' })),
  readonly: Type.Boolean(),
  shareable: Type.Boolean(),
  virtualSizeBytes: Size,
  actualSizeBytes: Size,
  backingChain: Type.Array(Image, { description: 'images below the top one, nearest first' }),
  backingChainSource: Type.Union([Type.Literal('qemu-img'), Type.Literal('libvirt'), Type.Null()], { description: 'null: the chain is unknown' }),
  problem: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()], { description: 'why sizes or the chain are missing' }),
});
const VirtualMachine = Type.Object(
  {
    id: Uuid,
    uuid: Type.String({ description: "libvirt's domain UUID" }),
    name: Type.String(),
    state: State,
    vcpus: Type.Integer(),
    memoryBytes: Type.Integer(),
    disks: Type.Array(Disk),
    cloudStackManaged: Type.Boolean({ description: "an Apache CloudStack instance (SMBIOS sysinfo, or known to the pool's connector)" }),
    cloudStack: Type.Union(
      [
        Type.Object({
          id: Type.String({ description: "CloudStack's instance id" }),
          instanceName: Nullable(Type.String({ description: 'the libvirt domain name, e.g. i-2-12-VM' })),
          displayName: Nullable(Type.String()),
          account: Nullable(Type.String()),
          domain: Nullable(Type.String()),
          project: Nullable(Type.String()),
          state: Type.String({ description: 'the state as CloudStack sees it (Running, Stopped, …)' }),
          stoppedOutsideLibvirt: Type.Boolean({ description: 'stopped by CloudStack, so undefined from libvirt: known through the connector, backed up from its volumes on the primary storage' }),
        }),
        Type.Null(),
      ],
      { description: "what the pool's CloudStack connector says about the VM at the last refresh; null without a connector or when CloudStack does not know it" },
    ),
    systemVm: Type.Boolean({ description: 'a CloudStack system VM (r-/s-/v-/b-/l-<id>-<instance>): listed, never backed up' }),
    present: Type.Boolean({ description: 'false: no longer on its host at the last refresh (kept: its backups still matter)' }),
    lastSeenAt: Type.String({ format: 'date-time' }),
    hostId: Uuid,
    host: Type.Object({
      id: Uuid,
      name: Type.String(),
      poolId: Uuid,
      connectionState: Type.Union([Type.Literal('unknown'), Type.Literal('connected'), Type.Literal('failed')]),
      lastSeenAt: Nullable(Type.String({ format: 'date-time' })),
    }),
    ...Timestamps,
  },
  { $id: 'VirtualMachine' },
);

const HostSummary = Type.Object({
  hostId: Uuid,
  hostName: Type.String(),
  ok: Type.Boolean(),
  found: Type.Integer({ description: 'domains read on the host' }),
  added: Type.Integer(),
  updated: Type.Integer(),
  disappeared: Type.Integer({ description: 'known VMs no longer on the host: now present=false' }),
  vanished: Type.Integer({ description: 'listed, then undefined before they could be read: skipped' }),
  vmErrors: Type.Array(Type.Object({ uuid: Type.String(), code: Type.String(), message: Type.String() }), { description: 'domains that could not be read (left unchanged)' }),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()], { description: 'why the host could not be inventoried (nothing of it changed)' }),
  cloudStack: Type.Optional(
    Type.Object(
      {
        ok: Type.Boolean(),
        instances: Type.Integer({ description: 'domains of the host CloudStack knows' }),
        stopped: Type.Integer({ description: 'VMs CloudStack stopped (undefined from libvirt) listed on this host' }),
        error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()], { description: 'why the connector could not be asked (the VMs keep what it said before)' }),
      },
      { description: "present when the host's pool has a CloudStack connector" },
    ),
  ),
  durationMs: Type.Integer(),
});
const RefreshSummary = Type.Object({ startedAt: Type.String({ format: 'date-time' }), finishedAt: Type.String({ format: 'date-time' }), hosts: Type.Array(HostSummary) });

const ListQuery = listQuery({
  hostId: Type.Optional(Uuid),
  poolId: Type.Optional(Uuid),
  state: Type.Optional(State),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'substring of the name, case-insensitive' })),
  includeSystem: Type.Optional(Type.Boolean({ default: false, description: 'include CloudStack system VMs' })),
  present: Type.Optional(Type.Boolean({ description: 'true: only VMs on their host at the last refresh; false: only disappeared ones; default both' })),
});

const tags = ['virtual machines'];

export async function vmRoutes(app: FastifyInstance, vms: VmService, inventory: InventoryService): Promise<void> {
  app.addSchema(VirtualMachine);
  const Ref = Type.Ref('VirtualMachine');
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/virtual-machines',
    {
      schema: {
        tags,
        summary: 'The VM inventory (from the cache; refreshed periodically and on demand)',
        querystring: ListQuery,
        response: { 200: Page(Ref), ...errorResponses() },
      },
    },
    async (req) => {
      const { limit, offset, ...filter } = req.query;
      return vms.list({ limit, offset }, filter);
    },
  );
  app.get<{ Params: IdParams }>(
    '/virtual-machines/:id',
    { schema: { tags, summary: 'One VM of the inventory', params: IdParams, response: { 200: Ref, ...errorResponses(404) } } },
    async (req) => vms.get(req.params.id),
  );
  app.post(
    '/virtual-machines/refresh',
    {
      schema: {
        tags,
        summary: 'Refresh the inventory of every host now; one failing host does not stop the others',
        description: 'Always 200: each host has its own outcome in the summary (and its connection state is recorded on the host).',
        response: { 200: RefreshSummary, ...errorResponses() },
      },
    },
    async () => inventory.refreshAll(),
  );
  app.post<{ Params: IdParams }>(
    '/hosts/:id/refresh',
    {
      schema: {
        tags: ['hosts', ...tags],
        summary: "Refresh one host's inventory now",
        description: "200 with the summary even when the host failed (see hosts[0].error and the host's connection state).",
        params: IdParams,
        response: { 200: RefreshSummary, ...errorResponses(404) },
      },
    },
    async (req) => inventory.refreshHost(req.params.id),
  );
}
