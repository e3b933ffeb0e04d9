import { createHmac } from 'node:crypto';

/**
 * Apache CloudStack's request signature (API Developer's Guide, "Signing API Requests"):
 * every parameter but `signature`, sorted by name, each value URL-encoded, the whole
 * command string lower-cased, HMAC-SHA1 with the secret key, base64. The management
 * server recomputes it from the decoded parameters with Java's URLEncoder (spaces as
 * %20), so values are encoded exactly as URLEncoder does, not as encodeURIComponent.
 */

/** Parameter names Backroll sends: CloudStack's are lower-case words, `details[0].key` style maps at most. */
const NAME = /^[a-z0-9_.[\]]+$/;

export class UnsignableParameterError extends Error {
  constructor(readonly parameter: string, reason: string) {
    super(`CloudStack parameter "${parameter}" cannot be signed: ${reason}`);
    this.name = 'UnsignableParameterError';
  }
}

/** Java's `URLEncoder.encode(value, UTF-8)` with `+` replaced by `%20`, as CloudStack computes it. */
export function encodeValue(value: string, name = '?'): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch {
    throw new UnsignableParameterError(name, 'the value is not valid Unicode (lone surrogate)');
  }
  // encodeURIComponent leaves ! ' ( ) ~ as they are; URLEncoder escapes them ('*' stays in both).
  return encoded.replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The parameters in the order CloudStack sorts them (Java String order: UTF-16 code units). */
function sortedEntries(params: Record<string, string>): Array<[string, string]> {
  return Object.entries(params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The encoded query that is both sent and signed: `name=value` pairs sorted by name. Names
 * are checked (lower-case, no characters needing encoding) so the server sorts them the same way.
 */
export function commandString(params: Record<string, string>): string {
  return sortedEntries(params)
    .map(([name, value]) => {
      if (!NAME.test(name)) throw new UnsignableParameterError(name, 'names must be lower-case letters, digits, "_", "." or "[]"');
      if (name === 'signature') throw new UnsignableParameterError(name, 'the signature is computed, never passed in');
      return `${name}=${encodeValue(value, name)}`;
    })
    .join('&');
}

/** The base64 signature of the parameters (without `signature`) with the secret key. */
export function signature(params: Record<string, string>, secretKey: string): string {
  return createHmac('sha1', Buffer.from(secretKey, 'utf8')).update(commandString(params).toLowerCase(), 'utf8').digest('base64');
}

/** The form body of a signed request: the command string plus its encoded signature. */
export function signedBody(params: Record<string, string>, secretKey: string): string {
  return `${commandString(params)}&signature=${encodeValue(signature(params, secretKey))}`;
}

/**
 * The `expires` of signature version 3. CloudStack before 4.20 parses only
 * `yyyy-MM-dd'T'HH:mm:ss'Z'Z` (a literal Z then an RFC 822 offset); later versions still
 * accept it, so this one format works everywhere.
 */
export function expiresAt(when: Date): string {
  return `${when.toISOString().slice(0, 19)}Z+0000`;
}
