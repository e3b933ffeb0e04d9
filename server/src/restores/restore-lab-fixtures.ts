/**
 * Test-only: VMs and borg repositories for the restore lab tests. The lab's own VMs are never
 * touched (other suites use them concurrently): each scenario clones one into its own directory
 * under the host user's home, with its own name, and removes it afterwards.
 * The repositories follow the backup engine's layout: `<storage>/<vm name>`, archives
 * `<target>_<stem>_<epoch>` (the disk file at its absolute path) and `config_<epoch>`.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runAsHostUser, type Lab, type LabHost } from '../adapters/ssh/test-lab.js';

export const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;
export const SCRIPTS = path.resolve(import.meta.dirname, '..', '..', '..', 'scripts', 'lab');

export function run(cmd: string, argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', ...opts.env }, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export function virshAs(h: LabHost, ...args: string[]): string {
  const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, ...args]);
  if (r.status !== 0) throw new Error(`virsh ${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

export function domState(h: LabHost, uuid: string): string {
  return virshAs(h, 'domstate', '--domain', uuid).trim();
}

export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** sha256 of the guest-visible content: `qemu-img convert -O raw` (follows the backing chain). */
export function rawSha(file: string): string {
  const tmp = path.join(os.tmpdir(), `rst-raw-${randomUUID()}.raw`);
  try {
    run('qemu-img', ['convert', '-U', '-O', 'raw', file, tmp]);
    return sha256File(tmp);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export interface CloneDisk {
  target: string;
  path: string;
  backing: string | null;
}
export interface CloneVm {
  name: string;
  uuid: string;
  dir: string;
  disks: CloneDisk[];
  template: string | null;
}

function uidOf(h: LabHost): { uid: number; gid: number } {
  const st = fs.statSync(h.home);
  return { uid: st.uid, gid: st.gid };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

export function domainXml(l: Lab, name: string, uuid: string, disks: Array<{ target: string; path: string }>): string {
  const d = disks
    .map(
      (x) =>
        `    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='${esc(x.path)}'/>\n      <target dev='${x.target}' bus='virtio'/>\n    </disk>`,
    )
    .join('\n');
  return `<domain type='${l.domainType}'>\n  <name>${esc(name)}</name>\n  <uuid>${uuid}</uuid>\n  <memory unit='MiB'>64</memory>\n  <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  <devices>\n${d}\n  </devices>\n</domain>\n`;
}

/**
 * Clones a lab VM (its disk contents, and for a backing-file VM its own copy of the template)
 * into `<home>/rst-<tag>/`, owned by the host user (mode 0640 to see that it is kept), defines
 * it and starts it if asked.
 */
export function cloneVm(l: Lab, h: LabHost, sourceVm: string, name: string, tag: string, start: boolean): CloneVm {
  const src = h.vms.find((v) => v.name === sourceVm);
  if (!src) throw new Error(`lab has no VM ${sourceVm}`);
  const dir = path.join(h.home, `rst-${tag}`);
  fs.mkdirSync(dir, { recursive: true });
  const own = uidOf(h);
  fs.chownSync(dir, own.uid, own.gid);
  const uuid = randomUUID();
  let template: string | null = null;
  const disks: CloneDisk[] = [];
  for (const d of src.disks) {
    const file = path.join(dir, `${tag}-${d.target}.qcow2`);
    run('cp', ['--sparse=always', d.path, file]);
    let backing: string | null = null;
    if (d.backing) {
      template = path.join(dir, `base-${tag}.qcow2`);
      run('cp', ['--sparse=always', d.backing, template]);
      fs.chownSync(template, own.uid, own.gid);
      fs.chmodSync(template, 0o644);
      run('qemu-img', ['rebase', '-u', '-b', template, '-F', 'qcow2', file]);
      backing = template;
    }
    fs.chownSync(file, own.uid, own.gid);
    fs.chmodSync(file, 0o640);
    disks.push({ target: d.target, path: file, backing });
  }
  const xmlFile = path.join(dir, 'domain.xml');
  fs.writeFileSync(xmlFile, domainXml(l, name, uuid, disks));
  fs.chownSync(xmlFile, own.uid, own.gid);
  virshAs(h, 'define', '--file', xmlFile);
  if (start) virshAs(h, 'start', '--domain', uuid);
  return { name, uuid, dir, disks, template };
}

export function removeVm(h: LabHost, uuid: string): void {
  const r = runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'domstate', '--domain', uuid]);
  if (r.status !== 0) return;
  if (r.stdout.trim() !== 'shut off') runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'destroy', '--domain', uuid]);
  runAsHostUser(h, ['virsh', '-c', h.libvirtUri, 'undefine', '--domain', uuid]);
}

