import pino, { type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config/config.js';

/** Paths never written to logs, whatever logs them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.secret',
  '*.secretKey',
  '*.apiKey',
  '*.clientSecret',
  '*.client_secret',
  '*.passphrase',
  '*.token',
  '*.access_token',
];

export function loggerOptions(level: Config['logLevel']): LoggerOptions {
  return { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'backroll' } };
}

export function createLogger(level: Config['logLevel']): Logger {
  return pino(loggerOptions(level));
}
