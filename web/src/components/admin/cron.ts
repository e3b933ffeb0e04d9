/**
 * Pure helpers of the cron builder: a 5-field cron expression (minute hour
 * day-of-month month day-of-week, the server's syntax: croner in legacy mode)
 * ↔ a builder model, and the schedule in words. The server stays the authority
 * (GET /policies/schedule-preview validates and gives the next runs); these only
 * shape what the operator sees while typing.
 */

export type Frequency = 'hours' | 'daily' | 'weekly' | 'monthly' | 'custom';

export interface CronModel {
  frequency: Frequency;
  /** 0–59 */
  minute: number;
  /** 0–23 (daily, weekly, monthly) */
  hour: number;
  /** every N hours (hours): a divisor-free interval 1–12 */
  everyHours: number;
  /** 0 = Sunday … 6 = Saturday (weekly), sorted, at least one */
  weekdays: number[];
  /** 1–31 (monthly) */
  dayOfMonth: number;
}

export const DEFAULT_MODEL: CronModel = { frequency: 'daily', minute: 0, hour: 2, everyHours: 6, weekdays: [1], dayOfMonth: 1 };

export const WEEKDAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
export const MONTH_NAMES = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
] as const;
const DOW_ALIASES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const MONTH_ALIASES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  aliases?: string[];
  aliasBase?: number;
}
const FIELDS: FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, aliases: MONTH_ALIASES, aliasBase: 1 },
  { name: 'day of week', min: 0, max: 7, aliases: DOW_ALIASES, aliasBase: 0 },
];

/** One part of a field's comma list. */
export interface FieldPart {
  from: number | '*';
  to?: number;
  step?: number;
}

export type FieldParse = { ok: true; parts: FieldPart[] } | { ok: false; message: string };

function parseValue(raw: string, spec: FieldSpec): number | null {
  const upper = raw.toUpperCase();
  if (spec.aliases) {
    const i = spec.aliases.indexOf(upper);
    if (i >= 0) return i + (spec.aliasBase ?? 0);
  }
  if (!/^\d{1,2}$/.test(raw)) return null;
  const n = Number(raw);
  return n >= spec.min && n <= spec.max ? n : null;
}

/** Parses one field (`*`, `*\/n`, `a`, `a-b`, `a-b/n`, comma lists, month and weekday names). */
export function parseField(raw: string, index: number): FieldParse {
  const spec = FIELDS[index]!;
  const parts: FieldPart[] = [];
  if (raw === '') return { ok: false, message: `the ${spec.name} field is empty` };
  for (const item of raw.split(',')) {
    const m = /^([^/]+)(?:\/(\d{1,2}))?$/.exec(item);
    if (!m) return { ok: false, message: `"${item}" is not valid in the ${spec.name} field` };
    const [, range, stepRaw] = m;
    const step = stepRaw === undefined ? undefined : Number(stepRaw);
    if (step !== undefined && step < 1) return { ok: false, message: `the step in "${item}" (${spec.name}) must be at least 1` };
    if (range === '*') {
      parts.push({ from: '*', step });
      continue;
    }
    const [a, b, extra] = range!.split('-');
    if (extra !== undefined) return { ok: false, message: `"${item}" is not valid in the ${spec.name} field` };
    const from = parseValue(a!, spec);
    if (from === null) return { ok: false, message: `"${a}" is out of range for the ${spec.name} field (${spec.min}–${spec.max})` };
    if (b === undefined) {
      parts.push({ from, step });
      continue;
    }
    const to = parseValue(b, spec);
    if (to === null) return { ok: false, message: `"${b}" is out of range for the ${spec.name} field (${spec.min}–${spec.max})` };
    if (to < from) return { ok: false, message: `the range "${item}" (${spec.name}) runs backwards` };
    parts.push({ from, to, step });
  }
  return { ok: true, parts };
}

export type CronCheck = { ok: true; fields: FieldPart[][] } | { ok: false; message: string };

/** Syntax check in the browser (the server gives the final word and the next runs). */
export function checkCron(expr: string): CronCheck {
  const raw = expr.trim().split(/\s+/).filter((f) => f !== '');
  if (raw.length !== 5) {
    return { ok: false, message: `${raw.length} field${raw.length === 1 ? '' : 's'}; a schedule has 5: minute hour day-of-month month day-of-week` };
  }
  const fields: FieldPart[][] = [];
  for (let i = 0; i < 5; i++) {
    const p = parseField(raw[i]!, i);
    if (!p.ok) return p;
    fields.push(p.parts);
  }
  return { ok: true, fields };
}

