import { describe, expect, it } from 'vitest';
import { buildTimeline, stepKey } from './timeline';

describe('task timeline', () => {
  it('remembers a disk read as one step, whatever bytes its text reports', () => {
    const seen = [...new Set(['vda: incremental read', 'vda: incremental: 1.0 MiB of 1.0 GiB read (8.0 MiB to read)', 'vda: incremental: 6.0 MiB of 1.0 GiB read (8.0 MiB to read)', 'vdb: full: 0 B of 64 MiB read (64 MiB to read)'].map(stepKey))];
    expect(seen).toEqual(['vda: incremental read', 'vdb: full read']);
    expect(stepKey('vda: borg create')).toBe('vda: borg create');
    expect(stepKey('prune')).toBe('prune');
    const steps = buildTimeline('vm.backup', 'running', seen, []);
    expect(steps.map((s) => `${s.label}:${s.status}`)).toEqual(['Pre-flight:done', 'Snapshot:done', 'Disk vda:done', 'Disk vdb:current', 'Merge:pending', 'Prune:pending', 'Compact:pending']);
  });
});
