import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTar, TarFormatError } from './tar-reader.js';

/** A tar made by GNU tar (the format borg export-tar writes is GNU/ustar too). */
function makeTar(files: Record<string, string | Buffer>, extra: string[] = []): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backroll-tar-'));
  try {
    for (const [name, data] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), data);
    }
    const r = spawnSync('tar', ['-c', ...extra, '-C', dir, ...Object.keys(files)]);
    if (r.status !== 0) throw new Error(r.stderr.toString());
    return r.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('tar reader (pure)', () => {
  it('reads regular files with their exact bytes (multi-byte UTF-8, sizes not multiple of 512, empty)', () => {
    const xml = `<domain><name>vm-é-ü</name>${'x'.repeat(1000)}</domain>`;
    const files = readTar(makeTar({ 'domain.xml': xml, 'backroll.json': '{"a":1}\n', 'empty': '' }));
    expect(files.map((f) => f.path)).toEqual(['domain.xml', 'backroll.json', 'empty']);
    expect(files[0]!.data.toString('utf8')).toBe(xml);
    expect(files[1]!.data.toString()).toBe('{"a":1}\n');
    expect(files[2]!.data.length).toBe(0);
  });

  it('long names (GNU L and pax path) and directories', () => {
    const long = `${'d'.repeat(120)}/${'n'.repeat(80)}.json`;
    expect(readTar(makeTar({ [long]: 'gnu' }, ['--format=gnu'])).map((f) => [f.path, f.data.toString()])).toEqual([[long, 'gnu']]);
    expect(readTar(makeTar({ [long]: 'pax' }, ['--format=pax'])).map((f) => [f.path, f.data.toString()])).toEqual([[long, 'pax']]);
    const withDir = readTar(makeTar({ 'sub/a.txt': 'A' }, ['--format=ustar']));
    expect(withDir.map((f) => f.path)).toEqual(['sub/a.txt']);
  });

  it('refuses a damaged or truncated stream instead of guessing', () => {
    const tar = makeTar({ 'backroll.json': '{"ok":true}' });
    const badSum = Buffer.from(tar);
    badSum[0] = 'X'.charCodeAt(0);
    expect(() => readTar(badSum)).toThrow(TarFormatError);
    expect(() => readTar(tar.subarray(0, 512 + 5))).toThrow(/runs past the end/);
    expect(() => readTar(tar.subarray(0, 1024))).toThrow(/ends without/);
    expect(() => readTar(Buffer.alloc(1024, 0x41))).toThrow(/not a tar header/);
    // A size field that is not octal.
    const badSize = Buffer.from(tar);
    badSize.write('99999999999', 124, 'ascii');
    expect(() => readTar(badSize)).toThrow(TarFormatError);
  });
});
