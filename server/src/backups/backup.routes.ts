import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Uuid, errorResponses } from '../http/schemas.js';
import { actorOf } from '../tasks/task.routes.js';
import type { BackupService } from './backup.service.js';
import { restorePointView } from './restore-point.view.js';

const VmParams = Type.Object({ id: Uuid }, { additionalProperties: false });
const RpParams = Type.Object({ id: Uuid, rpId: Uuid }, { additionalProperties: false });
const BackupBody = Type.Union([Type.Object({ policyId: Type.Optional(Uuid) }, { additionalProperties: false }), Type.Null()]);
const PoolBackupBody = Type.Union([Type.Object({}, { additionalProperties: false, description: "the pool's own policy applies" }), Type.Null()]);
const ListQuery = Type.Object({}, { additionalProperties: false });
const VerifyQuery = Type.Object({ verifyData: Type.Boolean({ default: false, description: 'also read and verify every chunk (borg check --verify-data; slow)' }) }, { additionalProperties: false });
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);

const RestorePoint = Type.Object(
  {
    id: Uuid,
    vmId: Uuid,
    storageId: Uuid,
    repository: Type.String({ description: 'borg repository path: <storage>/<vm name>' }),
    epoch: Type.Integer({ description: 'seconds since 1970: the archive name suffix shared by all its archives' }),
    archives: Type.Array(Type.String()),
    disks: Type.Array(
      Type.Object({
        target: Type.String(),
        path: Type.String(),
        format: Type.Union([Type.String(), Type.Null()]),
        archive: Type.String(),
        virtualSize: NullableInt,
        backingChain: Type.Array(Type.String()),
        originalSize: NullableInt,
        compressedSize: NullableInt,
        deduplicatedSize: NullableInt,
      }),
    ),
    originalSize: NullableInt,
    compressedSize: NullableInt,
    deduplicatedSize: NullableInt,
    durationMs: NullableInt,
    taskId: Type.Union([Type.String(), Type.Null()]),
    startedBy: Type.Union([Type.String(), Type.Null()]),
    source: Type.Union([Type.Literal('backroll'), Type.Literal('borg')], { description: 'borg: found in the repository (e.g. made by BackROLL)' }),
    createdAt: Type.String({ format: 'date-time' }),
    read: Type.Object(
      {
        mode: Type.Union([Type.Literal('full'), Type.Literal('incremental'), Type.Null()], {
          description: 'incremental: only the blocks the guest changed since the base restore point were read (changed-block tracking); full: every allocated block; null: made before incremental backups, or found in the repository',
        }),
        bytesToRead: Type.Union([Type.Integer(), Type.Null()], { description: 'bytes the backup had to read (dirty blocks, or allocated blocks for a full read)' }),
        bytesRead: Type.Union([Type.Integer(), Type.Null()], { description: 'bytes it read' }),
        fullReason: Type.Union([Type.String(), Type.Null()], { description: 'why a full read was made (first backup, checkpoint lost, periodic full, raw disk, …); null when incremental' }),
        diskSize: Type.Union([Type.Integer(), Type.Null()], { description: "sum of the disks' virtual sizes (null when one is unknown)" }),
      },
      { description: 'how the disks were read (e.g. "incremental: 12 MiB of 1 GiB read"); the libvirt checkpoint itself is never exposed' },
    ),
  },
  { $id: 'RestorePoint' },
);
const TaskRef = Type.Ref('Task');
const tags = ['backups'];

