/**
 * The ONE place where remote command lines are built. SSH carries a command as a single string
 * that the remote user's login shell parses, so every argv element is POSIX single-quoted:
 * inside '...' a POSIX shell interprets nothing, and a `'` is written as '\'' (close, escaped
 * quote, reopen). Newlines, `$(...)`, backticks, `;`, globs and unicode are all literal.
 *
 * Assumes a POSIX-compatible login shell on the host (sh, dash, bash, zsh, ksh); csh/fish
 * users are not supported as hypervisor accounts.
 */
import { SshErrorCode, sshError } from './ssh-errors.js';

// A lone UTF-16 surrogate cannot be encoded in UTF-8: it would silently become U+FFFD remotely.
const LONE_SURROGATE = /\p{Cs}/u;

export function shellQuote(arg: string): string {
  if (typeof arg !== 'string') {
    throw sshError(SshErrorCode.UNSAFE_ARGUMENT, `command argument is not a string (${typeof arg})`);
  }
  // C strings end at NUL: a remote argv can never contain one, so the argument would be truncated.
  if (arg.includes('\0')) {
    throw sshError(SshErrorCode.UNSAFE_ARGUMENT, 'command argument contains a NUL byte', {
      argument: JSON.stringify(arg),
    });
  }
  if (LONE_SURROGATE.test(arg)) {
    throw sshError(SshErrorCode.UNSAFE_ARGUMENT, 'command argument is not valid Unicode (lone surrogate)', {
      argument: JSON.stringify(arg),
    });
  }
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Quote each element and join with spaces: the remote shell rebuilds exactly `argv`. */
export function buildCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw sshError(SshErrorCode.UNSAFE_ARGUMENT, 'empty command');
  if (argv[0] === '') throw sshError(SshErrorCode.UNSAFE_ARGUMENT, 'empty program name');
  return argv.map(shellQuote).join(' ');
}
