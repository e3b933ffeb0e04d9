import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, httpStatusOf } from '../errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  requestId?: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { type: `urn:backroll:problem:${code}`, title: TITLES[status] ?? 'Error', status, code, detail, ...extra };
}

/** Turns any thrown error into a problem: typed errors keep their code, unknown ones are masked. */
export function toProblem(err: unknown, req: FastifyRequest): Problem {
  const base = { instance: req.url.split('?')[0], requestId: req.id };
  if (err instanceof AppError) {
    return { ...problem(httpStatusOf[err.kind], err.code, err.message, err.details ?? {}), ...base };
  }
  const fe = err as FastifyError;
  if (fe.validation) {
    const errors = fe.validation.map((v) => ({
      path: `${fe.validationContext ?? 'request'}${v.instancePath || ''}`,
      message:
        v.keyword === 'additionalProperties'
          ? `unknown property "${String((v.params as { additionalProperty?: string }).additionalProperty)}"`
          : (v.message ?? 'is invalid'),
    }));
    const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    return { ...problem(400, 'REQUEST.INVALID', `the request is invalid: ${detail}`, { errors }), ...base };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'REQUEST.UNSUPPORTED_MEDIA_TYPE' : fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'REQUEST.TOO_LARGE' : 'REQUEST.INVALID';
    return { ...problem(fe.statusCode, code, fe.message), ...base };
  }
  return { ...problem(500, 'INTERNAL', 'an unexpected error occurred; the request id is in the server log'), ...base };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
}
