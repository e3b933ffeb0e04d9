import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, listQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import type { StorageService } from './storage.service.js';


const StoragePath = Type.String({ minLength: 1, maxLength: 1024, description: 'absolute directory on the Backroll server (a mounted backup storage)' });

const StorageCreate = Type.Object({ name: Name, path: StoragePath }, { additionalProperties: false });
const StoragePatch = PatchOf(StorageCreate);
const Bytes = Type.Union([Type.Integer(), Type.Null()]);
const Storage = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    path: Type.String(),
    capacityBytes: Bytes,
    usedBytes: Bytes,
    freeBytes: Bytes,
    capacityAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when the figures were read (cached up to 60 s); null: never' }),
    capacityError: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()], {
      description: 'why the figures are missing or stale: STORAGE.CAPACITY_TIMEOUT (statfs did not answer within 5 s, e.g. a hung NFS mount), STORAGE.CAPACITY_UNREADABLE',
    }),
    ...Timestamps,
  },
  { $id: 'Storage' },
);
const ListQuery = listQuery({ name: Type.Optional(Type.String()) });

const tags = ['storages'];

export async function storageRoutes(app: FastifyInstance, service: StorageService): Promise<void> {
  app.addSchema(Storage);
  const StorageRef = Type.Ref('Storage');

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/storages',
    { schema: { tags, summary: 'List backup storages with their capacity (cached up to 60 s, never waiting more than 5 s for a hung mount)', querystring: ListQuery, response: { 200: Page(StorageRef), ...errorResponses() } } },
    async (req) => service.list(req.query, { name: req.query.name }),
  );
  app.post<{ Body: Static<typeof StorageCreate> }>(
    '/storages',
    { schema: { tags, summary: 'Register a backup storage (an existing writable directory)', body: StorageCreate, response: { 201: StorageRef, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/storages/:id',
    { schema: { tags, summary: 'One storage', params: IdParams, response: { 200: StorageRef, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof StoragePatch> }>(
    '/storages/:id',
    { schema: { tags, summary: 'Change a storage', params: IdParams, body: StoragePatch, response: { 200: StorageRef, ...errorResponses(404, 409) } } },
    async (req) => service.update(req.params.id, req.body),
  );
  app.delete<{ Params: IdParams }>(
    '/storages/:id',
    { schema: { tags, summary: 'Delete a storage no policy uses (the backups on it stay on disk)', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
