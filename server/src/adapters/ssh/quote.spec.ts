import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../errors.js';
import { buildCommand, shellQuote } from './quote.js';
import { STDIN_ENV_SCRIPT, wrapWithStdinEnv } from './stdin-env.js';

/** The error `fn` throws; fails the test when it returns normally. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw, but the call returned');
}

const HOSTILE = [
  '',
  ' ',
  'plain',
  'two words',
  "it's",
  "'",
  "''",
  "'\\''",
  '"',
  '"double" quotes',
  '\\',
  'back\\slash\\',
  '$HOME',
  '${HOME}',
  '$(touch PWNED)',
  '`touch PWNED_BT`',
  'a;touch PWNED_SEMI',
  'a && touch PWNED_AND',
  'a || touch PWNED_OR',
  'a | tee PWNED_PIPE',
  '> PWNED_REDIR',
  '< /etc/passwd',
  'a\ntouch PWNED_NL',
  'line1\nline2\n',
  '\r\n',
  '\ttab',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  '#comment',
  '!',
  '!!',
  '-rf',
  '--domain',
  '-',
  'A=b',
  '%s',
  '\\0',
  '{a,b}',
  'émoji 🐧 日本語',
  '\u00a0nbsp',
  'evil$(touch PWNED);\'"`id` x',
  "'$(touch PWNED)'",
  '"$(touch PWNED)"',
  '\x01\x02\x7f',
];

describe('shellQuote', () => {
  it('wraps in single quotes', () => {
    expect(shellQuote('abc')).toBe("'abc'");
    expect(shellQuote('two words')).toBe("'two words'");
  });

  it('quotes the empty string as an empty argument', () => {
    expect(shellQuote('')).toBe("''");
  });

  it("writes a single quote as '\\''", () => {
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("'")).toBe("''\\'''");
  });

  it('leaves everything else literal inside the quotes', () => {
    expect(shellQuote('$(id) `id` ; && \n')).toBe("'$(id) `id` ; && \n'");
    expect(shellQuote('-rf')).toBe("'-rf'");
  });

  it('never leaves an unquoted character outside single quotes', () => {
    for (const s of HOSTILE) {
      // The quoted form is a sequence of '...' segments and \' escapes, nothing else.
      expect(shellQuote(s)).toMatch(/^(?:'[^']*'|\\')+$/);
    }
  });

  it('refuses NUL: a remote argv cannot contain it', () => {
    const e = thrownBy(() => shellQuote('a\0b'));
    expect(e).toBeInstanceOf(AppError);
    expect(e).toMatchObject({ code: 'SSH.UNSAFE_ARGUMENT', kind: 'invalid' });
  });

  it('refuses lone surrogates (not encodable as UTF-8)', () => {
    expect(() => shellQuote('a\ud800b')).toThrow(/surrogate/);
    expect(shellQuote('🐧')).toBe("'🐧'"); // a valid pair is fine
  });
});

describe('buildCommand', () => {
  it('quotes and joins every element', () => {
    expect(buildCommand(['virsh', '-c', 'qemu:///system', 'dumpxml', "a'b"])).toBe(
      "'virsh' '-c' 'qemu:///system' 'dumpxml' 'a'\\''b'",
    );
  });

  it('refuses an empty argv or program', () => {
    expect(() => buildCommand([])).toThrow(/empty command/);
    expect(() => buildCommand([''])).toThrow(/empty program/);
  });

  it('refuses NUL in any element', () => {
    expect(() => buildCommand(['echo', 'ok', 'x\0'])).toThrow(/NUL/);
  });
});

/** Run `cmd` through a real shell in an empty directory; return argv printed by printf and the dir's files. */
function runThroughShell(shell: string, argv: string[]): { args: string[]; files: string[]; status: number | null } {
  const dir = mkdtempSync(path.join(tmpdir(), 'backroll-quote-'));
  dirs.push(dir);
  const cmd = buildCommand(['printf', '%s\\0', ...argv]);
  const r = spawnSync(shell, ['-c', cmd], { cwd: dir, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir } });
  const out = r.stdout;
  const args = out.length === 0 ? [] : out.slice(0, -1).split('\0');
  return { args, files: readdirSync(dir), status: r.status };
}
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const shells = ['/bin/sh', '/bin/bash', '/bin/dash'].filter((s) => existsSync(s));

