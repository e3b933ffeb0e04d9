import { describe, expect, it } from 'vitest';
import { nodeProcessRunner } from './process-runner.js';

describe('process runner (spawn with argv, no shell)', () => {
  it('passes arguments literally and gives the child only the environment it is given', async () => {
    process.env.BACKROLL_SHOULD_NOT_LEAK = 'secret';
    const r = await nodeProcessRunner.run('sh', ['-c', 'printf "%s|" "$1" "$LANG" "${BACKROLL_SHOULD_NOT_LEAK:-none}" "$X"', 'sh', '$(touch PWNED); `id`'], { env: { X: 'y' } });
    expect(r).toMatchObject({ code: 0, stdout: '$(touch PWNED); `id`|C.UTF-8|none|y|', aborted: false });
  });

  it('streams stderr lines and collects stdout', async () => {
    const lines: string[] = [];
    const r = await nodeProcessRunner.run('sh', ['-c', 'echo a >&2; echo out; printf "b\\nc" >&2; exit 3'], { onStderrLine: (l) => lines.push(l) });
    expect(lines).toEqual(['a', 'b', 'c']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n' });
  });

  it('on abort sends SIGINT first, then SIGTERM after the grace time', async () => {
    const ac = new AbortController();
    // Ignores SIGINT: only the SIGTERM that follows ends it.
    const p = nodeProcessRunner.run('sh', ['-c', 'trap "" INT; echo ready >&2; exec sleep 5'], { signal: ac.signal, killGraceMs: 200, onStderrLine: () => ac.abort() });
    const r = await p;
    expect(r.aborted).toBe(true);
    expect(r.signal).toBe('SIGTERM');
  });

  it('a missing program rejects with ENOENT', async () => {
    await expect(nodeProcessRunner.run('backroll-no-such-program', [])).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
