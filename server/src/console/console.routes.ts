/** The console's read endpoints: who am I, the dashboard, the VM table, storage usage, policy preview. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { notFound } from '../errors.js';
import { Uuid, errorResponses } from '../http/schemas.js';
import type { ConsoleService } from './dashboard.service.js';
import { previewPolicy } from './policy-preview.js';
import { PROTECTION_STATES, type Protection } from './protection.js';
import { VM_SORTS, type VmSort } from './vm-rows.repository.js';

const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer> | ReturnType<typeof Type.Number>>(t: T) => Type.Union([t, Type.Null()]);
const Ts = Type.String({ format: 'date-time' });
const Int = Type.Integer();
const Problemish = Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]);
const ProtectionT = Type.Union(PROTECTION_STATES.map((p) => Type.Literal(p)), {
  description:
    'protected: policy enabled, last backup succeeded, newest restore point younger than the schedule interval + 1 h; atRisk: has restore points but not protected; unprotected: no restore point; noPolicy: the policy is disabled; excluded: CloudStack system VM or no longer on its host',
});

const Me = Type.Object({
  subject: Type.String(),
  name: Type.String({ description: 'user name, or the machine client id' }),
  roles: Type.Array(Type.Union([Type.Literal('admin'), Type.Literal('viewer')])),
  isAdmin: Type.Boolean(),
  kind: Type.Union([Type.Literal('user'), Type.Literal('client')]),
  tokenExpiresAt: Nullable(Ts),
});

const TaskRef = Type.Ref('Task');
const Dashboard = Type.Object({
  generatedAt: Ts,
  protection: Type.Object({ protected: Int, atRisk: Int, unprotected: Int, noPolicy: Int, excluded: Int, total: Int }),
  taskMatrix: Type.Object({
    since: Ts,
    kinds: Type.Array(Type.String()),
    states: Type.Array(Type.String()),
    cells: Type.Array(Type.Object({ kind: Type.String(), state: Type.String(), count: Int }), { description: 'non-zero cells of tasks created since `since` (7 days)' }),
  }),
  issues: Type.Object({
    failingVms: Type.Array(
      Type.Object({
        vmId: Uuid,
        vmName: Type.String(),
        hostId: Uuid,
        hostName: Type.String(),
        failures: Int,
        recent: Type.Array(Type.Object({ taskId: Uuid, state: Type.String(), at: Ts, errorCode: Nullable(Type.String()) }), { description: 'the last 3 finished backups, newest first' }),
      }),
    ),
    hostsNotConnected: Type.Array(
      Type.Object({ hostId: Uuid, hostName: Type.String(), state: Type.String(), errorCode: Nullable(Type.String()), message: Nullable(Type.String()), lastSeenAt: Nullable(Ts) }),
    ),
    hostKeyChanged: Type.Array(Type.Object({ hostId: Uuid, hostName: Type.String(), message: Nullable(Type.String()), pinnedFingerprint: Nullable(Type.String()) })),
  }),
  running: Type.Array(Type.Intersect([TaskRef, Type.Object({ targetName: Nullable(Type.String()) })]), { description: 'running tasks, then queued ones (at most 50)' }),
  storages: Type.Array(
    Type.Object({
      id: Uuid,
      name: Type.String(),
      path: Type.String(),
      capacityBytes: Nullable(Int),
      usedBytes: Nullable(Int),
      freeBytes: Nullable(Int),
      capacityAt: Nullable(Ts),
      capacityError: Problemish,
      backupBytes: Int,
      originalBytes: Int,
      restorePoints: Int,
      dedupRatio: Nullable(Type.Number()),
      samples: Type.Array(Type.Object({ at: Ts, usedBytes: Nullable(Int), capacityBytes: Nullable(Int) }), { description: 'last sample of each day, 30 days' }),
      estimatedFullAt: Nullable(Ts),
    }),
  ),
  nextRuns: Type.Array(Type.Object({ policyId: Uuid, policyName: Type.String(), at: Ts, poolCount: Int, vmCount: Int })),
  gettingStarted: Type.Object({
    storage: Type.Boolean(),
    policy: Type.Boolean(),
    pool: Type.Boolean(),
    host: Type.Boolean(),
    hostConnected: Type.Boolean(),
    firstBackup: Type.Boolean(),
    complete: Type.Boolean(),
  }),
});

const VmRow = Type.Object(
  {
    id: Uuid,
    uuid: Type.String(),
    name: Type.String(),
    state: Type.String(),
    present: Type.Boolean(),
    systemVm: Type.Boolean(),
    cloudStackManaged: Type.Boolean(),
    vcpus: Int,
    memoryBytes: Int,
    diskCount: Int,
    host: Type.Object({ id: Uuid, name: Type.String(), connectionState: Type.String(), tags: Type.Array(Type.String()) }),
    pool: Type.Object({ id: Uuid, name: Type.String() }),
    policy: Type.Object({ id: Uuid, name: Type.String(), enabled: Type.Boolean() }),
    lastBackup: Type.Union([Type.Object({ taskId: Uuid, state: Type.String(), at: Ts, errorCode: Nullable(Type.String()) }), Type.Null()], {
      description: 'the latest finished vm.backup task (at = its end)',
    }),
    lastRestorePointAt: Nullable(Ts),
    nextRunAt: Nullable(Ts),
    protection: ProtectionT,
    restorePoints: Type.Object({ count: Int, originalBytes: Int, deduplicatedBytes: Int }),
    running: Type.Union([Type.Object({ taskId: Uuid, kind: Type.String(), percent: Nullable(Type.Number()) }), Type.Null()]),
  },
  { $id: 'VmRow' },
);

const SortT = Type.String({ pattern: `^-?(${VM_SORTS.join('|')})$`, default: 'name', description: `${VM_SORTS.join(', ')}; prefix - for descending` });
const RowsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
    sort: SortT,
    protection: Type.Optional(Type.String({ pattern: `^(${PROTECTION_STATES.join('|')})(,(${PROTECTION_STATES.join('|')}))*$`, description: 'comma list' })),
    failed: Type.Optional(Type.Boolean({ description: 'true: only VMs whose last backup did not succeed' })),
    hostId: Type.Optional(Uuid),
    poolId: Type.Optional(Uuid),
    policyId: Type.Optional(Uuid),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a tag of the host' })),
    search: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'substring of the VM name, case-insensitive' })),
    includeSystem: Type.Optional(Type.Boolean({ default: false })),
    present: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const UsageQuery = Type.Object({ days: Type.Integer({ minimum: 1, maximum: 365, default: 30 }) }, { additionalProperties: false });
const Sample = Type.Object({ at: Ts, capacityBytes: Nullable(Int), usedBytes: Nullable(Int), freeBytes: Nullable(Int), backupBytes: Int, originalBytes: Int });
const Usage = Type.Object({
  storageId: Uuid,
  samples: Type.Array(Sample, { description: 'oldest first, every sample of the period' }),
  backupBytes: Int,
  originalBytes: Int,
  dedupRatio: Nullable(Type.Number()),
  estimatedFullAt: Nullable(Ts),
  topVms: Type.Array(Type.Object({ vmId: Uuid, vmName: Type.String(), restorePoints: Int, deduplicatedBytes: Int, originalBytes: Int })),
});

const RetentionCount = Type.Integer({ minimum: 0, maximum: 10000 });
const PreviewBody = Type.Object(
  {
    schedule: Type.String({ minLength: 1, maxLength: 255 }),
    timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: 'UTC' })),
    runs: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, default: 5 })),
    retention: Type.Optional(Type.Object({ daily: RetentionCount, weekly: RetentionCount, monthly: RetentionCount, yearly: RetentionCount }, { additionalProperties: false })),
    vmId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);
const PrunePoint = Type.Object({ restorePointId: Uuid, createdAt: Ts, reason: Type.String(), originalSize: Nullable(Int), deduplicatedSize: Nullable(Int) });
const Preview = Type.Object({
  nextRuns: Type.Array(Ts),
  intervalSeconds: Nullable(Int),
  prune: Type.Union([
    Type.Object({
      vmId: Uuid,
      vmName: Type.String(),
      total: Int,
      keptCount: Int,
      prunedCount: Int,
      kept: Type.Array(PrunePoint, { description: 'newest first; reason: the rule and its count, e.g. "daily 3", "monthly (oldest) 2"' }),
      pruned: Type.Array(PrunePoint),
      freedBytes: Int,
      freedBytesEstimated: Type.Boolean({ description: 'true: the sum of the pruned points’ deduplicated sizes; borg frees only chunks no kept archive uses' }),
    }),
    Type.Null(),
  ]),
});

export async function consoleRoutes(app: FastifyInstance, service: ConsoleService, deps: { db: Db; clock: Clock }): Promise<void> {
  app.addSchema(VmRow);
  app.get(
    '/me',
    { schema: { tags: ['auth'], summary: 'Who is signed in: name, roles (admin or viewer only), token expiry', response: { 200: Me, ...errorResponses() } } },
    async (req) => {
      const p = req.principal!;
      return {
        subject: p.subject,
        name: p.clientId ?? p.label,
        roles: p.roles,
        isAdmin: p.roles.includes('admin'),
        kind: p.clientId ? ('client' as const) : ('user' as const),
        tokenExpiresAt: p.expiresAt === undefined ? null : new Date(p.expiresAt).toISOString(),
      };
    },
  );

  app.get(
    '/dashboard',
    {
      schema: {
        tags: ['console'],
        summary: 'The dashboard in one request: protection, task matrix (7 days), issues, running tasks, storages, next runs, getting started',
        response: { 200: Dashboard, ...errorResponses() },
      },
    },
    async () => service.dashboard(),
  );

  app.get<{ Querystring: Static<typeof RowsQuery> }>(
    '/virtual-machines/rows',
    {
      schema: {
        tags: ['virtual machines', 'console'],
        summary: "The console's VM table: last backup, next run, protection, restore points; filtered, sorted and paged by the server",
        querystring: RowsQuery,
        response: { 200: Type.Object({ items: Type.Array(Type.Ref('VmRow')), total: Int, limit: Int, offset: Int }), ...errorResponses() },
      },
    },
    async (req) => {
      const q = req.query;
      const desc = q.sort.startsWith('-');
      return service.vmTable(
        {
          protection: q.protection?.split(',') as Protection[] | undefined,
          failed: q.failed,
          hostId: q.hostId,
          poolId: q.poolId,
          policyId: q.policyId,
          tag: q.tag,
          search: q.search,
          includeSystem: q.includeSystem,
          present: q.present,
        },
        { by: (desc ? q.sort.slice(1) : q.sort) as VmSort, desc },
        { limit: q.limit, offset: q.offset },
      );
    },
  );

  app.get<{ Params: { id: string }; Querystring: Static<typeof UsageQuery> }>(
    '/storages/:id/usage',
    {
      schema: {
        tags: ['storages'],
        summary: 'Usage history of a storage (samples recorded by the server), deduplication ratio, estimated full date, VMs using most space',
        params: Type.Object({ id: Uuid }, { additionalProperties: false }),
        querystring: UsageQuery,
        response: { 200: Usage, ...errorResponses(404) },
      },
    },
    async (req) => {
      const exists = await deps.db.selectFrom('storages').select('id').where('id', '=', req.params.id).executeTakeFirst();
      if (!exists) throw notFound('STORAGE.NOT_FOUND', `no storage with id ${req.params.id}`, { id: req.params.id });
      return service.storageUsage(req.params.id, req.query.days);
    },
  );

  app.post<{ Body: Static<typeof PreviewBody> }>(
    '/policies/preview',
    {
      schema: {
        tags: ['policies'],
        summary: "Preview a policy without saving it: next runs of its schedule and a prune dry run on one VM's restore points",
        description: 'Changes nothing. Errors: 400 POLICY.SCHEDULE_INVALID, POLICY.SCHEDULE_NEVER_RUNS, POLICY.TIMEZONE_INVALID, POLICY.RETENTION_INVALID (with `field`), 404 VM.NOT_FOUND.',
        body: PreviewBody,
        response: { 200: Preview, ...errorResponses(404) },
      },
    },
    async (req) => previewPolicy(deps.db, req.body, deps.clock.now()),
  );
}

/** Public: what the web app needs to start its sign-in (no token yet). */
export async function consoleConfigRoute(
  app: FastifyInstance,
  cfg: { issuer: string; clientId: string; redirectUri: string; resource: string; embeddedIdp: boolean; version: string },
): Promise<void> {
  app.get(
    '/api/console/config',
    {
      schema: {
        security: [],
        tags: ['console'],
        summary: "The web console's sign-in settings (no token needed): issuer, client id, redirect URI, scope, resource",
        response: {
          200: Type.Object({
            issuer: Type.String(),
            clientId: Type.String(),
            redirectUri: Type.String(),
            scope: Type.String(),
            resource: Type.String(),
            embeddedIdp: Type.Boolean(),
            version: Type.String(),
          }),
        },
      },
    },
    async (_req, reply) => {
      reply.header('cache-control', 'no-cache');
      return { ...cfg, scope: 'openid profile offline_access api' };
    },
  );
}
