import { describe, expect, it } from 'vitest';
import { interpreterOf } from '../borg/image-writer.js';
import { readSummary } from '../../backups/incremental.js';
import { checkpointXml, parseNameList, pullBackupXml } from './backup-job.js';

describe('pull-mode backup XML', () => {
  it('names the socket, the scratch files, the incremental checkpoint; escapes', () => {
    const xml = pullBackupXml({ socket: "/vms/.backroll-job-1/nbd.sock", disks: [{ target: 'vda', scratch: "/vms/a'&<b.qcow2" }], excluded: ['vdb'], incremental: 'backroll-0' });
    expect(xml).toContain("<domainbackup mode='pull'>");
    expect(xml).toContain('<incremental>backroll-0</incremental>');
    expect(xml).toContain("<server transport='unix' socket='/vms/.backroll-job-1/nbd.sock'/>");
    expect(xml).toContain("<scratch file='/vms/a&apos;&amp;&lt;b.qcow2'/>");
    expect(xml).toContain("<disk name='vdb' backup='no'/>");
    expect(pullBackupXml({ socket: '/s', disks: [], excluded: [], incremental: null })).not.toContain('incremental');
  });
  it('checkpoint XML: a bitmap per tracked disk', () => {
    const xml = checkpointXml({ name: 'backroll-5', description: 'x<y', targets: ['vda'], excluded: ['hdc'] });
    expect(xml).toContain('<name>backroll-5</name>');
    expect(xml).toContain('<description>x&lt;y</description>');
    expect(xml).toContain("<disk name='vda' checkpoint='bitmap'/>");
    expect(xml).toContain("<disk name='hdc' checkpoint='no'/>");
  });
  it('parses name lists', () => {
    expect(parseNameList('backroll-1\nbackroll-2\n\n')).toEqual(['backroll-1', 'backroll-2']);
  });
});

describe('image writer helpers', () => {
  it('reads the interpreter from a #! line', () => {
    expect(interpreterOf('#!/usr/bin/python3')).toBe('/usr/bin/python3');
    expect(interpreterOf('#! /usr/bin/env python3')).toBe('python3');
    expect(interpreterOf('import sys')).toBeNull();
  });
  it('summarises bytes read', () => {
    expect(readSummary('incremental', 12 * 2 ** 20, 2 ** 30)).toBe('incremental: 12 MiB of 1.0 GiB read');
    expect(readSummary('full', 512, 64 * 2 ** 20)).toBe('full: 512 B of 64 MiB read');
  });
});
