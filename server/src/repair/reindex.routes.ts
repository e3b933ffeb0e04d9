/**
 * `POST /api/v2/system/reindex` (admins: a write): starts a `system.reindex` task that rebuilds
 * the restore-point index from the repositories (ReindexService); the task reports progress per
 * repository, logs one line each and returns the report.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses } from '../http/schemas.js';
import type { TaskHandler } from '../tasks/task-context.js';
import type { HandlerOptions } from '../tasks/handler-registry.js';
import type { TaskService } from '../tasks/task.service.js';
import { actorOf } from '../tasks/task.routes.js';
import type { ReindexOptions, ReindexService } from './reindex.service.js';

export const REINDEX_KIND = 'system.reindex';

export type ReindexPayload = Pick<ReindexOptions, 'dryRun' | 'pruneMissing' | 'storage' | 'repository' | 'attachToHost'>;

const Body = Type.Union([
  Type.Object(
    {
      dryRun: Type.Optional(Type.Boolean({ description: 'report what would change, write nothing' })),
      pruneMissing: Type.Optional(Type.Boolean({ description: 'delete index rows whose archives are gone from their repository (reported either way)' })),
      storage: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'only this storage (id or name)' })),
      repository: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'only this repository directory (a VM name) of each storage' })),
      attachToHost: Type.Optional(
        Type.String({ minLength: 1, maxLength: 255, description: 'host (id or name) on which VMs the inventory does not have are recorded as absent VMs, so their restore points are listed' }),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);

export interface HandlerRegistrar {
  registerHandler<P = unknown, R = unknown>(kind: string, handler: TaskHandler<P, R>, options?: HandlerOptions): void;
}

export function registerReindexHandler(tasks: HandlerRegistrar, service: ReindexService): void {
  tasks.registerHandler<ReindexPayload>(REINDEX_KIND, async (p, ctx) => {
    ctx.progress({ percent: 0, step: 'listing the storages' });
    const report = await service.run({
      ...p,
      signal: ctx.signal,
      log: (level, message) => ctx.log(level, message),
      onProgress: ({ done, total, storage, repository }) => ctx.progress({ percent: Math.floor((done / Math.max(1, total)) * 100), step: `${storage}/${repository} (${done}/${total})` }),
    });
    const t = report.totals;
    await ctx.log(
      'info',
      `${report.dryRun ? 'dry run: ' : ''}${t.repositories} repositories, ${t.restorePoints} restore points: ${t.kept} kept, ${t.added} ${report.dryRun ? 'would be added' : 'added'}, ${t.missing} missing (${t.pruned} ${report.dryRun ? 'would be pruned' : 'pruned'}), ${t.incomplete} incomplete, ${t.unmatched} unmatched, ${t.refused} refused, ${t.failed} failed`,
    );
    ctx.progress({ percent: 100, step: 'done' });
    return report;
  });
}

export async function reindexRoutes(app: FastifyInstance, deps: { reindex: ReindexService; tasks: Pick<TaskService, 'submit'> }): Promise<void> {
  app.post<{ Body: Static<typeof Body> }>(
    '/system/reindex',
    {
      schema: {
        tags: ['system'],
        summary: 'Rebuild the restore-point index from the borg repositories on the storages (a system.reindex task; its result is the report)',
        body: Type.Optional(Body),
        response: { 202: Type.Ref('Task'), ...errorResponses(400, 404) },
      },
    },
    async (req, reply) => {
      const b = req.body ?? {};
      const payload: ReindexPayload = {
        dryRun: b.dryRun ?? false,
        pruneMissing: b.pruneMissing ?? false,
        ...(b.storage !== undefined ? { storage: b.storage } : {}),
        ...(b.repository !== undefined ? { repository: b.repository } : {}),
        ...(b.attachToHost !== undefined ? { attachToHost: b.attachToHost } : {}),
      };
      // Mistakes answer at once (400/404), not as a failed task.
      await deps.reindex.check(payload);
      return reply.code(202).send(await deps.tasks.submit(REINDEX_KIND, payload, { startedBy: actorOf(req.principal) }));
    },
  );
}