const isNumber = (s: string | undefined, min: number, max: number): s is string =>
  s !== undefined && /^\d{1,2}$/.test(s) && Number(s) >= min && Number(s) <= max;

/** Weekday list of a day-of-week field made of plain numbers, names and ranges; null when it has steps or is `*`. */
function weekdaysOf(field: string): number[] | null {
  const p = parseField(field, 4);
  if (!p.ok) return null;
  const days = new Set<number>();
  for (const part of p.parts) {
    if (part.from === '*' || part.step !== undefined) return null;
    for (let d = part.from; d <= (part.to ?? part.from); d++) days.add(d % 7);
  }
  return [...days].sort((a, b) => a - b);
}

/**
 * The builder model of an expression, or frequency `custom` (keeping the other
 * fields of `fallback`) when the builder cannot express it.
 */
export function parseCron(expr: string, fallback: CronModel = DEFAULT_MODEL): CronModel {
  const custom: CronModel = { ...fallback, frequency: 'custom' };
  const f = expr.trim().split(/\s+/);
  if (f.length !== 5 || !checkCron(expr).ok) return custom;
  const [mi, h, dom, mon, dow] = f as [string, string, string, string, string];
  if (!isNumber(mi, 0, 59) || mon !== '*') return custom;
  const minute = Number(mi);
  if (dom === '*' && dow === '*') {
    if (h === '*') return { ...fallback, frequency: 'hours', minute, everyHours: 1 };
    const step = /^\*\/(\d{1,2})$/.exec(h);
    if (step && Number(step[1]) >= 1 && Number(step[1]) <= 12) return { ...fallback, frequency: 'hours', minute, everyHours: Number(step[1]) };
    if (isNumber(h, 0, 23)) return { ...fallback, frequency: 'daily', minute, hour: Number(h) };
    return custom;
  }
  if (!isNumber(h, 0, 23)) return custom;
  const hour = Number(h);
  if (dom === '*') {
    const weekdays = weekdaysOf(dow);
    if (weekdays && weekdays.length > 0) return { ...fallback, frequency: 'weekly', minute, hour, weekdays };
    return custom;
  }
  if (dow === '*' && isNumber(dom, 1, 31)) return { ...fallback, frequency: 'monthly', minute, hour, dayOfMonth: Number(dom) };
  return custom;
}

/** Compact weekday field: runs of 3+ consecutive days become ranges (`1-5`). */
function weekdayField(days: number[]): string {
  const sorted = [...new Set(days)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    if (j - i >= 2) out.push(`${sorted[i]}-${sorted[j]}`);
    else for (let k = i; k <= j; k++) out.push(String(sorted[k]));
    i = j + 1;
  }
  return out.join(',');
}

/** The expression of a builder model; null for `custom` (the raw field is the truth then). */
export function buildCron(m: CronModel): string | null {
  switch (m.frequency) {
    case 'hours':
      return `${m.minute} ${m.everyHours === 1 ? '*' : `*/${m.everyHours}`} * * *`;
    case 'daily':
      return `${m.minute} ${m.hour} * * *`;
    case 'weekly':
      return `${m.minute} ${m.hour} * * ${m.weekdays.length > 0 ? weekdayField(m.weekdays) : '*'}`;
    case 'monthly':
      return `${m.minute} ${m.hour} ${m.dayOfMonth} * *`;
    default:
      return null;
  }
}

const pad2 = (n: number) => String(n).padStart(2, '0');
export const clock = (hour: number, minute: number) => `${pad2(hour)}:${pad2(minute)}`;

