import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Name, NoContent, Page, listQuery, PatchOf, Timestamps, Uuid, errorResponses } from '../http/schemas.js';
import type { HostService } from './host.service.js';

const DiskAccessSchema = Type.Union([Type.Literal('auto'), Type.Literal('mount'), Type.Literal('ssh')], {
  default: 'auto',
  description:
    'how backups read the VM disks: mount = the VM storage is mounted on the worker at the same path as on the host; ssh = through the host (NBD over the pinned SSH connection; no mount needed); auto = mount where this worker can read every disk, else ssh',
});
const HostCreate = Type.Object(
  {
    name: Name,
    address: Type.String({ minLength: 1, maxLength: 255, description: 'host name or IP address reachable over SSH' }),
    sshPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 22 })),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 32, default: 'root', description: 'SSH user' })),
    poolId: Uuid,
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 50 })),
    libvirtUri: Type.Optional(Type.String({ maxLength: 255, default: 'qemu:///system', description: 'qemu:///system or qemu:///session' })),
    diskAccess: Type.Optional(DiskAccessSchema),
  },
  { additionalProperties: false },
);
const NullableString = Type.Union([Type.String(), Type.Null()]);
const Host = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    address: Type.String(),
    sshPort: Type.Integer(),
    username: Type.String(),
    poolId: Uuid,
    tags: Type.Array(Type.String()),
    libvirtUri: Type.String(),
    diskAccess: DiskAccessSchema,
    hostKeyFingerprint: Type.Union([Type.String(), Type.Null()], { description: 'pinned SSH host key (SHA256), null until the first connection' }),
    connection: Type.Object({
      state: Type.Union([Type.Literal('unknown'), Type.Literal('connected'), Type.Literal('failed')]),
      errorCode: NullableString,
      message: NullableString,
      lastSeenAt: NullableString,
    }),
    ...Timestamps,
  },
  { $id: 'Host' },
);
const ListQuery = listQuery({ name: Type.Optional(Type.String()), poolId: Type.Optional(Uuid), tag: Type.Optional(Type.String({ maxLength: 64 })) });

const tags = ['hosts'];

export async function hostRoutes(app: FastifyInstance, service: HostService): Promise<void> {
  app.addSchema(Host);
  const Ref = Type.Ref('Host');
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/hosts',
    { schema: { tags, summary: 'List KVM hosts', querystring: ListQuery, response: { 200: Page(Ref), ...errorResponses() } } },
    async (req) => service.list(req.query, { name: req.query.name, poolId: req.query.poolId, tag: req.query.tag }),
  );
  app.post<{ Body: Static<typeof HostCreate> }>(
    '/hosts',
    { schema: { tags, summary: 'Register a KVM host in a pool', body: HostCreate, response: { 201: Ref, ...errorResponses(409) } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body)),
  );
  app.get<{ Params: IdParams }>(
    '/hosts/:id',
    { schema: { tags, summary: 'One host with its connection state', params: IdParams, response: { 200: Ref, ...errorResponses(404) } } },
    async (req) => service.get(req.params.id),
  );
  app.patch<{ Params: IdParams; Body: Static<typeof HostCreate> }>(
    '/hosts/:id',
    {
      schema: {
        tags,
        summary: 'Change a host (a new address or port forgets the pinned host key)',
        params: IdParams,
        body: PatchOf(HostCreate),
        response: { 200: Ref, ...errorResponses(404, 409) },
      },
    },
    async (req) => service.update(req.params.id, req.body),
  );
  app.delete<{ Params: IdParams }>(
    '/hosts/:id',
    { schema: { tags, summary: 'Delete a host and its inventory (refused while its VMs have restore points)', params: IdParams, response: { ...NoContent, ...errorResponses(404, 409) } } },
    async (req, reply) => {
      await service.delete(req.params.id);
      return reply.code(204).send();
    },
  );
}
