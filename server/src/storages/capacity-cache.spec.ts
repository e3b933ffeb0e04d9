import { describe, expect, it } from 'vitest';
import type { Capacity, FileSystem } from '../adapters/filesystem.js';
import type { Clock } from '../clock.js';
import { CapacityCache } from './capacity-cache.js';

const cap = (used: number): Capacity => ({ capacityBytes: 100, usedBytes: used, freeBytes: 100 - used });

function fakeFs() {
  const calls: string[] = [];
  let next: () => Promise<Capacity | null> = async () => cap(10);
  const fs: FileSystem = {
    probeWritableDirectory: async () => ({ ok: true }),
    capacity: (dir) => {
      calls.push(dir);
      return next();
    },
  };
  return { fs, calls, set: (f: () => Promise<Capacity | null>) => (next = f) };
}

function clockAt(ms: number) {
  const c = { ms, now: () => new Date(c.ms) };
  return c as Clock & { ms: number };
}

describe('storage capacity cache', () => {
  it('reuses a reading within the TTL and reads again after it', async () => {
    const f = fakeFs();
    const clock = clockAt(Date.parse('2026-12-02T00:00:00Z'));
    const cache = new CapacityCache(f.fs, clock, 60_000, 50);
    expect((await cache.read('/a')).capacity).toEqual(cap(10));
    f.set(async () => cap(20));
    expect((await cache.read('/a')).capacity).toEqual(cap(10));
    expect(f.calls).toEqual(['/a']);
    clock.ms += 60_001;
    const r = await cache.read('/a');
    expect(r.capacity).toEqual(cap(20));
    expect(r.at).toBe(new Date(clock.ms).toISOString());
    expect(f.calls).toEqual(['/a', '/a']);
  });

  it('answers within the timeout when statfs hangs, with the last figures, and never stacks a second statfs', async () => {
    const f = fakeFs();
    const clock = clockAt(Date.parse('2026-12-02T00:00:00Z'));
    const cache = new CapacityCache(f.fs, clock, 1_000, 50);
    await cache.read('/nfs');
    clock.ms += 2_000;
    let release!: (c: Capacity) => void;
    f.set(() => new Promise<Capacity>((resolve) => (release = resolve)));
    const started = Date.now();
    const stale = await cache.read('/nfs');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(stale.capacity).toEqual(cap(10));
    expect(stale.error?.code).toBe('STORAGE.CAPACITY_TIMEOUT');
    clock.ms += 2_000;
    expect((await cache.read('/nfs')).error?.code).toBe('STORAGE.CAPACITY_TIMEOUT');
    expect(f.calls).toHaveLength(2); // the hung call is not repeated
    release(cap(30));
    await new Promise((r) => setImmediate(r));
    const fresh = await cache.read('/nfs');
    expect([fresh.capacity, fresh.error]).toEqual([cap(30), null]);
  });

  it('reports an unreadable path', async () => {
    const f = fakeFs();
    f.set(async () => null);
    const r = await new CapacityCache(f.fs, clockAt(0), 1_000, 50).read('/gone');
    expect([r.capacity, r.error?.code]).toEqual([null, 'STORAGE.CAPACITY_UNREADABLE']);
  });
});