/** "a, b and c" */
export function joinWords(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

/** Every value a field's parts select (for small fields: hour, minute lists). */
function expand(parts: FieldPart[], min: number, max: number): number[] {
  const set = new Set<number>();
  for (const p of parts) {
    const from = p.from === '*' ? min : p.from;
    const to = p.from === '*' ? max : (p.to ?? (p.step !== undefined ? max : p.from));
    for (let v = from; v <= to; v += p.step ?? 1) set.add(v);
  }
  return [...set].sort((a, b) => a - b);
}

function describeList(parts: FieldPart[], name: (n: number) => string, unit: string): string {
  const words = parts.map((p) => {
    if (p.from === '*') return p.step ? `every ${ordinal(p.step)} ${unit}` : `every ${unit}`;
    const range = p.to !== undefined ? `${name(p.from)} to ${name(p.to)}` : name(p.from);
    return p.step ? `every ${ordinal(p.step)} ${unit} from ${range}${p.to === undefined ? ' on' : ''}` : range;
  });
  return joinWords(words);
}

const weekdayName = (d: number) => WEEKDAY_NAMES[d % 7]!;
const monthName = (m: number) => MONTH_NAMES[m - 1]!;

function isStar(parts: FieldPart[]): boolean {
  return parts.length === 1 && parts[0]!.from === '*' && parts[0]!.step === undefined;
}

/** The time-of-day part of a description. */
function describeTime(minute: FieldPart[], hour: FieldPart[]): string {
  const minutes = expand(minute, 0, 59);
  const hours = expand(hour, 0, 23);
  if (isStar(minute)) {
    return isStar(hour) ? 'every minute' : `every minute during hour${hours.length > 1 ? 's' : ''} ${joinWords(hours.map((h) => pad2(h)))}`;
  }
  if (minute.length === 1 && minute[0]!.from === '*' && minute[0]!.step) {
    const every = `every ${minute[0]!.step} minutes`;
    return isStar(hour) ? every : `${every} during hour${hours.length > 1 ? 's' : ''} ${joinWords(hours.map((h) => pad2(h)))}`;
  }
  if (isStar(hour)) {
    return `every hour at minute${minutes.length > 1 ? 's' : ''} ${joinWords(minutes.map(String))}`;
  }
  if (hour.length === 1 && hour[0]!.from === '*' && hour[0]!.step && minutes.length === 1) {
    return `every ${hour[0]!.step} hours at minute ${minutes[0]} (${joinWords(hours.map((h) => clock(h, minutes[0]!)))})`;
  }
  const times = hours.flatMap((h) => minutes.map((m) => clock(h, m)));
  if (times.length <= 8) return `at ${joinWords(times)}`;
  return `at minute${minutes.length > 1 ? 's' : ''} ${joinWords(minutes.map(String))} of hours ${joinWords(hours.map(String))}`;
}

/**
 * The schedule in words, e.g. "Every day at 02:00", "Every Monday to Friday at 23:30",
 * "Every 6 hours at minute 15 (00:15, 06:15, 12:15 and 18:15)". Null when the
 * expression is not valid.
 */
export function describeCron(expr: string): string | null {
  const check = checkCron(expr);
  if (!check.ok) return null;
  const [minute, hour, dom, month, dow] = check.fields as [FieldPart[], FieldPart[], FieldPart[], FieldPart[], FieldPart[]];
  const time = describeTime(minute, hour);
  const days: string[] = [];
  const domStar = isStar(dom);
  const dowStar = isStar(dow);
  const weekdays = dowStar ? null : weekdaysOf(expr.trim().split(/\s+/)[4]!);
  let dowWords: string | null = null;
  if (!dowStar) {
    if (weekdays && weekdays.join(',') === '1,2,3,4,5') dowWords = 'weekday (Monday to Friday)';
    else if (weekdays && weekdays.join(',') === '0,6') dowWords = 'Saturday and Sunday';
    else if (weekdays) {
      const cons = weekdays.length >= 3 && weekdays[weekdays.length - 1]! - weekdays[0]! === weekdays.length - 1;
      dowWords = cons ? `${weekdayName(weekdays[0]!)} to ${weekdayName(weekdays[weekdays.length - 1]!)}` : joinWords(weekdays.map(weekdayName));
    } else dowWords = describeList(dow, weekdayName, 'day of the week');
  }
  const domWords = domStar ? null : `on the ${describeList(dom, ordinal, 'day')} of the month`;
  if (domWords && dowWords) days.push(`${domWords} or on ${dowWords}`);
  else if (domWords) days.push(domWords);
  else if (dowWords) days.push(`on ${dowWords.replace(/^weekday /, 'weekdays ')}`);
  if (!isStar(month)) days.push(`in ${describeList(month, monthName, 'month')}`);

  let sentence: string;
  if (days.length === 0 && /^at /.test(time)) sentence = `every day ${time}`;
  else if (dowWords && !domWords && /^at /.test(time)) sentence = `every ${dowWords} ${time}${isStar(month) ? '' : ` ${days[days.length - 1]}`}`;
  else sentence = [time, ...days].join(', ');
  return sentence.charAt(0).toUpperCase() + sentence.slice(1);
}

/** Time zones the browser knows (IANA), UTC first. */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const zones = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  return ['UTC', ...zones.filter((z) => z !== 'UTC')];
}

/** A date-time (ISO) shown in a time zone, the same on every browser: "Wed 3 Dec 2026, 02:00". */
export function formatRun(iso: string, timeZone: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  try {
    const parts = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(d);
    const get = (t: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === t)?.value ?? '';
    return `${get('weekday')} ${get('day')} ${get('month')} ${get('year')}, ${get('hour')}:${get('minute')}`;
  } catch {
    return d.toISOString();
  }
}
