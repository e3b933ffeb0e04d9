/**
 * The extraction step of every restore mode (RestoreEngine.extractTo), with real borg and real
 * files, through a restore to a directory (no VM needed), both ways: a qcow2 image is extracted
 * by borg itself (`--sparse`, into a private directory beside the target, then checked, owned
 * by the worker, mode 0600, linked and fsync'ed); a raw image through the pipe into writeSparse.
 * Either way: the bytes are the archived ones, runs of zeros are holes, the archive's mode
 * (setuid here) and owner are not applied, nothing is left beside the result, progress ends at
 * the size.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BorgReader } from '../adapters/borg/extract.js';
import { localImageTool } from '../adapters/qemu-img/check.js';
import type { TaskContext, TaskProgress } from '../tasks/task-context.js';
import { nodeRestoreFiles } from './restore-files.js';
import { RestoreEngine } from './restore-engine.js';
import { loadSource } from './restore-source.js';

const HAVE_BORG = spawnSync('borg', ['--version']).status === 0;
const MiB = 1024 * 1024;

describe.skipIf(!HAVE_BORG)('restore extraction with real borg (to a directory)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-extract-test-'));
  const repo = path.join(root, 'repo');
  const env = { ...process.env, BORG_BASE_DIR: path.join(root, 'borg'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
  const epoch = 1796000000;
  const image = path.join(root, 'vms', 'disk.img');
  let sha = '';
  const borg = (...argv: string[]) => {
    const r = spawnSync('borg', argv, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`borg ${argv.join(' ')}: ${r.stderr}`);
  };

  beforeAll(() => {
    fs.mkdirSync(path.dirname(image), { recursive: true });
    // 1 MiB of data, 16 MiB of zeros, 1 MiB of data, a short tail: a sparse-able image.
    const data = (n: number, seed: number) => createHash('sha512').update(String(seed)).digest().subarray(0, 64).toString('hex').repeat(Math.ceil(n / 128)).slice(0, n);
    const buf = Buffer.concat([Buffer.from(data(MiB, 1)), Buffer.alloc(16 * MiB), Buffer.from(data(MiB, 2)), Buffer.from('tail')]);
    fs.writeFileSync(image, buf);
    // The archive says setuid and executable: never applied to a restored disk.
    fs.chmodSync(image, 0o4755);
    sha = createHash('sha256').update(buf).digest('hex');
    borg('init', '--encryption=none', repo);
    // Epoch `epoch`: no config archive (format unknown: raw). Epoch `epoch + 1`: backroll.json says qcow2.
    borg('create', `${repo}::vda_disk_${epoch}`, image);
    borg('create', `${repo}::vda_disk_${epoch + 1}`, image);
    const cfg = path.join(root, 'cfg');
    fs.mkdirSync(cfg);
    fs.writeFileSync(path.join(cfg, 'backroll.json'), JSON.stringify({ epoch: epoch + 1, disks: [{ target: 'vda', path: image, format: 'qcow2' }] }));
    const r = spawnSync('borg', ['create', `${repo}::config_${epoch + 1}`, 'backroll.json'], { env, cwd: cfg, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  for (const [label, ep, maxAllocated] of [
    // writeSparse: a hole for every 64 KiB block of zeros.
    ['raw: through the pipe into writeSparse', epoch, 3 * MiB],
    // borg --sparse: holes of whole zero chunks (borg create's chunker: up to 8 MiB).
    ['qcow2: borg extract --sparse into a private directory', epoch + 1, 11 * MiB],
  ] as const) {
    it(`${label}: the archived bytes with holes, mode 0600, owned by the worker, nothing beside it; progress reaches the size`, async () => {
      const reader = new BorgReader({ baseDir: root });
      const access = { repo, passphrase: null, unencrypted: true };
      const rp = { id: randomUUID(), vmId: randomUUID(), storageId: 's', storagePath: root, repository: repo, epoch: ep, originalSize: null };
      const src = await loadSource(reader, access, rp as never);
      expect(src.disks.map((d) => d.format)).toEqual([ep === epoch ? null : 'qcow2']);
      const engine = new RestoreEngine({ borg: reader, images: localImageTool(), files: nodeRestoreFiles, hostExec: () => async () => ({ code: 1, stdout: '', stderr: 'no host' }) });
      const out = path.join(root, `out-${ep}`);
      fs.mkdirSync(out);
      const progress: TaskProgress[] = [];
      const lines: string[] = [];
      const ctx: TaskContext = { taskId: randomUUID(), signal: new AbortController().signal, startedBy: 'user:test', log: async (_l, m) => void lines.push(m), progress: (p) => void progress.push(p) };
      const res = await engine.toDirectory(ctx, src, out);

      const file = path.join(out, 'disk.img');
      expect(res.files).toContain('disk.img');
      expect(createHash('sha256').update(fs.readFileSync(file)).digest('hex')).toBe(sha);
      const st = fs.statSync(file);
      expect(st.size).toBe(18 * MiB + 4);
      expect(st.mode & 0o7777).toBe(0o600);
      expect(st.uid).toBe(process.getuid!());
      // Of the 16 MiB of zeros, at least 8 MiB are holes.
      expect(st.blocks * 512).toBeLessThanOrEqual(maxAllocated);
      expect(fs.readdirSync(out).filter((f) => f !== 'backroll.json')).toEqual(['disk.img']);
      expect(Math.max(...progress.map((p) => p.bytesDone ?? 0))).toBe(18 * MiB + 4);
      expect(lines.some((m) => /extracted 18874372 bytes/.test(m)), lines.join('\n')).toBe(true);
    });
  }
});
