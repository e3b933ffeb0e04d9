import { describe, expect, it } from 'vitest';
import { RateMeter } from './progress-rate.js';

const MiB = 1024 ** 2;

describe('RateMeter', () => {
  it('measures bytes over time per segment; a new total or bytes going back start a new segment', () => {
    const m = new RateMeter();
    expect(m.measure({ bytesDone: 0, bytesTotal: 100 * MiB, step: 'vda: incremental: 0 B of 1.0 GiB read' }, 0)).toBeUndefined();
    expect(m.measure({ bytesDone: 5 * MiB, bytesTotal: 100 * MiB }, 500)).toBeUndefined(); // under a second: not yet
    expect(m.measure({ bytesDone: 20 * MiB, bytesTotal: 100 * MiB }, 2000)).toBe(10 * MiB);
    expect(m.measure({ bytesDone: 40 * MiB }, 4000)).toBe(10 * MiB); // total omitted: same segment
    // Next disk: another total.
    expect(m.measure({ bytesDone: 0, bytesTotal: 8 * MiB }, 5000)).toBeUndefined();
    expect(m.measure({ bytesDone: 8 * MiB, bytesTotal: 8 * MiB }, 7000)).toBe(4 * MiB);
    // Bytes going back (same total): a new segment too.
    expect(m.measure({ bytesDone: 1 * MiB, bytesTotal: 8 * MiB }, 8000)).toBeUndefined();
    expect(m.measure({ bytesDone: 3 * MiB, bytesTotal: 8 * MiB }, 10000)).toBe(1 * MiB);
  });

  it('stays out once the handler reports rates itself, and without bytes', () => {
    const m = new RateMeter();
    expect(m.measure({ percent: 10, step: 'pre-flight' }, 0)).toBeUndefined();
    expect(m.measure({ bytesDone: 512, bytesTotal: 1024, rateBytesPerSecond: 2048 }, 0)).toBeUndefined();
    expect(m.measure({ bytesDone: 1024 }, 5000)).toBeUndefined();
  });
});
