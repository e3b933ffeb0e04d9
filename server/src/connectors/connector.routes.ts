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
    verifyTls: Type.Optional(Type.Boolean({ default: true, description: "verify the endpoint's TLS certificate and host name (keep on; switch off only for a lab)" })),
    caCertificate: Type.Optional(
      Type.Union([Type.String({ maxLength: 65536 }), Type.Null()], {
        description: 'CA certificate(s) in PEM trusted for this endpoint besides the bundled public CAs, e.g. your internal CA; null removes it',
      }),
    ),
  },
  { additionalProperties: false },
);
const Connector = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    kind: Type.Literal('cloudstack'),
    endpointUrl: Type.String(),
    apiKeySet: Type.Boolean(),
    secretKeySet: Type.Boolean(),
    verifyTls: Type.Boolean(),
    caCertificate: Type.Union([Type.String(), Type.Null()]),
    ...Timestamps,
  },
  { $id: 'Connector' },
);
const ConnectorTest = Type.Object(
  {
    reachable: Type.Literal(true),
    endpointUrl: Type.String({ description: 'the endpoint that answered (scheme, host, path)' }),
    cloudstackVersion: Type.String({ description: "CloudStack's version (capability cloudstackversion)" }),
    zones: Type.Integer({ description: 'zones the account sees' }),
    roundTripMs: Type.Integer({ description: 'round trip of one signed request (listCapabilities)' }),
    testedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'ConnectorTest' },
);

const tags = ['connectors'];

export async function connectorRoutes(app: FastifyInstance, service: ConnectorService): Promise<void> {
  app.addSchema(Connector);
  app.addSchema(ConnectorTest);
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
  app.post<{ Params: IdParams }>(
    '/connectors/:id/test',
    {
      schema: {
        tags,
        summary: 'Test a connector: calls listZones and listCapabilities on CloudStack',
        description:
          'Reports reachability, the CloudStack version, the zone count and the round-trip time. Failures are problems with code CONNECTOR.UNREACHABLE (what was tried), CONNECTOR.AUTH_FAILED (what to check) or CONNECTOR.API_ERROR (CloudStack\'s errortext).',
        params: IdParams,
        response: { 200: Type.Ref('ConnectorTest'), ...errorResponses(404, 409, 503) },
      },
    },
    async (req) => service.test(req.params.id),
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
