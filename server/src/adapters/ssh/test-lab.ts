/**
 * Test-only: the KVM lab built by scripts/lab/up.sh, described by `<lab dir>/lab.json`.
 * Lab tests use `describe.skipIf(!lab)` so they skip (with the reason in the title) without it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { SshConnectOptions } from './ssh-client.js';

export interface LabDisk {
  target: string;
  path: string;
  format: string;
  backing: string | null;
}
export interface LabVm {
  name: string;
  state: string;
  disks: LabDisk[];
}
export interface LabHost {
  name: string;
  user: string;
  home: string;
  libvirtUri: string;
  vms: LabVm[];
}
export interface Lab {
  sshHost: string;
  sshPort: number;
  hostKeyPath: string;
  clientKeyPath: string;
  canaryFile?: string;
  domainType: string;
  hosts: LabHost[];
}

export const LAB_JSON = path.join(process.env.BACKROLL_LAB_DIR ?? '/var/lib/backroll-lab', 'lab.json');

export function loadLab(): Lab | null {
  if (!existsSync(LAB_JSON)) return null;
  try {
    return JSON.parse(readFileSync(LAB_JSON, 'utf8')) as Lab;
  } catch {
    return null;
  }
}

export const lab = loadLab();
export const labSkipReason = lab ? '' : ` (SKIPPED: no ${LAB_JSON}; build the lab with scripts/lab/up.sh)`;

export function labHost(l: Lab, name: string): LabHost {
  const h = l.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`lab has no host ${name}`);
  return h;
}

export function labConnectOptions(l: Lab, user: string, extra: Partial<SshConnectOptions> = {}): SshConnectOptions {
  return {
    host: l.sshHost,
    port: l.sshPort,
    username: user,
    privateKeys: [readFileSync(l.clientKeyPath)],
    connectTimeoutMs: 10_000,
    ...extra,
  };
}

/** `ssh-keygen -lf <file>` → `SHA256:…` */
export function sshKeygenFingerprint(pubKeyFile: string): string {
  const r = spawnSync('ssh-keygen', ['-lf', pubKeyFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen -lf failed: ${r.stderr}`);
  const fp = r.stdout.split(' ')[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen output: ${r.stdout}`);
  return fp;
}

/**
 * Run argv locally as a lab host user, in the clean environment an SSH login gets (like
 * `as_host` in scripts/lab/lib.sh: otherwise a second session libvirtd could be autostarted).
 * Needs root. No shell involved.
 */
export function runAsHostUser(h: LabHost, argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    'runuser',
    ['-u', h.user, '--', 'env', '-i', `HOME=${h.home}`, `USER=${h.user}`, `LOGNAME=${h.user}`, 'SHELL=/bin/bash', 'PATH=/usr/local/bin:/usr/bin:/bin', 'LC_ALL=C', ...argv],
    { cwd: h.home, encoding: 'utf8' },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function canaryPresent(l: Lab): string[] {
  return l.hosts.map((h) => path.join(h.home, l.canaryFile ?? 'PWNED')).filter((p) => existsSync(p));
}
