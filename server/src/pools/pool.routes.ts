import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, listQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import type { PoolService } from './pool.service.js';

const PoolCreate = Type.Object(
  { name: Name, policyId: Uuid, connectorId: Type.Optional(Type.Union([Uuid, Type.Null()], { description: 'Apache CloudStack connector, if CloudStack manages these hosts' })) },
  { additionalProperties: false },
);
const Pool = Type.Object(
  { id: Uuid, name: Type.String(), policyId: Uuid, connectorId: Type.Union([Uuid, Type.Null()]), hostCount: Type.Integer(), ...Timestamps },
  { $id: 'Pool' },
);
const ListQuery = listQuery({ name: Type.Optional(Type.String()), policyId: Type.Optional(Uuid) });

const tags = ['pools'];

export async function poolRoutes(app: FastifyInstance, service: PoolService): Promise<void> {
  app.addSchema(Pool);
  const Ref = Type.Ref('Pool');
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/pools',
    { schema: { tags, summary: 'List pools of hosts', querystring: ListQuery, response: { 200: Page(Ref), ...errorResponses() } } },
    async (req) => service.list(req.query, { name: req.query.name, policyId: req.query.policyId }),
  );
  app.post<{ Body: Static<typeof PoolCreate> }>(
    '/pools',
    { schema: { tags, summary: 'Create a pool with its backup policy', body: PoolCreate, response: { 201: Ref, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/pools/:id',
    { schema: { tags, summary: 'One pool', params: IdParams, response: { 200: Ref, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof PoolCreate> }>(
    '/pools/:id',
    { schema: { tags, summary: 'Change a pool', params: IdParams, body: PatchOf(PoolCreate), response: { 200: Ref, ...errorResponses(404, 409) } } },
    async (req) => service.update(req.params.id, req.body),
  );
  app.delete<{ Params: IdParams }>(
    '/pools/:id',
    { schema: { tags, summary: 'Delete a pool that has no hosts', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
