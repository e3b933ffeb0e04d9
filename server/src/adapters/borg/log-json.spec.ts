import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classifyBorgFailure } from './borg.js';
import { CreateProgressTracker, parseBorgLine, type BorgEvent } from './log-json.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const events = (file: string): BorgEvent[] =>
  readFileSync(path.join(dir, file), 'utf8')
    .split('\n')
    .map(parseBorgLine)
    .filter((e): e is BorgEvent => e !== null);

describe('borg --log-json parsing (captured borg 1.2.4 output)', () => {
  it('parses a create run: progress messages and archive progress', () => {
    const ev = events('create-progress.jsonl');
    const progress = ev.filter((e) => e.type === 'archive_progress');
    expect(progress[0]).toMatchObject({ type: 'archive_progress', originalSize: 2860552, compressedSize: 2860555, path: 'tmp/bt/f.bin', finished: false });
    expect(progress.at(-1)).toMatchObject({ finished: true });
    expect(ev.some((e) => e.type === 'progress' && e.msgid === 'cache.begin_transaction')).toBe(true);
  });

  it('turns archive progress into percent of the disk, bytes and rate', () => {
    const t = new CreateProgressTracker(4_000_000);
    expect(t.update({ type: 'archive_progress', originalSize: 1_000_000, compressedSize: 0, deduplicatedSize: 0, nfiles: 0, path: 'x', finished: false, time: 100 })).toMatchObject({
      bytesDone: 1_000_000,
      percent: 25,
      rateBytesPerSecond: null,
    });
    expect(t.update({ type: 'archive_progress', originalSize: 3_000_000, compressedSize: 0, deduplicatedSize: 0, nfiles: 0, path: 'x', finished: false, time: 102 })).toEqual({
      bytesDone: 3_000_000,
      bytesTotal: 4_000_000,
      percent: 75,
      rateBytesPerSecond: 1_000_000,
    });
    expect(t.update({ type: 'archive_progress', originalSize: 0, compressedSize: 0, deduplicatedSize: 0, nfiles: 1, path: null, finished: true, time: 103 })).toBeNull();
  });

  it('keeps non-JSON lines as text and ignores blank ones', () => {
    expect(parseBorgLine('')).toBeNull();
    expect(parseBorgLine('Traceback (most recent call last):')).toEqual({ type: 'text', message: 'Traceback (most recent call last):' });
    expect(parseBorgLine('{"type": "log_message", "levelname": "WARNING", "message": "w", "msgid": null}')).toMatchObject({ type: 'log', level: 'warn', message: 'w' });
  });

  it.each([
    ['lock-timeout.jsonl', 'BORG.REPOSITORY_LOCKED', /break-lock/],
    ['not-found.jsonl', 'BORG.REPOSITORY_NOT_FOUND', /no borg repository/],
    ['passphrase-wrong.jsonl', 'BORG.PASSPHRASE_WRONG', /passphrase/],
    ['no-space.txt', 'STORAGE.FULL', /full/],
  ])('maps %s to %s', (file, code, message) => {
    const raw = readFileSync(path.join(dir, file), 'utf8');
    const err = classifyBorgFailure({ code: 2, stderr: raw }, events(file), { command: 'create', repo: '/backup/vm' });
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('falls back to BORG.FAILED with the error lines', () => {
    const err = classifyBorgFailure({ code: 2, stderr: 'boom' }, [{ type: 'text', message: 'boom' }], { command: 'list', repo: '/r' });
    expect(err.code).toBe('BORG.FAILED');
    expect(err.message).toContain('boom');
  });
});
