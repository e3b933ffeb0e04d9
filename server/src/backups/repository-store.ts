/**
 * Local side of the storage layout: the repository's owner record, the passphrases,
 * the backing-file (template) store. Runs on the worker, where the backup storage and
 * the VM storage are mounted.
 *
 * Owner record: `<repository>/backroll-vm.json` ({ vmUuid, vmName, encryption, … }).
 * borg 1.2 ignores foreign files in a repository directory (`borg check` stays clean,
 * verified), and the record moves with the repository. A repository without it is an
 * existing BackROLL repository (unencrypted, adopted on first use).
 *
 * Passphrases: one random passphrase per repository (per VM uuid) in
 * `<data dir>/borg-passphrases/<vm uuid>` (0600). Losing the data dir loses the key of
 * encrypted repositories: `backroll key export <vm>` prints it for safekeeping.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Borg, BorgEncryption, RepoAccess } from '../adapters/borg/borg.js';
import { AppError, conflict } from '../errors.js';
import { VERSION } from '../version.js';
import { templatePath } from './naming.js';

export const OWNER_FILE = 'backroll-vm.json';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;

/**
 * Opens a new temporary file in the backup storage (which other machines may write, e.g. over
 * NFS): created by this call (O_EXCL) and never through a symbolic link (O_NOFOLLOW), mode 0600.
 * A leftover at that path (a crashed run, or a planted link) is unlinked, never followed.
 */
export async function openTempFile(file: string): Promise<fs.FileHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fs.open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      await fs.unlink(file);
    }
  }
}

