import { describe, expect, it } from 'vitest';
import { exitCodeForTaskState, formatBytes, progressLine, readSummary, table } from './format.js';

describe('client formatting', () => {
  it('formats byte counts', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatBytes(null)).toBe('?');
  });
  it('draws a progress line with percent, bytes, rate and step', () => {
    const line = progressLine('running', { percent: 50, bytesDone: 512 * 1024 ** 2, bytesTotal: 1024 ** 3, rateBytesPerSecond: 100 * 1024 ** 2, step: 'vda: borg create' }, 10);
    expect(line).toBe('[#####-----]   50.0%  512.0 MiB / 1.0 GiB  100.0 MiB/s  running  vda: borg create');
    expect(progressLine('queued', { percent: null, bytesDone: null, bytesTotal: null, rateBytesPerSecond: null, step: null }, 4)).toBe('[----]     ?    queued');
    expect(progressLine('running', { percent: null, bytesDone: 25, bytesTotal: 100, rateBytesPerSecond: null, step: null }, 4)).toContain('25.0%');
  });
  it('says how a restore point was read', () => {
    const MiB = 1024 ** 2;
    expect(readSummary({ mode: 'incremental', bytesToRead: 12 * MiB, bytesRead: 12 * MiB, fullReason: null, diskSize: 1024 * MiB })).toBe('incremental: 12.0 MiB of 1.0 GiB read');
    expect(readSummary({ mode: 'full', bytesToRead: 1024 * MiB, bytesRead: 1000 * MiB, fullReason: 'periodic full read (30 days)', diskSize: 1024 * MiB })).toBe('full: 1000.0 MiB of 1.0 GiB read (periodic full read (30 days))');
    expect(readSummary({ mode: 'full', bytesToRead: null, bytesRead: 5 * MiB, fullReason: null, diskSize: null })).toBe('full: 5.0 MiB read');
    expect(readSummary({ mode: null, bytesToRead: null, bytesRead: null, fullReason: null, diskSize: 1024 * MiB })).toBe('—');
    expect(readSummary(undefined)).toBe('—');
  });
  it('prints tables without terminal escapes', () => {
    expect(table(['NAME', 'STATE'], [['evil\u001b[2J', 'running']])).toBe('NAME      STATE\nevil?[2J  running');
  });
  it('maps task outcomes to exit codes', () => {
    expect(exitCodeForTaskState('succeeded')).toBe(0);
    expect(exitCodeForTaskState('failed')).toBe(1);
    expect(exitCodeForTaskState('partial')).toBe(1);
    expect(exitCodeForTaskState('canceled')).toBe(3);
  });
});
