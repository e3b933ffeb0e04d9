import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { IdParams, Page, PageQuery, errorResponses } from '../http/schemas.js';
import { PolicyRun } from '../policies/policy.routes.js';
import type { PolicyService } from '../policies/policy.service.js';
import type { ScheduleFiring } from './schedule-firing.js';

/** The history of a policy's schedule: fired, caught-up and missed occurrences. */
export async function scheduleRoutes(app: FastifyInstance, deps: { policies: PolicyService; firing: ScheduleFiring }): Promise<void> {
  app.addSchema(PolicyRun);
  app.get<{ Params: IdParams; Querystring: Static<typeof PageQuery> }>(
    '/policies/:id/runs',
    {
      schema: {
        tags: ['policies'],
        summary: 'Occurrences of the policy schedule, newest first (fired, caught up or missed) with their outcome',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: Page(Type.Ref('PolicyRun')), ...errorResponses(404) },
      },
    },
    async (req) => {
      await deps.policies.get(req.params.id);
      return deps.firing.history(req.params.id, req.query);
    },
  );
}
