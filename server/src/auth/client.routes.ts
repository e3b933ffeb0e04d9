import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { SecretBox } from '../crypto/secret-box.js';
import { conflict, notFound } from '../errors.js';
import { NoContent, errorResponses } from '../http/schemas.js';
import { createMachineClient, deleteMachineClient, listMachineClients } from '../idp/index.js';

const Role = Type.Union([Type.Literal('admin'), Type.Literal('viewer')]);
const ClientCreate = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }), role: Type.Optional(Role) },
  { additionalProperties: false },
);
const Client = Type.Object({ clientId: Type.String(), name: Type.String(), role: Role, createdAt: Type.String({ format: 'date-time' }) });
const CreatedClient = Type.Object({
  clientId: Type.String(),
  clientSecret: Type.String({ description: 'shown once, never again' }),
  name: Type.String(),
  role: Role,
  tokenUrl: Type.String(),
});
const ClientParams = Type.Object({ clientId: Type.String({ minLength: 1, maxLength: 128 }) });

const tags = ['auth'];

/**
 * Machine clients of the bundled provider (client-credentials flow), for scripts and
 * Apache CloudStack. Admins only, reads included: the list tells who can act.
 */
export async function clientRoutes(app: FastifyInstance, opts: { dataDir: string; secretBox: SecretBox; issuer: string; embedded: boolean }): Promise<void> {
  const requireEmbedded = () => {
    if (!opts.embedded) {
      throw conflict('AUTH.EXTERNAL_ISSUER', `clients are managed by the external OpenID issuer ${opts.issuer}, not by Backroll`);
    }
  };
  app.get(
    '/auth/clients',
    { config: { adminOnly: true }, schema: { tags, summary: 'List machine clients (admins only; no secrets)', response: { 200: Type.Array(Client), ...errorResponses(409) } } },
    async () => {
      requireEmbedded();
      return listMachineClients(opts.dataDir);
    },
  );
  app.post<{ Body: Static<typeof ClientCreate> }>(
    '/auth/clients',
    { schema: { tags, summary: 'Create a machine client; its secret is in this response only', body: ClientCreate, response: { 201: CreatedClient, ...errorResponses(409) } } },
    async (req, reply) => {
      requireEmbedded();
      const created = createMachineClient(opts.dataDir, opts.secretBox, req.body.name, req.body.role ?? 'admin');
      reply.header('cache-control', 'no-store');
      return reply.code(201).send({ ...created, tokenUrl: `${opts.issuer}/token` });
    },
  );
  app.delete<{ Params: Static<typeof ClientParams> }>(
    '/auth/clients/:clientId',
    { schema: { tags, summary: 'Delete a machine client (its tokens are refused within 5 s)', params: ClientParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      requireEmbedded();
      if (!deleteMachineClient(opts.dataDir, req.params.clientId)) {
        throw notFound('AUTH.CLIENT_NOT_FOUND', `no machine client ${req.params.clientId}`);
      }
      return reply.code(204).send();
    },
  );
  app.get(
    '/auth/me',
    { schema: { tags, summary: 'Who the token belongs to and its roles', response: { 200: Type.Object({ subject: Type.String(), label: Type.String(), roles: Type.Array(Role) }) } } },
    async (req) => ({ subject: req.principal!.subject, label: req.principal!.label, roles: req.principal!.roles }),
  );
}