export async function backupRoutes(app: FastifyInstance, service: BackupService): Promise<void> {
  app.addSchema(RestorePoint);
  const Ref = Type.Ref('RestorePoint');
  app.post<{ Params: Static<typeof VmParams>; Body: Static<typeof BackupBody> }>(
    '/virtual-machines/:id/backups',
    { schema: { tags, summary: 'Back up a VM now (a vm.backup task)', params: VmParams, body: Type.Optional(BackupBody), response: { 202: TaskRef, ...errorResponses(404, 409) } } },
    async (req, reply) => reply.code(202).send(await service.startBackup(req.params.id, actorOf(req.principal), req.body?.policyId)),
  );
  app.post<{ Params: Static<typeof VmParams> }>(
    '/pools/:id/backup',
    {
      schema: {
        tags,
        summary: "Back up every eligible VM of a pool now (the parent pool.backup task; one vm.backup child per VM)",
        params: VmParams,
        body: Type.Optional(PoolBackupBody),
        response: { 202: TaskRef, ...errorResponses(404) },
      },
    },
    async (req, reply) => reply.code(202).send(await service.startPoolBackup(req.params.id, actorOf(req.principal))),
  );
  app.get<{ Params: Static<typeof VmParams> }>(
    '/virtual-machines/:id/restore-points',
    {
      schema: {
        tags,
        summary: "A VM's restore points, newest first (the index; POST …/restore-points/reconcile re-reads the repository)",
        params: VmParams,
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Ref) }), ...errorResponses(404) },
      },
    },
    async (req) => ({ items: (await service.listRestorePoints(req.params.id)).map(restorePointView) }),
  );
  app.post<{ Params: Static<typeof VmParams> }>(
    '/virtual-machines/:id/restore-points/reconcile',
    {
      schema: {
        tags,
        summary: 'Reconcile the index with `borg list` of the repository (admins; under the VM lock, 409 VM.LOCKED while a backup, restore or delete runs)',
        params: VmParams,
        response: {
          200: Type.Object({ added: Type.Integer(), removed: Type.Integer(), updated: Type.Integer(), items: Type.Array(Ref) }),
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) => {
      const r = await service.reconcileLocked(req.params.id, actorOf(req.principal));
      return { ...r, items: r.items.map(restorePointView) };
    },
  );
  app.get<{ Params: Static<typeof RpParams> }>(
    '/virtual-machines/:id/restore-points/:rpId',
    { schema: { tags, summary: 'One restore point: sizes, disks, duration, who started it, how it was read (full or incremental)', params: RpParams, response: { 200: Ref, ...errorResponses(404) } } },
    async (req) => restorePointView(await service.getRestorePoint(req.params.id, req.params.rpId)),
  );
  app.delete<{ Params: Static<typeof RpParams> }>(
    '/virtual-machines/:id/restore-points/:rpId',
    { schema: { tags, summary: 'Delete a restore point (a task: delete its archives, then compact)', params: RpParams, response: { 202: TaskRef, ...errorResponses(404) } } },
    async (req, reply) => reply.code(202).send(await service.deleteRestorePoint(req.params.id, req.params.rpId, actorOf(req.principal))),
  );
  app.get<{ Params: Static<typeof VmParams> }>(
    '/virtual-machines/:id/repository',
    { schema: { tags, summary: "The VM's borg repository (borg info)", params: VmParams, response: { 200: Type.Object({}, { additionalProperties: true }), ...errorResponses(404, 409) } } },
    async (req) => service.repositoryInfo(req.params.id),
  );
  app.post<{ Params: Static<typeof VmParams> }>(
    '/virtual-machines/:id/repository/break-lock',
    {
      config: { adminOnly: true },
      schema: { tags, summary: 'Remove a stale borg lock (only when no borg process runs on the repository)', params: VmParams, response: { 200: Type.Object({ repository: Type.String() }), ...errorResponses(404) } },
    },
    async (req) => service.breakLock(req.params.id),
  );
  app.post<{ Params: Static<typeof VmParams>; Querystring: Static<typeof VerifyQuery> }>(
    '/virtual-machines/:id/repository/verify',
    { schema: { tags, summary: 'Check the repository (a task: borg check)', params: VmParams, querystring: VerifyQuery, response: { 202: TaskRef, ...errorResponses(404) } } },
    async (req, reply) => reply.code(202).send(await service.verify(req.params.id, req.query.verifyData, actorOf(req.principal))),
  );
}
