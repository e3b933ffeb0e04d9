import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/backroll.js');
const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-cli-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const run = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 30_000 });

describe('the backroll command', () => {
  it('checks the configuration, masking secrets, and names a bad variable', () => {
    const ok = run(['config', 'check'], { BACKROLL_DATA_DIR: tmp(), BACKROLL_DATABASE_URL: 'postgres://backroll:s3cret@db/backroll' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).database).toEqual({ dialect: 'postgres', url: 'postgres://backroll:****@db/backroll' });
    expect(ok.stdout).not.toContain('s3cret');
    const bad = run(['config', 'check'], { BACKROLL_PORT: 'eighty' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('BACKROLL_PORT="eighty": expected an integer between 0 and 65535');
  });

  it('migrates a new database once', () => {
    const env = { BACKROLL_DATA_DIR: tmp() };
    const first = run(['migrate'], env);
    expect(first.stderr).toBe('');
    expect(first.stdout.trim()).toMatch(/^applied: 0001_initial(, \d{4}_[a-z_]+)*$/);
    expect(run(['migrate'], env).stdout.trim()).toBe('database is up to date');
  });

  it('creates, lists and deletes machine clients, showing the secret once', () => {
    const env = { BACKROLL_DATA_DIR: tmp() };
    const created = run(['client', 'create', 'CloudStack zone 1', '--role', 'viewer'], env);
    expect(created.status).toBe(0);
    const id = /client_id:\s+(\S+)/.exec(created.stdout)![1]!;
    const secret = /client_secret:\s+(\S+)/.exec(created.stdout)![1]!;
    expect(secret.length).toBeGreaterThanOrEqual(40);
    const listed = run(['client', 'list'], env);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain('viewer');
    expect(listed.stdout).not.toContain(secret);
    expect(fs.readFileSync(path.join(env.BACKROLL_DATA_DIR, 'idp', 'clients.json'), 'utf8')).not.toContain(secret);
    expect(run(['client', 'create', 'x', '--role', 'root'], env).status).not.toBe(0);
    expect(run(['client', 'delete', id], env).status).toBe(0);
    expect(run(['client', 'delete', id], env).status).toBe(1);
  });

  it('starts on embedded defaults: prints the URL and the admin password once, serves health, stops on SIGTERM', async () => {
    const dataDir = path.join(tmp(), 'data');
    const port = await freePort();
    const env = { BACKROLL_DATA_DIR: dataDir, BACKROLL_PORT: String(port), BACKROLL_HOST: '127.0.0.1', BACKROLL_LOG_LEVEL: 'warn' };
    const start = async () => {
      const child = spawn(process.execPath, [BIN, 'start'], { env: { PATH: process.env.PATH, ...env } });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const deadline = Date.now() + 20_000;
      while (!stderr.includes('/api/docs') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      return { child, stderr: () => stderr };
    };
    const first = await start();
    expect(first.stderr()).toContain(`http://localhost:${port}/api/docs`);
    const password = /password: (\S+)/.exec(first.stderr())?.[1];
    expect(password).toBeDefined();
    expect(fs.readFileSync(path.join(dataDir, 'admin-password.txt'), 'utf8').trim()).toBe(password);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dataDir, 'admin-password.txt')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dataDir, 'backroll.db')).mode & 0o777).toBe(0o600);
    const health = await fetch(`http://127.0.0.1:${port}/api/health`);
    expect(health.status).toBe(200);
    first.child.kill('SIGTERM');
    const code = await new Promise((r) => first.child.once('exit', r));
    expect(code).toBe(0);

    // A second start keeps the account and prints no password.
    const second = await start();
    expect(second.stderr()).toContain('/api/docs');
    expect(second.stderr()).not.toContain('password:');
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));

    const reset = run(['admin', 'reset-password'], env);
    const newPassword = /new admin password: (\S+)/.exec(reset.stdout)?.[1];
    expect(newPassword).toBeDefined();
    expect(newPassword).not.toBe(password);
    expect(fs.readFileSync(path.join(dataDir, 'admin-password.txt'), 'utf8').trim()).toBe(newPassword);
  });
});
