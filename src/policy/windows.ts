import { Cron } from 'croner';
import { DAYS, localTime, type Day } from '../core/zoned-time.ts';

/**
 * Time windows in an IANA timezone. An `allow` window lets actions through only
 * inside it; a `deny` window holds them back inside it (quiet hours). An action
 * outside its window is deferred to the window's next opening, never dropped.
 */

export interface TimeWindow {
  mode: 'allow' | 'deny';
  timezone: string;
  /** Minutes after local midnight. */
  from: number;
  to: number;
  /** Local days the window applies on (all when omitted); for overnight windows, the day it starts. */
  days: readonly Day[] | null;
}

/** `HH:MM` → minutes after midnight, or null. */
export function parseClock(text: string): number | null {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

function localParts(ms: number, tz: string): { day: Day; minute: number } {
  const t = localTime(ms, tz);
  return { day: t.day, minute: t.hour * 60 + t.minute };
}

/** Whether local time `ms` falls inside the window's span (ignoring allow/deny). */
function inside(w: TimeWindow, ms: number): boolean {
  const { day, minute } = localParts(ms, w.timezone);
  if (w.from < w.to) return minute >= w.from && minute < w.to && (w.days === null || w.days.includes(day));
  // Overnight span (e.g. 22:00–07:00): the part after midnight belongs to the day before.
  if (minute >= w.from) return w.days === null || w.days.includes(day);
  if (minute < w.to) {
    const prev = DAYS[(DAYS.indexOf(day) + 6) % 7]!;
    return w.days === null || w.days.includes(prev);
  }
  return false;
}

/** True when an action may proceed at `ms`. */
export function isOpen(w: TimeWindow, ms: number): boolean {
  const within = inside(w, ms);
  return w.mode === 'allow' ? within : !within;
}

/** The next moment at or after `ms` when the window is open. */
export function nextOpening(w: TimeWindow, ms: number): number {
  if (isOpen(w, ms)) return ms;
  // Openings happen at `from` (allow windows) or at `to` (deny windows), local time.
  const boundary = w.mode === 'allow' ? w.from : w.to;
  const cron = new Cron(`${boundary % 60} ${Math.floor(boundary / 60)} * * *`, { timezone: w.timezone, paused: true });
  let at = new Date(ms);
  for (let i = 0; i < 16; i++) {
    const next = cron.nextRun(at);
    if (!next) break;
    if (isOpen(w, next.getTime())) return next.getTime();
    at = next;
  }
  throw new Error(`time window never opens (${JSON.stringify(w)})`);
}
