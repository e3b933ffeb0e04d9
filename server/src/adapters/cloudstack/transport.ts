import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

/** How the client checks the endpoint's certificate. */
export interface TlsSettings {
  /** Verify the certificate chain and host name (default true). */
  verify: boolean;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  ca?: string | null;
}

export interface PostRequest {
  url: URL;
  body: string;
  tls: TlsSettings;
  /** Aborts the request (timeout, caller's cancel); the reason is what the promise rejects with. */
  signal: AbortSignal;
  /** Larger answers are cut off with a TooLargeError. */
  maxBytes: number;
  userAgent: string;
}

export interface PostResponse {
  status: number;
  contentType: string;
  location?: string;
  body: string;
}

export class TooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the answer is larger than ${maxBytes} bytes`);
    this.name = 'TooLargeError';
  }
}

/**
 * One form POST over http or https, redirects not followed. Node's http modules rather
 * than fetch: they take a per-request CA without a dispatcher dependency.
 */
export function post(req: PostRequest): Promise<PostResponse> {
  const isHttps = req.url.protocol === 'https:';
  const body = Buffer.from(req.body, 'utf8');
  const options: https.RequestOptions = {
    method: 'POST',
    signal: req.signal,
    agent: false,
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=UTF-8',
      'content-length': String(body.length),
      accept: 'application/json',
      'user-agent': req.userAgent,
    },
  };
  if (isHttps) {
    options.rejectUnauthorized = req.tls.verify;
    if (req.tls.ca) options.ca = [...tls.rootCertificates, req.tls.ca];
  }
  return new Promise((resolve, reject) => {
    const request = (isHttps ? https : http).request(req.url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > req.maxBytes) {
          res.destroy();
          reject(new TooLargeError(req.maxBytes));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => reject(req.signal.aborted ? req.signal.reason : err));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          location: res.headers.location,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    request.on('error', (err) => reject(req.signal.aborted ? req.signal.reason : err));
    request.end(body);
  });
}
