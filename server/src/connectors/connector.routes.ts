import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, PageQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import type { ConnectorService } from './connector.service.js';

const Key = (what: string) => Type.String({ minLength: 8, maxLength: 512, pattern: '^\\S+$', description: `write-only ${what}: never returned` });
const ConnectorCreate = Type.Object(
  {
    name: Name,
    kind: Type.Optional(Type.Literal('cloudstack')),
    endpointUrl: Type.String({ minLength: 8, maxLength: 1024, description: 'Apache CloudStack API endpoint, e.g. https://cloud.example/client/api' }),
    apiKey: Key('CloudStack API key'),
    secretKey: Key('CloudStack secret key'),
  },
  { additionalProperties: false },
);
const Connector = Type.Object(
  { id: Uuid, name: Type.String(), kind: Type.Literal('cloudstack'), endpointUrl: Type.String(), apiKeySet: Type.Boolean(), secretKeySet: Type.Boolean(), ...Timestamps },
  { $id: 'Connector' },
);

const tags = ['connectors'];

export async function connectorRoutes(app: FastifyInstance, service: ConnectorService): Promise<void> {
  app.addSchema(Connector);
  const Ref = Type.Ref('Connector');
  app.get<{ Querystring: Static<typeof PageQuery> }>(
    '/connectors',
    { schema: { tags, summary: 'List Apache CloudStack connectors', querystring: PageQuery, response: { 200: Page(Ref), ...errorResponses() } } },
    async (req) => service.list(req.query),
  );
  app.post<{ Body: Static<typeof ConnectorCreate> }>(
    '/connectors',
    { schema: { tags, summary: 'Create a connector (keys are encrypted at rest, never returned)', body: ConnectorCreate, response: { 201: Ref, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/connectors/:id',
    { schema: { tags, summary: 'One connector', params: IdParams, response: { 200: Ref, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof ConnectorCreate> }>(
    '/connectors/:id',
    { schema: { tags, summary: 'Change a connector', params: IdParams, body: PatchOf(ConnectorCreate), response: { 200: Ref, ...errorResponses(404, 409) } } },
    async (req) => service.update(req.params.id, req.body),
  );
  app.delete<{ Params: IdParams }>(
    '/connectors/:id',
    { schema: { tags, summary: 'Delete a connector no pool uses', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
