import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, listQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import type { PolicyService } from './policy.service.js';

const RetentionCount = Type.Integer({ minimum: 0, maximum: 10000 });
const Retention = Type.Object(
  { daily: RetentionCount, weekly: RetentionCount, monthly: RetentionCount, yearly: RetentionCount },
  { additionalProperties: false, description: 'restore points kept per period (borg prune --keep-*); at least one above 0' },
);
const Schedule = Type.String({ minLength: 9, maxLength: 255, description: '5-field cron expression: minute hour day-of-month month day-of-week', examples: ['0 2 * * *'] });
const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone of the schedule', default: 'UTC' });
const Quiesce = Type.Union([Type.Literal('off'), Type.Literal('preferred'), Type.Literal('required')], {
  description: 'freeze guest file systems through the guest agent: off, preferred (fallback with a warning), required (fail without agent)',
});
const Compression = Type.String({ pattern: '^(lz4|none|zstd(,[0-9]{1,2})?)$', description: 'lz4, zstd, zstd,N (1–22) or none', default: 'lz4' });
const Encryption = Type.Union([Type.Literal('none'), Type.Literal('repokey')], { description: 'borg repository encryption' });

/** One occurrence of a policy's schedule (also listed by GET /policies/{id}/runs). */
const PolicyRunFields = {
  id: Uuid,
  scheduledFor: Type.String({ format: 'date-time' }),
  recordedAt: Type.String({ format: 'date-time' }),
  trigger: Type.Union([Type.Literal('schedule'), Type.Literal('catch_up'), Type.Literal('missed')], {
    description: 'schedule: fired on time; catch_up: a missed occurrence run once after downtime; missed: not run (Backroll was down)',
  }),
  outcome: Type.Union(
    ['missed', 'no_pools', 'running', 'succeeded', 'failed', 'partial', 'canceled', 'interrupted'].map((o) => Type.Literal(o)),
    { description: 'missed, no_pools, or the combined state of its pool.backup tasks' },
  ),
  tasks: Type.Array(Type.Object({ id: Uuid, state: Type.String() }), { description: 'the pool.backup tasks it started' }),
};
export const PolicyRun = Type.Object(PolicyRunFields, { $id: 'PolicyRun' });

const PolicyFields = {
  name: Name,
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  schedule: Schedule,
  timezone: Type.Optional(TimeZone),
  retention: Retention,
  storageId: Uuid,
  hookId: Type.Optional(Type.Union([Uuid, Type.Null()])),
  enabled: Type.Optional(Type.Boolean({ default: true })),
  quiesce: Type.Optional(Quiesce),
  compression: Type.Optional(Compression),
  encryption: Type.Optional(Encryption),
  changedBlockTracking: Type.Optional(Type.Boolean({ default: true, description: 'incremental backups of running qcow2 v3 VMs: read only the blocks changed since the last restore point (every restore point stays a complete image)' })),
  fullEveryDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650, default: 30, description: 'a full read at least every N days (0: always)' })),
};
const PolicyCreate = Type.Object(PolicyFields, { additionalProperties: false });
const PolicyPatch = PatchOf(
  Type.Object({ ...PolicyFields, retention: Type.Partial(Retention, { additionalProperties: false }) }, { additionalProperties: false }),
);
const Policy = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    description: Type.String(),
    schedule: Type.String(),
    timezone: Type.String(),
    retention: Retention,
    storageId: Uuid,
    hookId: Type.Union([Uuid, Type.Null()]),
    enabled: Type.Boolean(),
    quiesce: Quiesce,
    compression: Type.String(),
    encryption: Encryption,
    changedBlockTracking: Type.Boolean(),
    fullEveryDays: Type.Integer(),
    nextRuns: Type.Array(Type.String({ format: 'date-time' }), { description: 'next five runs (UTC)' }),
    lastRun: Type.Union([Type.Object(PolicyRunFields), Type.Null()], { description: 'the latest occurrence of the schedule (fired or missed) and its outcome' }),
    ...Timestamps,
  },
  { $id: 'Policy' },
);
const ListQuery = listQuery({ name: Type.Optional(Type.String()), storageId: Type.Optional(Uuid), enabled: Type.Optional(Type.Boolean()) });
const PreviewQuery = Type.Object({ schedule: Schedule, timezone: Type.Optional(TimeZone) }, { additionalProperties: false });

const tags = ['policies'];

export async function policyRoutes(app: FastifyInstance, service: PolicyService): Promise<void> {
  app.addSchema(Policy);
  const PolicyRef = Type.Ref('Policy');

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/policies',
    { schema: { tags, summary: 'List backup policies', querystring: ListQuery, response: { 200: Page(PolicyRef), ...errorResponses() } } },
    async (req) => service.list(req.query, { name: req.query.name, storageId: req.query.storageId, enabled: req.query.enabled }),
  );
  app.get<{ Querystring: Static<typeof PreviewQuery> }>(
    '/policies/schedule-preview',
    {
      schema: {
        tags,
        summary: 'Validate a cron schedule and give its next five runs',
        querystring: PreviewQuery,
        response: { 200: Type.Object({ nextRuns: Type.Array(Type.String({ format: 'date-time' })) }), ...errorResponses() },
      },
    },
    async (req) => ({ nextRuns: service.preview(req.query.schedule, req.query.timezone ?? 'UTC') }),
  );
  app.post<{ Body: Static<typeof PolicyCreate> }>(
    '/policies',
    { schema: { tags, summary: 'Create a backup policy', body: PolicyCreate, response: { 201: PolicyRef, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/policies/:id',
    { schema: { tags, summary: 'One policy with its next runs', params: IdParams, response: { 200: PolicyRef, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof PolicyPatch> }>(
    '/policies/:id',
    { schema: { tags, summary: 'Change a policy', params: IdParams, body: PolicyPatch, response: { 200: PolicyRef, ...errorResponses(404, 409) } } },
    async (req) => {
      const { retention, ...rest } = req.body;
      return service.update(req.params.id, { ...rest, retention: retention as never });
    },
  );
  app.delete<{ Params: IdParams }>(
    '/policies/:id',
    { schema: { tags, summary: 'Delete a policy no pool uses', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