export function removeClone(h: LabHost, vm: CloneVm): void {
  removeVm(h, vm.uuid);
  spawnSync('chattr', ['-R', '-i', vm.dir]);
  fs.rmSync(vm.dir, { recursive: true, force: true });
}

export interface BackupFixture {
  repository: string;
  epoch: number;
  /** Per target: sha256 of the disk file as archived, and of its guest-visible content. */
  fileSha: Record<string, string>;
  rawSha: Record<string, string>;
  sizes: Record<string, number>;
}

/** A restore point as the backup engine writes it, with borg, from the VM's current disks. */
export function backupVm(
  h: LabHost,
  storage: string,
  vm: CloneVm,
  epoch: number,
  opts: { passphrase?: string; config?: boolean } = {},
): BackupFixture {
  const repository = path.join(storage, vm.name);
  const env: Record<string, string> = { BORG_PASSPHRASE: opts.passphrase ?? '', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
  if (!fs.existsSync(repository)) run('borg', ['init', '--encryption', opts.passphrase ? 'repokey' : 'none', repository], { env });
  const fileSha: Record<string, string> = {};
  const raw: Record<string, string> = {};
  const sizes: Record<string, number> = {};
  for (const d of vm.disks) {
    const stem = path.basename(d.path, path.extname(d.path));
    run('borg', ['create', `${repository}::${d.target}_${stem}_${epoch}`, d.path], { env });
    fileSha[d.target] = sha256File(d.path);
    raw[d.target] = rawSha(d.path);
    sizes[d.target] = fs.statSync(d.path).size;
  }
  if (opts.config !== false) {
    const cfg = fs.mkdtempSync(path.join(os.tmpdir(), 'rst-config-'));
    try {
      fs.writeFileSync(path.join(cfg, 'domain.xml'), virshAs(h, 'dumpxml', '--domain', vm.uuid));
      const manifest = {
        vm: { uuid: vm.uuid, name: vm.name, host: h.name },
        disks: vm.disks.map((d) => ({ target: d.target, path: d.path, format: 'qcow2', backingChain: d.backing ? [d.backing] : [], virtualSize: null })),
        epoch,
      };
      fs.writeFileSync(path.join(cfg, 'backroll.json'), JSON.stringify(manifest));
      run('borg', ['create', `${repository}::config_${epoch}`, 'domain.xml', 'backroll.json'], { env, cwd: cfg });
    } finally {
      fs.rmSync(cfg, { recursive: true, force: true });
    }
  }
  return { repository, epoch, fileSha, rawSha: raw, sizes };
}

/** Puts a template where restores look for it: `<storage>/template/<name>` + `.sha256`. */
export function storeTemplate(storage: string, template: string): void {
  const dir = path.join(storage, 'template');
  fs.mkdirSync(dir, { recursive: true });
  const dest = path.join(dir, path.basename(template));
  fs.copyFileSync(template, dest);
  fs.writeFileSync(`${dest}.sha256`, `${sha256File(dest)}  ${path.basename(template)}\n`);
}

/** Changes a disk as the guest would (running VM) or directly (shut-off VM). */
export function scribble(h: LabHost, vm: CloneVm, target: string, running: boolean, byte = '0xee'): void {
  const d = vm.disks.find((x) => x.target === target)!;
  if (running) run(path.join(SCRIPTS, 'write-guest.sh'), [h.user, vm.name, '0', '1M', byte, target]);
  else {
    const st = fs.statSync(d.path);
    run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${byte} 0 1M`, d.path]);
    fs.chownSync(d.path, st.uid, st.gid);
  }
}

export function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('.backroll-'));
}
