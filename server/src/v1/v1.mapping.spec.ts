import { describe, expect, it } from 'vitest';
import { TASK_STATES, isTerminal } from '../tasks/task.state.js';
import { findByName, isoNoOffset, parseQueryId, queryId, restorePointName, taskStatus, toV1ArchiveStats, toV1BackupList } from './v1.mapping.js';

describe('v1 mapping', () => {
  it('times are ISO without offset, microseconds, UTC', () => {
    expect(isoNoOffset(1731090288)).toBe('2024-11-08T18:24:48.000000');
  });

  it('a restore point is named after its first disk archive; config_ never names one', () => {
    expect(restorePointName(['config_1731090288', 'vdb_data_1731090288', 'vda_root_1731090288'])).toBe('vda_root_1731090288');
    expect(restorePointName(['vda_i-2-34-VM_1700000000'])).toBe('vda_i-2-34-VM_1700000000');
    expect(restorePointName(['config_1731090288'])).toBeUndefined();
  });

  it('any archive name of a restore point finds it', () => {
    const rps = [{ id: 'a', archives: ['config_2', 'vda_x_2000000000'] }, { id: 'b', archives: ['vda_x_1000000000', 'vdb_y_1000000000'] }];
    expect(findByName(rps, 'vdb_y_1000000000')?.id).toBe('b');
    expect(findByName(rps, 'config_2')?.id).toBe('a');
    expect(findByName(rps, 'vda_x_3')).toBeUndefined();
  });

  it('lists one entry per restore point; without a repository, empty strings and no archive', () => {
    const list = toV1BackupList(
      [
        { id: 'a', epoch: 2000000000, archives: ['config_2000000000', 'vda_x_2000000000', 'vdb_y_2000000000'] },
        { id: 'b', epoch: 1000000000, archives: ['config_1000000000'] },
      ],
      { location: '/s/vm', id: 'f00', encryption: 'repokey-blake2' },
    );
    expect(list).toEqual({
      archives: [{ archive: 'vda_x_2000000000', barchive: 'vda_x_2000000000', id: 'a', name: 'vda_x_2000000000', start: '2033-05-18T03:33:20.000000', time: '2033-05-18T03:33:20.000000' }],
      encryption: { mode: 'repokey-blake2' },
      repository: { id: 'f00', last_modified: '2033-05-18T03:33:20.000000', location: '/s/vm' },
    });
    expect(toV1BackupList([], null)).toEqual({ archives: [], encryption: { mode: 'none' }, repository: { id: '', last_modified: '', location: '' } });
  });

  it('sizes are integers', () => {
    expect(toV1ArchiveStats({ originalSize: 10.4, compressedSize: 3, deduplicatedSize: 2.6, nfiles: 2 })).toEqual({ original_size: 10, compressed_size: 3, deduplicated_size: 3, nfiles: 2 });
  });

  it('every state that is not an end is PENDING; succeeded is SUCCESS; every other end is FAILURE', () => {
    for (const state of TASK_STATES) {
      const s = taskStatus({ kind: 'vm.restore', state, result: { done: true }, error: state === 'failed' ? { code: 'X', message: 'boom' } : null });
      if (!isTerminal(state)) expect(s).toEqual({ state: 'PENDING', current: 0, total: 1, status: 'Pending...' });
      else if (state === 'succeeded') expect(s).toEqual({ state: 'SUCCESS', info: null });
      else expect(s).toEqual({ state: 'FAILURE', current: 1, total: 1, status: state === 'failed' ? 'boom' : `the task ended ${state}` });
    }
  });

  it('a backup succeeds with its name; a delete with null', () => {
    expect(taskStatus({ kind: 'vm.backup', state: 'succeeded', result: { archives: ['config_5', 'vdb_b_1700000005', 'vda_a_1700000005'] }, error: null })).toEqual({ state: 'SUCCESS', info: 'vda_a_1700000005' });
    expect(taskStatus({ kind: 'restore-point.delete', state: 'succeeded', result: { epoch: 5, archives: ['vda_a_1700000005'] }, error: null })).toEqual({ state: 'SUCCESS', info: null });
  });

  it('a read travels in its status id, and nothing else parses as one', () => {
    const q = { op: 'stats', vm: '7d6f6a1e-0b7c-4c1f-9a43-3f0e8b9f1c2d', name: 'vda_i-2-34-VM_1700000000' } as const;
    expect(queryId(q)).toMatch(/^q1\.[A-Za-z0-9_-]+$/);
    expect(parseQueryId(queryId(q))).toEqual(q);
    expect(parseQueryId(queryId({ op: 'policies' }))).toEqual({ op: 'policies' });
    for (const bad of ['q1.', 'q1.!!', `q1.${Buffer.from('{"op":"drop"}').toString('base64url')}`, `q1.${Buffer.from('{"op":"list"}').toString('base64url')}`, 'd4c2...', '7d6f6a1e-0b7c-4c1f-9a43-3f0e8b9f1c2d']) {
      expect(parseQueryId(bad), bad).toBeUndefined();
    }
  });
});
