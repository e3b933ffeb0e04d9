/**
 * Serves the built web console (web/dist) at `/` from the api role, same origin as the API:
 * files by path, every other GET that is not the API, the OpenID provider, the queue board or
 * the metrics answers index.html (history-mode routing). Hashed assets are cached for a year,
 * index.html never. A strict CSP: scripts and styles from this origin only; inline styles are
 * allowed (naive-ui injects <style> elements), inline scripts are not.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { problem, sendProblem } from '../http/problem.js';

/** Paths the console never answers (they have their own routes, or a 404 problem). */
export const NOT_WEB_PATH = /^\/(api|admin|oidc)(\/|$)|^\/metrics$/;

/** web/dist of this installation: server/{src,dist}/console → ../../../web/dist. */
export function defaultWebDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** The console's Content-Security-Policy; an external issuer's origin may be fetched and posted to. */
export function consoleCsp(issuer: string): string {
  let issuerOrigin = '';
  try {
    issuerOrigin = new URL(issuer).origin;
  } catch {
    issuerOrigin = '';
  }
  const extra = issuerOrigin ? ` ${issuerOrigin}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self'${extra}`,
    `form-action 'self'${extra}`,
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
  ].join('; ');
}

const MISSING_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backroll</title></head>
<body><h1>Backroll</h1><p>The web console is not built. Run <code>npm run build</code> in the Backroll directory
(or set BACKROLL_WEB_DIR to a built console), then reload. The API is at <a href="/api/docs">/api/docs</a>.</p></body></html>
`;

export async function webRoutes(app: FastifyInstance, opts: { webDir?: string; issuer: string }): Promise<void> {
  const root = path.resolve(opts.webDir ?? defaultWebDir());
  const csp = consoleCsp(opts.issuer);

  const sendFile = async (reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> => {
    const st = await fsp.stat(file);
    return reply
      .header('content-type', TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream')
      .header('content-length', String(st.size))
      .header('cache-control', cache)
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .send(createReadStream(file));
  };

  /** A regular file inside the root (no `..`, no symlink out of it), or undefined. */
  const resolve = async (urlPath: string): Promise<string | undefined> => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) return undefined;
    const candidate = path.resolve(root, `.${path.posix.normalize(`/${decoded}`)}`);
    if (candidate !== root && !candidate.startsWith(`${root}${path.sep}`)) return undefined;
    try {
      const real = await fsp.realpath(candidate);
      const realRoot = await fsp.realpath(root);
      if (!real.startsWith(`${realRoot}${path.sep}`)) return undefined;
      return (await fsp.stat(real)).isFile() ? real : undefined;
    } catch {
      return undefined;
    }
  };

  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    const urlPath = req.url.split('?')[0] ?? '/';
    if (NOT_WEB_PATH.test(urlPath)) {
      return sendProblem(reply, { ...problem(404, 'ROUTE.NOT_FOUND', `no route GET ${urlPath}; the API is described at /api/docs`), instance: urlPath, requestId: req.id });
    }
    const index = path.join(root, 'index.html');
    const indexExists = await fsp.stat(index).then((s) => s.isFile(), () => false);
    if (!indexExists) {
      return reply.code(200).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-cache').header('content-security-policy', csp).send(MISSING_PAGE);
    }
    const file = urlPath === '/' ? undefined : await resolve(urlPath);
    if (file && path.basename(file) !== 'index.html') {
      // Vite puts content-hashed files under assets/: they never change under the same name.
      const hashed = file.startsWith(`${path.join(await fsp.realpath(root), 'assets')}${path.sep}`);
      return sendFile(reply, file, hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
    }
    // A missing asset is a 404, not the app (a stale index.html asking for an old chunk must fail visibly).
    if (/^\/assets\//.test(urlPath) || /\.[A-Za-z0-9]{1,8}$/.test(urlPath)) {
      return reply.code(404).header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-cache').send('not found');
    }
    return sendFile(reply, index, 'no-cache');
  });
}
