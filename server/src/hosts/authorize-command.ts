/**
 * The one line an operator runs on a hypervisor host, as the SSH user Backroll will use,
 * to authorise Backroll's public keys (pure). Idempotent: a key already present is not added
 * again, and a last line without its newline is completed first, so the key never ends up
 * glued to another one. Works in any POSIX shell (sh, dash, bash, zsh).
 */
import { shellQuote } from '../adapters/ssh/quote.js';

/** `ssh-ed25519 AAAA… backroll@host`: what `~/.ssh/authorized_keys` may receive from us. */
const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._:+-]{1,255})?$/;

export function authorizeCommand(authorizedKeysLines: readonly string[]): string {
  if (authorizedKeysLines.length === 0) throw new Error('no public key to authorise');
  for (const line of authorizedKeysLines) {
    // The lines are ours, but a strange comment (a host name) must never reach a shell unchecked.
    if (!KEY_LINE.test(line)) throw new Error(`not an authorized_keys line: ${JSON.stringify(line.slice(0, 60))}`);
  }
  const ak = '~/.ssh/authorized_keys';
  return [
    'umask 077',
    'mkdir -p ~/.ssh',
    `touch ${ak}`,
    `{ [ ! -s ${ak} ] || tail -c 1 ${ak} | read -r _ || echo >> ${ak}; }`,
    `for k in ${authorizedKeysLines.map(shellQuote).join(' ')}; do grep -qxF "$k" ${ak} || printf '%s\\n' "$k" >> ${ak}; done`,
    'chmod 700 ~/.ssh',
    `chmod 600 ${ak}`,
  ].join(' && ');
}
