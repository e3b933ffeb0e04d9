import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { authorizeCommand } from './authorize-command.js';

const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIIem/icTEPlP+46GtRsSggdqSrkGv0DH4mLDZS3Ur5y backroll@kvm-backup.example';
const RSA = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAACAQCf+x/y= backroll@kvm-backup.example';

const homes: string[] = [];
afterEach(() => {
  for (const d of homes.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const SHELLS = ['sh', 'dash', 'bash', 'zsh'].filter((s) => spawnSync('sh', ['-c', `command -v ${s}`]).status === 0);

/** Runs the command as an operator would paste it, in a fresh HOME. */
function runIn(shell: string, home: string, cmd: string) {
  const r = spawnSync(shell, ['-c', cmd], { env: { HOME: home, PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: home, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

describe('authorizeCommand', () => {
  it('quotes each key line for the shell and refuses anything but key lines', () => {
    const cmd = authorizeCommand([ED, RSA]);
    expect(cmd).toContain(`'${ED}'`);
    expect(cmd).toContain(`'${RSA}'`);
    expect(() => authorizeCommand([])).toThrow(/no public key/);
    for (const bad of [`${ED}'; touch PWNED; '`, `${ED} $(id)`, 'ssh-dss AAAA x', `${ED}\n${RSA}`, '-----BEGIN OPENSSH PRIVATE KEY-----']) {
      expect(() => authorizeCommand([bad]), bad).toThrow(/not an authorized_keys line/);
    }
  });

  it.each(SHELLS)('in %s: creates ~/.ssh (0700) and authorized_keys (0600), is idempotent, completes a last line without newline', (shell) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-home-'));
    homes.push(home);
    const cmd = authorizeCommand([ED, RSA]);
    runIn(shell, home, cmd);
    const ak = path.join(home, '.ssh', 'authorized_keys');
    expect(fs.statSync(path.join(home, '.ssh')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(ak).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(ak, 'utf8')).toBe(`${ED}\n${RSA}\n`);
    runIn(shell, home, cmd);
    expect(fs.readFileSync(ak, 'utf8')).toBe(`${ED}\n${RSA}\n`);

    // An existing file whose last line has no newline, loose modes: fixed, other keys kept.
    fs.writeFileSync(ak, 'ssh-ed25519 AAAAother admin@laptop');
    fs.chmodSync(ak, 0o644);
    fs.chmodSync(path.join(home, '.ssh'), 0o755);
    runIn(shell, home, cmd);
    expect(fs.readFileSync(ak, 'utf8')).toBe(`ssh-ed25519 AAAAother admin@laptop\n${ED}\n${RSA}\n`);
    expect(fs.statSync(ak).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(home, '.ssh')).mode & 0o777).toBe(0o700);
  });
});
