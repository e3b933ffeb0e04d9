/**
 * The dependency rule, checked rather than remembered: the composition root (`app/`) is
 * imported only by the entry points (`cli/`), adapters import no domain area, and the
 * areas' import graph has no cycle (every area imports only downward).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY_POINTS = new Set(['cli']);
/** What an adapter may import besides other adapters: the leaf modules. */
const ADAPTER_MAY_IMPORT = new Set(['errors', 'clock']);

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return /\.ts$/.test(e.name) && !/\.(spec|test)\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** `backups/naming.ts` → `backups`; `errors.ts` → `errors`. */
function areaOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!.replace(/\.(ts|js)$/, '');
}

function areaGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of sourceFiles(SRC)) {
    const from = areaOf(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
      const to = areaOf(path.resolve(path.dirname(file), m[1]!));
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      edges.set(to, path.relative(SRC, file));
      graph.set(from, edges);
    }
  }
  return graph;
}

/** One cycle of the graph as `a → b → a`, or undefined. */
export function findCycle(graph: Map<string, Map<string, string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const next of graph.get(n)?.keys() ?? []) {
      const c = visit(next);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

describe('layering of server/src', () => {
  const graph = areaGraph();

  it('reads a real import graph (the composition root imports the areas)', () => {
    expect([...(graph.get('app')?.keys() ?? [])]).toEqual(expect.arrayContaining(['backups', 'restores', 'tasks', 'hosts', 'http']));
  });

  it('imports the composition root only from the entry points', () => {
    const offenders = [...graph].filter(([from, to]) => to.has('app') && !ENTRY_POINTS.has(from)).map(([from, to]) => `${to.get('app')} (${from})`);
    expect(offenders).toEqual([]);
  });

  it('keeps adapters free of domain areas', () => {
    const bad = [...(graph.get('adapters') ?? [])].filter(([to]) => !ADAPTER_MAY_IMPORT.has(to)).map(([to, file]) => `${file} → ${to}`);
    expect(bad).toEqual([]);
  });

  it('has no cycle between areas', () => {
    expect(findCycle(graph)?.join(' → ')).toBeUndefined();
  });

  it('finds a cycle when there is one (the checker can fail)', () => {
    const g = new Map([
      ['a', new Map([['b', 'a/x.ts']])],
      ['b', new Map([['c', 'b/y.ts']])],
      ['c', new Map([['a', 'c/z.ts']])],
    ]);
    expect(findCycle(g)).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', new Map([['b', 'a/x.ts']])]]))).toBeUndefined();
  });
});
