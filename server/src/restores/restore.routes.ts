import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, Uuid } from '../http/schemas.js';
import { actorOf } from '../tasks/task.routes.js';
import { contentDisposition } from './restore.model.js';
import type { RestorePreflight } from './restore-preflight.js';
import type { RestoreService } from './restore.service.js';

const RestoreBody = Type.Object(
  {
    restorePointId: Uuid,
    mode: Type.Union([Type.Literal('in-place'), Type.Literal('new-vm'), Type.Literal('directory')], {
      description: 'in-place: replace the VM\'s disks; new-vm: a copy with a new name and uuid; directory: the disks and domain XML into a directory of the worker',
    }),
    newName: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'new-vm: the copy\'s name' })),
    hostId: Type.Optional(Type.String({ format: 'uuid', description: 'new-vm: the host to define it on (default: the original\'s)' })),
    start: Type.Optional(Type.Boolean({ description: 'new-vm: start the copy once defined (default false)' })),
    directory: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: 'directory: an existing empty directory on the worker; new-vm: where the disks go (default: next to the originals)' }),
    ),
  },
  { additionalProperties: false },
);
const VmParams = Type.Object({ id: Uuid }, { additionalProperties: false });
const DownloadParams = Type.Object(
  { id: Uuid, rpId: Uuid, target: Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$', description: 'disk target, e.g. vda' }) },
  { additionalProperties: false },
);

const tags = ['restores'];

const Preflight = Type.Object({
  ok: Type.Boolean({ description: 'no failed check of severity error' }),
  sizeBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'bytes the restore writes (the original size of the restore point)' }),
  estimatedSeconds: Type.Union([Type.Integer(), Type.Null()]),
  estimateBasis: Type.Object({
    source: Type.Union([Type.Literal('restores'), Type.Literal('backups'), Type.Literal('none')], { description: 'the rate of the last successful restores, else of the last backups' }),
    samples: Type.Integer(),
    bytesPerSecond: Type.Union([Type.Integer(), Type.Null()]),
  }),
  target: Type.Object({
    kind: Type.Union([Type.Literal('host'), Type.Literal('directory')]),
    hostId: Type.Union([Type.String(), Type.Null()]),
    directory: Type.Union([Type.String(), Type.Null()], { description: 'where the images go (the first directory when several)' }),
    freeBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'null: unknown (unreadable or no answer within 5 s)' }),
  }),
  checks: Type.Array(
    Type.Object({
      code: Type.String({ description: 'RESTORE.TARGET_SPACE, RESTORE.NAME_TAKEN, VM.WILL_STOP, VM.LOCKED' }),
      ok: Type.Boolean(),
      severity: Type.Union([Type.Literal('error'), Type.Literal('warning')]),
      message: Type.String(),
    }),
  ),
});

export async function restoreRoutes(app: FastifyInstance, service: RestoreService, preflight?: RestorePreflight): Promise<void> {
  if (preflight) {
    app.post<{ Params: Static<typeof VmParams>; Body: Static<typeof RestoreBody> }>(
      '/virtual-machines/:id/restores/preflight',
      {
        schema: {
          tags,
          summary: 'Check a restore before starting it: free space, name collision, what happens to the VM, size and estimated duration',
          description: 'Same body and same validation problems as POST …/restores; starts nothing. `ok` false when a check of severity error failed.',
          params: VmParams,
          body: RestoreBody,
          response: { 200: Preflight, ...errorResponses(404, 409) },
        },
      },
      async (req) => preflight.check(req.params.id, req.body),
    );
  }
  app.post<{ Params: Static<typeof VmParams>; Body: Static<typeof RestoreBody> }>(
    '/virtual-machines/:id/restores',
    {
      schema: {
        tags,
        summary: 'Restore a VM from one of its restore points (a task)',
        params: VmParams,
        body: RestoreBody,
        response: { 202: Type.Ref('Task'), ...errorResponses(404, 409) },
      },
    },
    async (req, reply) => reply.code(202).send(await service.request(req.params.id, req.body, actorOf(req.principal))),
  );

  app.get<{ Params: Static<typeof DownloadParams> }>(
    '/virtual-machines/:id/restore-points/:rpId/disks/:target/download',
    {
      // A disk image is all the VM's data: admins only, although it is a read.
      config: { adminOnly: true },
      schema: {
        tags,
        summary: 'Download one disk image of a restore point (streamed from borg; admin only)',
        params: DownloadParams,
        response: { 200: Type.Any({ description: 'the disk image (application/octet-stream)' }), ...errorResponses(404, 409) },
      },
    },
    async (req, reply) => {
      const dl = await service.download(req.params.id, req.params.rpId, req.params.target);
      // Wait for borg's first bytes: a failure before them (lock taken meanwhile, wrong key)
      // still becomes a problem+json answer instead of a cut 200.
      try {
        await Promise.race([new Promise<void>((resolve) => dl.stream.once('readable', () => resolve())), dl.done]);
      } catch (err) {
        dl.stream.destroy();
        throw err;
      }
      let finished = false;
      dl.done.then(
        () => (finished = true),
        (err: unknown) => {
          finished = true;
          // Headers are gone: cutting the connection is the only way to tell the client.
          req.log.warn({ err }, 'disk download failed mid-stream');
          dl.stream.destroy(err as Error);
          reply.raw.destroy();
        },
      );
      // The client went away: stop borg instead of letting it run into a closed pipe.
      reply.raw.on('close', () => {
        if (!finished) dl.abort();
      });
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(dl.size))
        .header('content-disposition', contentDisposition(dl.fileName))
        .send(dl.stream);
    },
  );
}
