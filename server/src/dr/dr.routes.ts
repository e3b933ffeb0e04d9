import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses } from '../http/schemas.js';
import { MIN_PASSPHRASE_LENGTH } from './dr-archive.js';
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

/** `POST /api/v2/system/dr-export` (admins: it is a write): the encrypted disaster-recovery file. */
export async function drRoutes(app: FastifyInstance, service: DrService): Promise<void> {
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
}
