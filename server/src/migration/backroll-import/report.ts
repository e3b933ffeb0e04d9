/** The import report as text for a terminal (pure). It holds no secret: the report has none. */
import type { ApplyStatus, ImportReport } from './applier.js';

const STATUS: Record<ApplyStatus, string> = {
  created: 'created',
  'would-create': 'would create',
  exists: 'already present, skipped',
  failed: 'FAILED',
  'would-fail': 'would FAIL',
  blocked: 'not created',
};

function fields(f: Record<string, unknown>): string {
  return Object.entries(f)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function formatReport(r: ImportReport): string {
  const lines: string[] = [];
  const head = r.mode === 'dry-run' ? 'Dry run: nothing was written. Run again with --apply to create these resources.' : 'Applied.';
  lines.push(`BackROLL import from ${r.source.location} (${r.source.dialect})`, head);
  for (const n of r.source.schemaNotes) lines.push(`  schema: ${n}`);
  const counts = Object.entries(r.summary)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${STATUS[s as ApplyStatus]}`)
    .join(', ');
  lines.push('', `Mapped (${r.mapped.length}${counts ? `: ${counts}` : ''}):`);
  for (const m of r.mapped) {
    lines.push(`  ${m.kind} "${m.name}": ${STATUS[m.status]}${m.id && m.id !== '(new)' ? ` (id ${m.id})` : ''}${m.detail ? ` — ${m.detail}` : ''}`);
    const f = fields(m.fields);
    if (f) lines.push(`      ${f}`);
    for (const n of m.notes) lines.push(`      · ${n}`);
  }
  lines.push('', `Not mapped (${r.notMapped.length}):`);
  if (r.notMapped.length === 0) lines.push('  nothing');
  for (const n of r.notMapped) lines.push(`  ${n.kind} "${n.name}"${n.field ? ` (${n.field})` : ''}: ${n.reason}`);
  lines.push('', `What to do now (${r.operatorActions.length}):`);
  r.operatorActions.forEach((a, i) => {
    lines.push(`  ${i + 1}. ${a.title}`, `     ${a.detail}`);
    for (const t of a.targets ?? []) lines.push(`       - ${t}`);
    if (a.command) lines.push('     Command:', `       ${a.command}`);
  });
  return `${lines.join('\n')}\n`;
}