describe.each(shells)('round trip through a real %s -c', (shell) => {
  it('every hostile argument arrives exactly, one by one', () => {
    for (const s of HOSTILE) {
      const r = runThroughShell(shell, [s]);
      expect(r.status).toBe(0);
      expect(r.args).toEqual([s]);
      expect(r.files).toEqual([]);
    }
  });

  it('all hostile arguments together keep their boundaries and order', () => {
    const r = runThroughShell(shell, HOSTILE);
    expect(r.status).toBe(0);
    expect(r.args).toEqual(HOSTILE);
    expect(r.files).toEqual([]); // no PWNED*, no redirect target
  });

  it('random strings round-trip (fuzz)', () => {
    let seed = 42;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = ['a', ' ', "'", '"', '\\', '$', '(', ')', '`', ';', '&', '|', '\n', '*', '~', '!', '-', '#', 'é', '🐧', '{', '}', '<', '>'];
    const args = Array.from({ length: 200 }, () =>
      Array.from({ length: Math.floor(rnd() * 12) }, () => alphabet[Math.floor(rnd() * alphabet.length)]!).join(''),
    );
    const r = runThroughShell(shell, args);
    expect(r.args).toEqual(args);
    expect(r.files).toEqual([]);
  });
});

describe('wrapWithStdinEnv (secrets via stdin, not argv)', () => {
  it('puts only names in argv', () => {
    const w = wrapWithStdinEnv({ BORG_PASSPHRASE: 's3cr3t pass' }, ['borg', 'list']);
    expect(w.argv).toEqual(['sh', '-c', STDIN_ENV_SCRIPT, 'sh', 'BORG_PASSPHRASE', '--', 'borg', 'list']);
    expect(w.argv.join(' ')).not.toContain('s3cr3t');
    expect(w.stdinPrefix.toString()).toBe('s3cr3t pass\n');
  });

  it('refuses bad names and values with newline/NUL without echoing the value', () => {
    expect(() => wrapWithStdinEnv({ 'A B': 'x' }, ['true'])).toThrow(/invalid environment variable name/);
    expect(() => wrapWithStdinEnv({ A: 'x\ny' }, ['true'])).toThrow(/newline/);
    for (const value of ['topsecret\n', 'top\0secret']) {
      const e = thrownBy(() => wrapWithStdinEnv({ A: value }, ['true'])) as Error;
      expect(e).toMatchObject({ code: 'SSH.UNSAFE_ARGUMENT' });
      expect(e.message).toMatch(/newline or NUL/);
      expect(`${e.message} ${JSON.stringify(e)}`).not.toMatch(/top.?secret/);
    }
  });

  it.each(shells)('delivers the values and keeps the rest of stdin intact (%s)', (shell) => {
    const env = { A: "va l'$(touch PWNED)\\", B: '', C: 'ünï' };
    const w = wrapWithStdinEnv(env, ['sh', '-c', 'printf "%s\\0" "$A" "$B" "$C"; cat']);
    const dir = mkdtempSync(path.join(tmpdir(), 'backroll-env-'));
    dirs.push(dir);
    const input = Buffer.concat([w.stdinPrefix, Buffer.from('rest of\nstdin')]);
    const r = spawnSync(shell, ['-c', buildCommand(w.argv)], { cwd: dir, input, encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${env.A}\0\0${env.C}\0rest of\nstdin`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('without secrets returns argv unchanged', () => {
    expect(wrapWithStdinEnv({}, ['ls'])).toEqual({ argv: ['ls'], stdinPrefix: Buffer.alloc(0) });
  });
});
