/** The pure retention selection against a real `borg prune` on archives with faked dates. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Borg, type RepoAccess } from '../adapters/borg/borg.js';
import { archivePrefixes, configArchiveName, diskArchiveName, groupByEpoch } from './naming.js';
import { pruneRestorePoints, selectRetention } from './retention.js';

const borgMissing = spawnSync('borg', ['--version']).status !== 0;

describe.skipIf(borgMissing)(`retention: pure selection = borg prune${borgMissing ? ' (SKIPPED: borg is not installed)' : ''}`, () => {
  let tmp: string;
  let borg: Borg;
  let access: RepoAccess;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-retention-'));
    borg = new Borg({ baseDir: tmp });
    access = { repo: path.join(tmp, 'vm'), unencrypted: true };
    await borg.init(access, 'none');
    fs.writeFileSync(path.join(tmp, 'disk.img'), 'x');
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('keeps exactly the restore points the pure function keeps (daily 3, weekly 2, monthly 2, yearly 1)', async () => {
    // Irregular history over ~14 months, several points some days; two series (disk + config).
    const base = Date.UTC(2025, 0, 3, 22, 30) / 1000;
    const epochs = new Set<number>();
    for (let i = 0; i < 26; i++) epochs.add(base + Math.round(i * i * 0.9 * 86_400 + (i % 3) * 3_600 * 7));
    const sorted = [...epochs].sort((a, b) => a - b);
    for (const epoch of sorted) {
      for (const archive of [diskArchiveName('vda', '/vms/disk.img', epoch), configArchiveName(epoch)]) {
        await borg.create(access, { archive, paths: ['disk.img'], cwd: tmp, compression: 'none', timestamp: new Date(epoch * 1000) });
      }
    }
    const rules = { daily: 3, weekly: 2, monthly: 2, yearly: 1 };
    const expected = selectRetention(sorted.map((e) => ({ id: String(e), time: new Date(e * 1000) })), rules);
    const names = (await borg.list(access)).map((a) => a.name);
    for (const prefix of archivePrefixes(names)) {
      await borg.prune(access, { globArchives: `${prefix}*`, keepDaily: rules.daily, keepWeekly: rules.weekly, keepMonthly: rules.monthly, keepYearly: rules.yearly });
    }
    const left = groupByEpoch((await borg.list(access)).map((a) => a.name));
    // Every kept restore point keeps both archives; the pruned ones lose both.
    expect(left.every((g) => g.archives.length === 2)).toBe(true);
    expect(left.map((g) => String(g.epoch)).sort()).toEqual([...expected.keep.keys()].sort());
    expect(expected.prune.length).toBeGreaterThan(10);
  }, 120_000);

  it('prunes whole restore points when the disk count changed: never a partial restore point left (per-series borg prune leaves some)', async () => {
    // 5 daily backups; the VM had two disks for the first 3, one after.
    const base = Date.UTC(2025, 5, 1, 2, 0) / 1000;
    const epochs = Array.from({ length: 5 }, (_, i) => base + i * 86_400);
    const archivesOf = (epoch: number, i: number) => [diskArchiveName('vda', '/vms/a.img', epoch), ...(i < 3 ? [diskArchiveName('vdb', '/vms/b.img', epoch)] : []), configArchiveName(epoch)];
    const rules = { daily: 2, weekly: 0, monthly: 0, yearly: 0 };
    const make = async (name: string) => {
      const a: RepoAccess = { repo: path.join(tmp, name), unencrypted: true };
      await borg.init(a, 'none');
      for (const [i, epoch] of epochs.entries()) {
        for (const archive of archivesOf(epoch, i)) await borg.create(a, { archive, paths: ['disk.img'], cwd: tmp, compression: 'none', timestamp: new Date(epoch * 1000) });
      }
      return a;
    };
    const complete = (g: { epoch: number; archives: string[] }) => g.archives.join(',') === archivesOf(g.epoch, epochs.indexOf(g.epoch)).sort().join(',');

    const byPoint = await make('by-point');
    const plan = await pruneRestorePoints(borg, byPoint, rules);
    const left = groupByEpoch((await borg.list(byPoint)).map((a) => a.name));
    expect(left.map((g) => g.epoch)).toEqual(epochs.slice(3).reverse());
    expect(plan.keep).toEqual(epochs.slice(3).reverse());
    expect(plan.prune.map((p) => p.epoch)).toEqual(epochs.slice(0, 3).reverse());
    expect(left.filter((g) => !complete(g))).toEqual([]);

    // What the per-series prune did: the vdb series keeps its own 2 newest, epochs whose vda and config are gone.
    const perSeries = await make('per-series');
    const names = (await borg.list(perSeries)).map((a) => a.name);
    for (const prefix of archivePrefixes(names)) await borg.prune(perSeries, { globArchives: `${prefix}*`, keepDaily: rules.daily, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 });
    const partial = groupByEpoch((await borg.list(perSeries)).map((a) => a.name)).filter((g) => !complete(g));
    expect(partial.map((g) => g.epoch)).toEqual(epochs.slice(1, 3).reverse());
  }, 300_000);
});
