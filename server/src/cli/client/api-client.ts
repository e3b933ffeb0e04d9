import { EXIT } from './format.js';

/** An API error as the client shows it: the server's stable code and its message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface ClientSettings {
  baseUrl: string;
  token?: string;
  clientId?: string;
  clientSecret?: string;
  tokenUrl?: string;
}

/**
 * Settings from the environment (never from argv, where secrets would show in `ps`):
 * BACKROLL_URL, and BACKROLL_TOKEN or BACKROLL_CLIENT_ID + BACKROLL_CLIENT_SECRET.
 */
export function settingsFromEnv(env: NodeJS.ProcessEnv): ClientSettings {
  const baseUrl = (env.BACKROLL_URL ?? `http://localhost:${env.BACKROLL_PORT ?? '5050'}`).replace(/\/+$/, '');
  return {
    baseUrl,
    token: env.BACKROLL_TOKEN || undefined,
    clientId: env.BACKROLL_CLIENT_ID || undefined,
    clientSecret: env.BACKROLL_CLIENT_SECRET || undefined,
    tokenUrl: env.BACKROLL_TOKEN_URL || (env.BACKROLL_OIDC_ISSUER ? `${env.BACKROLL_OIDC_ISSUER.replace(/\/+$/, '')}/token` : `${baseUrl}/oidc/token`),
  };
}

const STATUS_EXIT: Record<number, number> = { 401: EXIT.auth, 403: EXIT.auth, 404: EXIT.notFound, 503: EXIT.unavailable };

export class ApiClient {
  private token?: string;

  constructor(private readonly settings: ClientSettings) {
    this.token = settings.token;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.fetch(method, path, body);
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const p = (json ?? {}) as { code?: string; detail?: string };
      throw new CliError(`${p.code ?? `HTTP ${res.status}`}: ${p.detail ?? res.statusText}`, STATUS_EXIT[res.status] ?? EXIT.failed, p.code);
    }
    return json as T;
  }

  /** A raw response (streams such as Server-Sent Events). */
  async fetch(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.accessToken()}`, ...extraHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await fetch(`${this.settings.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new CliError(`cannot reach Backroll at ${this.settings.baseUrl} (${(err as Error).cause ?? (err as Error).message}); set BACKROLL_URL`, EXIT.unavailable);
    }
  }

  private async accessToken(): Promise<string> {
    if (this.token) return this.token;
    const { clientId, clientSecret, tokenUrl } = this.settings;
    if (!clientId || !clientSecret) {
      throw new CliError('no credentials: set BACKROLL_TOKEN, or BACKROLL_CLIENT_ID and BACKROLL_CLIENT_SECRET (see `backroll client create`)', EXIT.auth);
    }
    let res: Response;
    try {
      res = await fetch(tokenUrl!, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials' }),
      });
    } catch (err) {
      throw new CliError(`cannot reach the token endpoint ${tokenUrl} (${(err as Error).message})`, EXIT.unavailable);
    }
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) {
      throw new CliError(`the token endpoint refused the client: ${body.error ?? res.status} ${body.error_description ?? ''}`.trim(), EXIT.auth);
    }
    this.token = body.access_token;
    return this.token;
  }
}
