import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, PageQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import { HOOK_EVENTS, HOOK_KINDS } from './hook.repository.js';
import type { DeliveryRepository } from './delivery.repository.js';
import type { HookService } from './hook.service.js';

const Kind = Type.Union(HOOK_KINDS.map((k) => Type.Literal(k)), { description: 'slack (incoming webhook) or webhook (generic JSON POST, HMAC-signed)' });
const Event = Type.Union(HOOK_EVENTS.map((e) => Type.Literal(e)));
const HookCreate = Type.Object(
  {
    name: Name,
    kind: Kind,
    url: Type.String({ minLength: 8, maxLength: 2048, description: 'write-only: never returned' }),
    secret: Type.Optional(Type.Union([Type.String({ minLength: 16, maxLength: 512 }), Type.Null()], { description: 'write-only HMAC key (webhook only)' })),
    events: Type.Array(Event, { minItems: 1, maxItems: HOOK_EVENTS.length }),
  },
  { additionalProperties: false },
);
const Hook = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    kind: Kind,
    urlHint: Type.String({ description: 'scheme and host of the URL only' }),
    secretSet: Type.Boolean(),
    events: Type.Array(Event),
    ...Timestamps,
  },
  { $id: 'Hook' },
);

const TestBody = Type.Object({ event: Type.Optional(Event) }, { additionalProperties: false });
const TestResult = Type.Object({
  delivered: Type.Boolean(),
  event: Event,
  deliveryId: Uuid,
  attempts: Type.Integer(),
  status: Type.Optional(Type.Integer({ description: 'HTTP status of the last answer' })),
  error: Type.Optional(Type.String()),
  durationMs: Type.Integer(),
});

const tags = ['hooks'];

const DeliveriesQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }) }, { additionalProperties: false });
const Delivery = Type.Object({
  id: Uuid,
  event: Type.String(),
  test: Type.Boolean({ description: 'sent by POST /hooks/{id}/test' }),
  taskId: Type.Union([Uuid, Type.Null()], { description: 'the task whose end it notified' }),
  delivered: Type.Boolean(),
  status: Type.Union([Type.Integer(), Type.Null()], { description: 'HTTP status of the last answer; null when none came' }),
  error: Type.Union([Type.String(), Type.Null()]),
  attempts: Type.Integer(),
  durationMs: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
});

export async function hookRoutes(app: FastifyInstance, service: HookService, deliveries?: DeliveryRepository): Promise<void> {
  app.addSchema(Hook);
  const HookRef = Type.Ref('Hook');
  app.get<{ Querystring: Static<typeof PageQuery> }>(
    '/hooks',
    { schema: { tags, summary: 'List notification hooks', querystring: PageQuery, response: { 200: Page(HookRef), ...errorResponses() } } },
    async (req) => service.list(req.query),
  );
  app.post<{ Body: Static<typeof HookCreate> }>(
    '/hooks',
    { schema: { tags, summary: 'Create a notification hook', body: HookCreate, response: { 201: HookRef, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/hooks/:id',
    { schema: { tags, summary: 'One hook (secrets are never returned)', params: IdParams, response: { 200: HookRef, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof HookCreate> }>(
    '/hooks/:id',
    { schema: { tags, summary: 'Change a hook', params: IdParams, body: PatchOf(HookCreate), response: { 200: HookRef, ...errorResponses(404, 409) } } },
    async (req) => service.update(req.params.id, req.body),
  );
  app.post<{ Params: IdParams; Body: Static<typeof TestBody> | null | undefined }>(
    '/hooks/:id/test',
    {
      schema: {
        tags,
        summary: 'Send a test notification now (one attempt)',
        description: 'The body of a generic webhook carries `"test": true`. `delivered: false` with `error` when the endpoint failed or did not answer in time.',
        params: IdParams,
        body: Type.Union([TestBody, Type.Null()], { description: 'optional' }),
        response: { 200: TestResult, ...errorResponses(404) },
      },
    },
    async (req) => service.test(req.params.id, req.body?.event),
  );
  if (deliveries) {
    app.get<{ Params: IdParams; Querystring: Static<typeof DeliveriesQuery> }>(
      '/hooks/:id/deliveries',
      {
        schema: {
          tags,
          summary: 'Recent deliveries of a hook, newest first (the last 200 are kept)',
          params: IdParams,
          querystring: DeliveriesQuery,
          response: { 200: Type.Object({ items: Type.Array(Delivery) }), ...errorResponses(404) },
        },
      },
      async (req) => {
        await service.get(req.params.id);
        return { items: await deliveries.list(req.params.id, req.query.limit) };
      },
    );
  }
  app.delete<{ Params: IdParams }>(
    '/hooks/:id',
    { schema: { tags, summary: 'Delete a hook no policy uses', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      await deliveries?.deleteForHook(req.params.id);
      return reply.code(204).send();
    },
  );
}
