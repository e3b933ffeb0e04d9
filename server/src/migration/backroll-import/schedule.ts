/**
 * BackROLL policy schedule → Backroll schedule (pure).
 *
 * BackROLL stores a cron string (validated with croniter) and hands its five fields to
 * Celery's `crontab` (RedBeat), in Celery's time zone (Europe/Paris in every BackROLL
 * release). Celery fires when ALL fields match — day of month AND day of week — while
 * Backroll, like classic cron, fires when EITHER restricted day field matches. So a
 * schedule restricting both days is converted exactly only when it is an "n-th weekday"
 * (days 1-7, 8-14, 15-21 or 22-28 with weekdays → `d#n`); otherwise it becomes a schedule
 * that runs on every day BackROLL ran, and more, and the conversion says so.
 */
import { nextRuns } from '../../policies/policy.rules.js';

export type ScheduleConversion =
  | { ok: true; schedule: string; exact: true; notes: string[] }
  | { ok: true; schedule: string; exact: false; notes: string[]; reason: string }
  | { ok: false; reason: string };

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: Record<string, number>;
}

const MONTHS = Object.fromEntries(['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].map((m, i) => [m, i + 1]));
const DAYS = Object.fromEntries(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'].map((d, i) => [d, i]));

const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS },
  // 7 is Sunday too (cron, croniter and BackROLL's `% 7`).
  { name: 'day of week', min: 0, max: 7, names: DAYS },
];

/** croniter's macros, as croniter expands them. */
const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

class FieldError extends Error {}

function value(token: string, spec: FieldSpec): number {
  const t = token.toLowerCase();
  if (spec.names && t in spec.names) return spec.names[t]!;
  if (!/^\d{1,2}$/.test(t)) throw new FieldError(`"${token}" in the ${spec.name} field is not a number${spec.names ? ' or a name' : ''}`);
  const n = Number(t);
  if (n < spec.min || n > spec.max) throw new FieldError(`${n} is out of range for the ${spec.name} field (${spec.min}-${spec.max})`);
  return n;
}

/** The values a standard cron field selects: `*`, `?`, `*\/n`, `a`, `a-b`, `a-b/n`, `a/n`, comma lists. */
function parseField(text: string, spec: FieldSpec): Set<number> {
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d{1,2}))?$/.exec(item);
    if (!m) throw new FieldError(`"${item}" in the ${spec.name} field is not supported`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new FieldError(`step 0 in the ${spec.name} field`);
    // Sunday is 0; 7 is accepted only when written (`5-7`, `7`).
    const top = spec.name === 'day of week' ? 6 : spec.max;
    let lo: number;
    let hi: number;
    if (m[1] === '*' || m[1] === '?') {
      lo = spec.min;
      hi = top;
    } else if (m[1]!.includes('-')) {
      const [a, b, ...rest] = m[1]!.split('-');
      if (rest.length || a === undefined || b === undefined) throw new FieldError(`"${item}" in the ${spec.name} field is not a range`);
      lo = value(a, spec);
      hi = value(b, spec);
      if (hi < lo) throw new FieldError(`range ${item} in the ${spec.name} field goes backwards`);
    } else {
      lo = value(m[1]!, spec);
      hi = m[2] === undefined ? lo : top;
    }
    for (let v = lo; v <= hi; v += step) out.add(spec.name === 'day of week' ? v % 7 : v);
  }
  return out;
}

const isFull = (set: Set<number>, min: number, max: number) => set.size === max - min + 1;

/** The field as Backroll stores it: `*` when it selects everything, names as numbers, `?` as `*`. */
function render(text: string, set: Set<number>, spec: FieldSpec): string {
  const max = spec.name === 'day of week' ? 6 : spec.max;
  if (isFull(set, spec.min, max)) return '*';
  if (!spec.names) return text;
  return text.replace(/[a-z]{3}/gi, (n) => String(spec.names![n.toLowerCase()] ?? n)).replace(/\?/g, '*');
}

/** `1,2,3,5` → `1-3,5`. */
function compact(values: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1) j++;
    parts.push(j - i >= 2 ? `${values[i]}-${values[j]}` : values.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Converts a BackROLL schedule. `timeZone` is only used to check that the result fires
 * (e.g. 30 February never does).
 */
export function convertSchedule(input: string, timeZone: string, now: Date): ScheduleConversion {
  const notes: string[] = [];
  let text = (input ?? '').trim();
  if (text === '') return { ok: false, reason: 'the schedule is empty' };
  const macro = MACROS[text.toLowerCase()];
  if (macro) {
    notes.push(`${text} written as "${macro}"`);
    text = macro;
  } else if (text.startsWith('@')) {
    return { ok: false, reason: `"${text}" is not a time schedule Backroll can run; write a 5-field cron expression` };
  }
  let fields = text.split(/\s+/);
  if (fields.length === 6) {
    // croniter reads a 6th field as seconds; BackROLL gave Celery only the first five.
    notes.push(`the 6th field "${fields[5]}" (seconds, which BackROLL's scheduler ignored) is dropped`);
    fields = fields.slice(0, 5);
  }
  if (fields.length !== 5) return { ok: false, reason: `"${input}" has ${fields.length} fields; expected 5 (minute hour day-of-month month day-of-week)` };

  let sets: Set<number>[];
  try {
    sets = fields.map((f, i) => parseField(f, FIELDS[i]!));
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    return { ok: false, reason: `"${input}" cannot be converted: ${err.message} (only standard cron syntax is, as BackROLL's Celery scheduler read it)` };
  }
  const out = fields.map((f, i) => render(f, sets[i]!, FIELDS[i]!));
  const [dom, dow] = [sets[2]!, sets[4]!];
  const domRestricted = out[2] !== '*';
  const dowRestricted = out[4] !== '*';
  let exact = true;
  let reason = '';
  if (domRestricted && dowRestricted) {
    const days = [...dom].sort((a, b) => a - b);
    const weekdays = [...dow].sort((a, b) => a - b);
    const first = days[0]!;
    if (days.length === 7 && [1, 8, 15, 22].includes(first) && days[6] === first + 6) {
      // Days 8-14 with Monday = the second Monday of the month: croner's `1#2`.
      const nth = (first + 6) / 7;
      out[2] = '*';
      out[4] = weekdays.map((d) => `${d}#${nth}`).join(',');
      notes.push(`days ${first}-${first + 6} with weekdays ${compact(weekdays)} (both must match in BackROLL) written as weekday #${nth} of the month`);
    } else {
      exact = false;
      // Keep the field that fires less often: every run of BackROLL still happens.
      const keepDays = days.length <= (weekdays.length * 31) / 7;
      const before = out.join(' ');
      if (keepDays) out[4] = '*';
      else out[2] = '*';
      reason =
        `BackROLL (Celery) ran "${before}" only on days matching both the day of month (${compact(days)}) and the day of week (${compact(weekdays)}); ` +
        `cron in Backroll runs when either matches, so this cannot be expressed exactly. Converted to "${out.join(' ')}", which runs on every day BackROLL ran ` +
        `and on more (${keepDays ? `days ${compact(days)} whatever the weekday` : `weekdays ${compact(weekdays)} whatever the day of the month`}): review the schedule`;
    }
  }
  const schedule = out.join(' ');
  const runs = nextRuns(schedule, timeZone, now);
  if (!runs.ok) return { ok: false, reason: `"${input}" converted to "${schedule}", which Backroll refuses: ${runs.message}` };
  return exact ? { ok: true, schedule, exact, notes } : { ok: true, schedule, exact, notes, reason };
}
