/**
 * deploy/systemd: the units are linted with Debian's `systemd-analyze verify` against a
 * root laid out as install.sh lays it out (the machines here run no systemd), and the
 * environment file names only variables Backroll reads.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config/config.js';

const DEPLOY = path.resolve(import.meta.dirname, '../../../deploy/systemd');
const UNITS = ['backroll.service', 'backroll-worker@.service'];
const SYSTEM_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => fs.existsSync(path.join(d, 'sysinit.target')));

/** A root with systemd's own units and the files the units reference (as install.sh creates them). */
function fakeRoot(units: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-systemd-'));
  fs.cpSync(SYSTEM_UNITS!, path.join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  fs.mkdirSync(path.join(root, 'opt/backroll/node/bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'opt/backroll/node/bin/node'), '#!/bin/sh\n', { mode: 0o755 });
  fs.mkdirSync(path.join(root, 'opt/backroll/server/bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'opt/backroll/server/bin/backroll.js'), '');
  fs.mkdirSync(path.join(root, 'etc/backroll'), { recursive: true });
  fs.copyFileSync(path.join(DEPLOY, 'backroll.env.example'), path.join(root, 'etc/backroll/backroll.env'));
  fs.mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  for (const [name, text] of Object.entries(units)) fs.writeFileSync(path.join(root, 'etc/systemd/system', name), text);
  return root;
}

function verify(root: string, names: string[]): { status: number | null; output: string } {
  const res = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', `--root=${root}`, ...names.map((n) => path.join(root, 'etc/systemd/system', n))], {
    encoding: 'utf8',
  });
  if (res.error) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}`.trim() };
}

describe('systemd units', () => {
  const texts = Object.fromEntries(UNITS.map((u) => [u, fs.readFileSync(path.join(DEPLOY, u), 'utf8')]));
  const roots: string[] = [];
  beforeAll(() => {
    // CI installs Debian's systemd package (scripts/ci/services.sh): its absence is a failure, not a skip.
    expect(SYSTEM_UNITS, 'systemd unit directory (Debian package systemd)').toBeDefined();
  });
  afterAll(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  it('pass systemd-analyze verify with no warning', () => {
    const root = fakeRoot(texts);
    roots.push(root);
    expect(verify(root, UNITS)).toEqual({ status: 0, output: '' });
  });

  it('the lint catches a misspelt directive and a missing executable (it can fail)', () => {
    const bad = texts['backroll.service']!.replace('NoNewPrivileges=yes', 'NoNewPrivileges=yes\nProtectSytem=strict').replace('/opt/backroll/node/bin/node', '/opt/backroll/nodejs/bin/node');
    const root = fakeRoot({ 'backroll.service': bad });
    roots.push(root);
    const res = verify(root, ['backroll.service']);
    expect(res.output).toContain("Unknown key 'ProtectSytem'");
    expect(res.output).toMatch(/nodejs\/bin\/node is not executable/);
  });

  it.each(UNITS)('%s runs as the backroll user with the hardening settings', (unit) => {
    const t = texts[unit]!;
    for (const line of ['User=backroll', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=', 'ReadWritePaths=/var/lib/backroll', 'EnvironmentFile=/etc/backroll/backroll.env', 'UMask=0077']) {
      expect(t.split('\n'), `${unit}: ${line}`).toContain(line);
    }
  });

  it('start the roles each unit is for', () => {
    expect(texts['backroll.service']).toMatch(/^ExecStart=.* start --roles api,scheduler$/m);
    expect(texts['backroll-worker@.service']).toMatch(/^ExecStart=.* start --roles worker$/m);
  });

  it('the environment file sets only variables Backroll reads', () => {
    const env = fs.readFileSync(path.join(DEPLOY, 'backroll.env.example'), 'utf8');
    const names = [...env.matchAll(/^#?(BACKROLL_[A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(5);
    expect(names.filter((n) => !(n in CONFIG_VARIABLES))).toEqual([]);
  });
});
