import { invalid } from '../errors.js';

/** An http(s) URL without credentials in it (they would leak into logs); returns it normalised. */
export function checkHttpUrl(value: string, code: string, what: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid(code, `${what} "${redactUrl(value)}" is not a valid URL; expected https://host/path`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw invalid(code, `${what} must use http or https, not ${u.protocol.replace(':', '')}`);
  }
  if (u.username || u.password) {
    throw invalid(code, `${what} must not embed a user name or password; use the dedicated secret fields`);
  }
  return u.toString();
}

/** Only scheme and host: enough to recognise a URL, never its secret path or query. */
export function redactUrl(value: string): string {
  try {
    const u = new URL(value);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '(unparseable URL)';
  }
}
