// Log level → colour (readable on light and dark backgrounds) and label.
export const LEVEL_COLORS: Record<string, string> = {
  error: '#e5484d',
  fatal: '#e5484d',
  warn: '#d6891a',
  warning: '#d6891a',
  debug: '#8b8d98',
  trace: '#8b8d98',
};

export function levelColor(level: string): string | undefined {
  return LEVEL_COLORS[level.toLowerCase()];
}

export function levelLabel(level: string): string {
  const l = level.toLowerCase();
  return l === 'warning' ? 'WARN' : l.toUpperCase().slice(0, 5);
}

/** Splits text around case-insensitive matches of `query`, for highlighting. */
export function splitMatches(text: string, query: string): { text: string; match: boolean }[] {
  if (!query) return [{ text, match: false }];
  const out: { text: string; match: boolean }[] = [];
  const hay = text.toLowerCase();
  const needle = query.toLowerCase();
  let from = 0;
  for (;;) {
    const at = hay.indexOf(needle, from);
    if (at === -1) break;
    if (at > from) out.push({ text: text.slice(from, at), match: false });
    out.push({ text: text.slice(at, at + needle.length), match: true });
    from = at + needle.length;
  }
  if (from < text.length) out.push({ text: text.slice(from), match: false });
  return out;
}
