// The typed fetch wrapper every screen uses: bearer token, JSON bodies, and problem+json
// answers turned into an ApiError (code, status, detail, field errors).
import type { FieldProblem, Problem } from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly errors: FieldProblem[];
  readonly problem: Problem;

  constructor(problem: Problem) {
    const detail = problem.detail ?? problem.title ?? `HTTP ${problem.status}`;
    super(detail);
    this.name = 'ApiError';
    this.status = problem.status;
    this.code = problem.code ?? (problem.status === 0 ? 'NETWORK.UNREACHABLE' : `HTTP.${problem.status}`);
    this.detail = detail;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
  }

  /** An extra member of the problem document (e.g. `presentedFingerprint`, `installCommand`). */
  extra<T = unknown>(name: string): T | undefined {
    return this.problem[name] as T | undefined;
  }
}

/** The auth module plugs in here (no import cycle): the current token and what to do on 401. */
interface AuthHooks {
  token(): Promise<string | null>;
  /** A 401: refresh the token; true = retry the request once. */
  onUnauthenticated(code: string): Promise<boolean>;
}
let auth: AuthHooks = { token: async () => null, onUnauthenticated: async () => false };
export function setAuthHooks(hooks: AuthHooks): void {
  auth = hooks;
}

export type Query = Record<string, string | number | boolean | null | undefined | string[]>;

/** `?a=1&b=x,y` from a query object; undefined, null and '' are left out. */
export function queryString(query?: Query): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) {
      if (v.length > 0) params.set(k, v.join(','));
    } else params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Path is relative to /api/v2 unless it starts with /api or /oidc. */
  raw?: boolean;
}

function url(path: string): string {
  if (path.startsWith('/api/') || path.startsWith('/oidc/') || path.startsWith('http')) return path;
  return `/api/v2${path.startsWith('/') ? '' : '/'}${path}`;
}

async function send(method: string, path: string, opts: RequestOptions, retried = false): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...opts.headers };
  const token = await auth.token();
  if (token) headers.authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  } else if (method === 'POST' || method === 'PATCH' || method === 'PUT') {
    // Backroll's POST routes take a JSON body; an empty object is the "no options" form.
    headers['content-type'] = 'application/json';
    body = '{}';
  }
  let res: Response;
  try {
    res = await fetch(url(path) + queryString(opts.query), { method, headers, body, signal: opts.signal });
  } catch (err) {
    if ((err as Error)?.name === 'AbortError') throw err;
    throw new ApiError({ status: 0, code: 'NETWORK.UNREACHABLE', detail: 'Backroll cannot be reached; check the network or whether the server is running, then retry' });
  }
  if (res.status === 401 && !retried) {
    const problem = await readProblem(res);
    if (await auth.onUnauthenticated(problem.code ?? '')) return send(method, path, opts, true);
    throw new ApiError(problem);
  }
  if (!res.ok) throw new ApiError(await readProblem(res));
  return res;
}

async function readProblem(res: Response): Promise<Problem> {
  const text = await res.text().catch(() => '');
  try {
    const doc = JSON.parse(text) as Problem;
    if (doc && typeof doc === 'object') return { ...doc, status: res.status };
  } catch {
    /* not JSON */
  }
  return { status: res.status, title: res.statusText, detail: text.slice(0, 300) || `the server answered HTTP ${res.status}` };
}

async function json<T>(res: Response): Promise<T> {
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  async get<T>(path: string, query?: Query, opts: Omit<RequestOptions, 'query'> = {}): Promise<T> {
    return json<T>(await send('GET', path, { ...opts, query }));
  },
  async post<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return json<T>(await send('POST', path, { ...opts, body }));
  },
  async patch<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return json<T>(await send('PATCH', path, { ...opts, body }));
  },
  async put<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return json<T>(await send('PUT', path, { ...opts, body }));
  },
  async del<T = void>(path: string, opts: RequestOptions = {}): Promise<T> {
    return json<T>(await send('DELETE', path, opts));
  },
  /** The raw response (streams, downloads). */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    return send(method, path, opts);
  },
  /** Downloads a protected file (the bearer header rules out a plain link) and saves it. */
  async download(path: string, fallbackName: string, query?: Query): Promise<void> {
    const res = await send('GET', path, { query, headers: { accept: '*/*' } });
    const disposition = res.headers.get('content-disposition') ?? '';
    const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
    const blob = await res.blob();
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
  },
};

/** A readable one-liner for a caught error (ApiError or anything else). */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.detail;
  if (err instanceof Error) return err.message;
  return String(err);
}
