/**
 * Secrets (e.g. BORG_PASSPHRASE) must never be in a command line: argv is visible to every
 * user of the host in `ps`. SSH's own "env" request would be ideal, but OpenSSH drops every
 * variable not listed in the server's `AcceptEnv` (Debian: only LANG and LC_*), silently.
 *
 * So secrets travel on the channel's stdin: the command is wrapped in a fixed `sh` script that
 * reads one line per variable, exports it, then execs the real program, which inherits the rest
 * of stdin untouched (`read` consumes a pipe byte by byte, never past its newline).
 * Only the variable NAMES appear in argv.
 */
import { SshErrorCode, sshError } from './ssh-errors.js';

// Constant: no value is ever interpolated into it. Exit 125 when stdin ends early.
export const STDIN_ENV_SCRIPT =
  'while [ "$1" != -- ]; do IFS= read -r v || exit 125; export "$1=$v"; shift; done; shift; exec "$@"';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface StdinEnvCommand {
  argv: string[];
  /** Bytes to write to the channel's stdin before anything else. */
  stdinPrefix: Buffer;
}

export function wrapWithStdinEnv(env: Readonly<Record<string, string>>, argv: readonly string[]): StdinEnvCommand {
  const names = Object.keys(env);
  if (names.length === 0) return { argv: [...argv], stdinPrefix: Buffer.alloc(0) };
  const lines: string[] = [];
  for (const name of names) {
    if (!ENV_NAME.test(name)) {
      throw sshError(SshErrorCode.UNSAFE_ARGUMENT, `invalid environment variable name ${JSON.stringify(name)}`);
    }
    const value = env[name] ?? '';
    if (value.includes('\n') || value.includes('\0')) {
      // Never echo the value: it is a secret.
      throw sshError(SshErrorCode.UNSAFE_ARGUMENT, `environment variable ${name} contains a newline or NUL`);
    }
    lines.push(`${value}\n`);
  }
  return {
    argv: ['sh', '-c', STDIN_ENV_SCRIPT, 'sh', ...names, '--', ...argv],
    stdinPrefix: Buffer.from(lines.join(''), 'utf8'),
  };
}
