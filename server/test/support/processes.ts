import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const SERVER_DIR = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(SERVER_DIR, 'bin', 'backroll.js');
const PRELOAD = pathToFileURL(path.join(SERVER_DIR, 'test', 'support', 'worker-handlers.mjs')).href;

export interface BackrollProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves once a log line contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real `node server/bin/backroll.js start --roles …` process (built dist/), with
 * the test task kinds preloaded. Its JSON log is kept for assertions and failures.
 */
export function startBackroll(roles: string, env: Record<string, string>): BackrollProcess {
  const child = spawn(process.execPath, [BIN, 'start', '--roles', roles], {
    cwd: SERVER_DIR,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', BACKROLL_LOG_LEVEL: 'info', ...env, NODE_OPTIONS: `--import ${PRELOAD}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      if (out.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    pid: child.pid!,
    output: () => out,
    waitFor(text, timeoutMs = 60_000) {
      if (out.includes(text)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`backroll ${child.pid} did not log "${text}" within ${timeoutMs} ms; output:\n${out.slice(-4000)}`)), timeoutMs);
        waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then(() => {
          if (!out.includes(text)) {
            clearTimeout(timer);
            reject(new Error(`backroll ${child.pid} exited before logging "${text}"; output:\n${out.slice(-4000)}`));
          }
        });
      });
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
