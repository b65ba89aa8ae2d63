/**
 * Local wall-clock time in an IANA timezone: one helper for everything that thinks
 * in local days and hours — session resets, policy time windows, daily budgets.
 * Formatters are built once per timezone (they are slow to make, fast to use).
 */

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

export interface LocalTime {
  /** `YYYY-MM-DD`, the local calendar date. */
  date: string;
  day: Day;
  hour: number;
  minute: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function format(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formats.set(tz, f);
  }
  return f;
}

export function isValidTimezone(tz: string): boolean {
  // The default needs no check, and building a formatter reads ICU's timezone and locale
  // data (~10 MB of an idle `spine up` whose config never names a timezone).
  if (tz === 'UTC') return true;
  try {
    format(tz);
    return true;
  } catch {
    return false;
  }
}

/** What a wall clock in `tz` reads at `ms`. */
export function localTime(ms: number, tz: string): LocalTime {
  let year = '';
  let month = '';
  let date = '';
  let day: Day = 'sun';
  let hour = 0;
  let minute = 0;
  for (const p of format(tz).formatToParts(ms)) {
    if (p.type === 'year') year = p.value;
    else if (p.type === 'month') month = p.value;
    else if (p.type === 'day') date = p.value;
    else if (p.type === 'weekday') day = p.value.toLowerCase().slice(0, 3) as Day;
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { date: `${year}-${month}-${date}`, day, hour, minute };
}

const HOUR = 3_600_000;

/** The most recent moment at or before `now` when the local clock in `tz` read `hour`:00. */
export function lastLocalHour(hour: number, tz: string, now: number): number {
  // A local hour:00 lies within the UTC hour before the first whole UTC hour whose local
  // hour is `hour` (offsets with minutes included), so walk back over whole UTC hours
  // from the one after `now`. Up to two days: on a DST day `hour` may not exist at all.
  for (let t = Math.floor(now / HOUR) * HOUR + HOUR, i = 0; i < 50; i++, t -= HOUR) {
    const local = localTime(t, tz);
    if (local.hour !== hour) continue;
    const boundary = t - local.minute * 60_000;
    if (boundary <= now) return boundary;
  }
  return now;
}