async function writeTempFile(file: string, content: string): Promise<void> {
  const handle = await openTempFile(file);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface RepositoryOwner {
  vmUuid: string;
  vmName: string;
  encryption: BorgEncryption;
  createdAt: string;
  createdBy: string;
  /** Adopted from an existing BackROLL repository. */
  adopted?: boolean;
}

export class RepositoryStore {
  constructor(
    private readonly dataDir: string,
    private readonly borg: Borg,
  ) {}

  private passphraseFile(vmUuid: string): string {
    if (!UUID.test(vmUuid)) throw new AppError('internal', 'BACKUP.BAD_UUID', `not a VM uuid: ${JSON.stringify(vmUuid)}`);
    return path.join(this.dataDir, 'borg-passphrases', vmUuid.toLowerCase());
  }

  async readPassphrase(vmUuid: string): Promise<string | null> {
    try {
      return (await fs.readFile(this.passphraseFile(vmUuid), 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  private async createPassphrase(vmUuid: string): Promise<string> {
    const file = this.passphraseFile(vmUuid);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const pass = randomBytes(32).toString('base64url');
    // wx: never overwrite the key of an existing repository.
    await fs.writeFile(file, `${pass}\n`, { mode: 0o600, flag: 'wx' });
    return pass;
  }

  async readOwner(repo: string): Promise<RepositoryOwner | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(repo, OWNER_FILE), 'utf8')) as RepositoryOwner;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  private async writeOwner(repo: string, owner: RepositoryOwner): Promise<void> {
    const tmp = path.join(repo, `${OWNER_FILE}.tmp`);
    await writeTempFile(tmp, `${JSON.stringify(owner, null, 2)}\n`);
    await fs.rename(tmp, path.join(repo, OWNER_FILE));
  }

  async isRepository(repo: string): Promise<boolean> {
    try {
      const cfg = await fs.readFile(path.join(repo, 'config'), 'utf8');
      return /^\[repository\]/m.test(cfg);
    } catch {
      return false;
    }
  }

  /**
   * The repository's id and encryption as its `config` file and owner record say, without
   * running borg (so without waiting for the lock a running backup holds); null when none.
   */
  async identity(repo: string): Promise<{ id: string; encryption: string } | null> {
    let cfg: string;
    try {
      cfg = await fs.readFile(path.join(repo, 'config'), 'utf8');
    } catch {
      return null;
    }
    if (!/^\[repository\]/m.test(cfg)) return null;
    const owner = await this.readOwner(repo);
    const id = /^id\s*=\s*([0-9a-f]+)\s*$/m.exec(cfg)?.[1] ?? '';
    return { id, encryption: owner?.encryption ?? (/^key\s*=\s*\S/m.test(cfg) ? 'repokey' : 'none') };
  }

  /** True when borg's repository config carries a key (repokey modes). */
  private async hasRepoKey(repo: string): Promise<boolean> {
    const cfg = await fs.readFile(path.join(repo, 'config'), 'utf8');
    return /^key\s*=\s*\S/m.test(cfg);
  }

  /** How to open an existing repository (for listing/info/verify), or null when there is none. */
  async access(repo: string, vmUuid: string | null): Promise<RepoAccess | null> {
    if (!(await this.isRepository(repo))) return null;
    const owner = await this.readOwner(repo);
    if (owner && vmUuid && owner.vmUuid.toLowerCase() !== vmUuid.toLowerCase()) throw ownedByOther(repo, owner, vmUuid);
    const encrypted = owner ? owner.encryption !== 'none' : await this.hasRepoKey(repo);
    const passphrase = encrypted ? await this.readPassphrase(owner?.vmUuid ?? vmUuid ?? '') : null;
    if (encrypted && !passphrase) {
      throw conflict('BACKUP.PASSPHRASE_MISSING', `the repository ${repo} is encrypted and this installation has no passphrase for it (data dir borg-passphrases/)`, { repository: repo });
    }
    return { repo, passphrase, unencrypted: !encrypted };
  }

  /**
   * Opens the VM's repository for a backup, creating it on first use. A repository that
   * records another VM uuid is refused (BACKUP.REPOSITORY_OWNED_BY_OTHER_VM).
   */
  async ensure(repo: string, vm: { uuid: string; name: string }, encryption: BorgEncryption, log: (m: string) => Promise<void>): Promise<RepoAccess> {
    const existing = await this.access(repo, vm.uuid);
    if (existing) {
      const owner = await this.readOwner(repo);
      if (!owner) {
        await this.writeOwner(repo, { vmUuid: vm.uuid, vmName: vm.name, encryption: existing.unencrypted ? 'none' : 'repokey-blake2', createdAt: new Date().toISOString(), createdBy: `Backroll ${VERSION}`, adopted: true });
        await log(`adopted the existing repository ${repo} (no Backroll owner record: a BackROLL repository)`);
      } else if ((owner.encryption === 'none') !== (encryption === 'none')) {
        await log(`the repository is ${owner.encryption === 'none' ? 'unencrypted' : 'encrypted'} although the policy now says ${encryption}: encryption is chosen when a repository is created`);
      }
      return existing;
    }
    let entries: string[] = [];
    try {
      entries = await fs.readdir(repo);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (entries.length > 0) {
      throw conflict('BACKUP.REPOSITORY_INVALID', `${repo} exists but is not a borg repository: move it away or rename the VM`, { repository: repo });
    }
    const passphrase = encryption === 'none' ? null : ((await this.readPassphrase(vm.uuid)) ?? (await this.createPassphrase(vm.uuid)));
    const access: RepoAccess = { repo, passphrase, unencrypted: encryption === 'none' };
    await this.borg.init(access, encryption);
    await this.writeOwner(repo, { vmUuid: vm.uuid, vmName: vm.name, encryption, createdAt: new Date().toISOString(), createdBy: `Backroll ${VERSION}` });
    await log(`created the repository ${repo} (encryption ${encryption})`);
    return access;
  }

  /**
   * Stores a backing file once under `<storage>/template/<name>` with `<name>.sha256`:
   * copied to `.tmp` while hashed, compared with a hash of the source, then renamed.
   * Same name, other content: BACKUP.TEMPLATE_CONFLICT (never overwritten).
   */
  async storeTemplate(storagePath: string, source: string, signal?: AbortSignal): Promise<{ path: string; sha256: string; copied: boolean }> {
    const dest = templatePath(storagePath, source);
    await fs.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
    const sourceHash = await sha256File(source, signal);
    const existing = await fs.readFile(`${dest}.sha256`, 'utf8').then((s) => s.split(/\s+/)[0] ?? '', () => null);
    const destExists = await fs.stat(dest).then(() => true, () => false);
    if (existing !== null && destExists) {
      if (existing === sourceHash) return { path: dest, sha256: sourceHash, copied: false };
      throw conflict('BACKUP.TEMPLATE_CONFLICT', `another backing file named ${path.basename(dest)} is already stored in ${path.dirname(dest)} (different checksum); it is never overwritten`, { template: dest });
    }
    const tmp = `${dest}.tmp`;
    const hash = createHash('sha256');
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(createReadStream(source), tap, (await openTempFile(tmp)).createWriteStream(), { signal });
      const copied = hash.digest('hex');
      if (copied !== sourceHash) throw new AppError('conflict', 'BACKUP.TEMPLATE_CHANGED', `the backing file ${source} changed while it was copied`, { source });
      const check = await sha256File(tmp, signal);
      if (check !== sourceHash) throw new AppError('internal', 'BACKUP.TEMPLATE_CORRUPT', `the copy of ${source} does not match its checksum`, { source });
      await fs.rename(tmp, dest);
      await writeTempFile(`${dest}.sha256.tmp`, `${sourceHash}  ${path.basename(dest)}\n`);
      await fs.rename(`${dest}.sha256.tmp`, `${dest}.sha256`);
      return { path: dest, sha256: sourceHash, copied: true };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }
}

export function ownedByOther(repo: string, owner: RepositoryOwner, vmUuid: string): AppError {
  return conflict(
    'BACKUP.REPOSITORY_OWNED_BY_OTHER_VM',
    `the repository ${repo} belongs to another VM (uuid ${owner.vmUuid}, named ${JSON.stringify(owner.vmName)}) than ${vmUuid}: rename one of the two VMs (virsh domrename; each VM name has its own <storage>/<vm name> repository), or, if VM ${owner.vmUuid} is gone for good, move ${repo} away`,
    { repository: repo, ownerUuid: owner.vmUuid, vmUuid },
  );
}

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
