import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { conflict } from '../errors.js';
import { errorResponses } from '../http/schemas.js';
import { MIN_PASSPHRASE_LENGTH } from './dr-archive.js';
import type { DrSelfBackup } from './dr-self-backup.js';
import type { DrService } from './dr.service.js';

const ExportBody = Type.Object(
  {
    passphrase: Type.String({
      minLength: MIN_PASSPHRASE_LENGTH,
      maxLength: 1024,
      description: `encrypts the file (scrypt + AES-256-GCM); at least ${MIN_PASSPHRASE_LENGTH} characters. Keep it apart from the file, outside this server`,
    }),
  },
  { additionalProperties: false },
);

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const StorageSelfBackup = Type.Object({
  storageId: Type.String(),
  storageName: Type.String(),
  last: Nullable(Type.Object({ file: Type.String(), createdAt: Type.String({ format: 'date-time' }), bytes: Type.Integer() })),
  count: Type.Integer(),
  error: Nullable(Type.String({ description: 'why the last attempt failed on this storage' })),
});
const SelfBackupStatus = Type.Object({
  enabled: Type.Boolean(),
  reason: Nullable(Type.String({ description: 'why self-backups are off' })),
  intervalHours: Type.Integer(),
  keep: Type.Integer(),
  storages: Type.Array(StorageSelfBackup),
});

/** `POST /api/v2/system/dr-export` (admins: it is a write): the encrypted disaster-recovery file. */
export async function drRoutes(app: FastifyInstance, service: DrService, selfBackup: DrSelfBackup): Promise<void> {
  app.post<{ Body: Static<typeof ExportBody> }>(
    '/system/dr-export',
    {
      schema: {
        tags: ['system'],
        summary: "Export Backroll's database resources and keys as one encrypted file (restore it with `backroll dr import`)",
        body: ExportBody,
        response: { 200: Type.Any({ description: 'application/octet-stream: the DR file' }), ...errorResponses(400) },
      },
    },
    async (req, reply) => {
      const { file, summary } = await service.export(req.body.passphrase);
      const stamp = summary.createdAt.replace(/[:.]/g, '-');
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename="backroll-dr-${stamp}.bdr"`)
        .header('cache-control', 'no-store')
        .send(file);
    },
  );
  app.get(
    '/system/dr-self-backup',
    { schema: { tags: ['system'], summary: 'The daily self-backup into every storage: on or off, the newest file of each storage', response: { 200: SelfBackupStatus } } },
    async () => selfBackup.status(),
  );
  app.post(
    '/system/dr-self-backup',
    {
      schema: {
        tags: ['system'],
        summary: 'Write a self-backup into every storage now (BACKROLL_DR_PASSPHRASE_FILE must be set)',
        response: { 200: Type.Array(StorageSelfBackup), ...errorResponses(409) },
      },
    },
    async () => {
      if (!selfBackup.enabled) {
        throw conflict('DR.SELF_BACKUP_OFF', 'self-backups are off: set BACKROLL_DR_PASSPHRASE_FILE (a file holding a passphrase of at least 12 characters) and restart Backroll');
      }
      return selfBackup.runNow();
    },
  );
}
