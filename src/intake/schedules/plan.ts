import { Cron } from 'croner';
import type { Schedule } from './config.ts';

/**
 * Fire times and catch-up decisions: pure functions of a schedule, its stored next
 * fire time and "now", so every process decides the same thing.
 */

/** The most due fire times enumerated one by one; beyond, the middle is summarised. */
export const ENUMERATE_CAP = 5_000;
/** The most fire times listed in one `schedule.skipped` audit event. */
export const LISTED_CAP = 1_000;

const crons = new WeakMap<Schedule, Cron>();

function cronOf(s: Schedule & { trigger: { kind: 'cron' } }): Cron {
  let c = crons.get(s);
  if (!c) {
    // croner's UTC offset path is ~15x faster than converting through the 'UTC' zone.
    c = new Cron(s.trigger.pattern, s.timezone === 'UTC' ? { utcOffset: 0, paused: true } : { timezone: s.timezone, paused: true });
    crons.set(s, c);
  }
  return c;
}

/** The first fire strictly after `after`, or null (a one-shot is never "after"; a pattern may end). */
export function fireAfter(s: Schedule, after: number): number | null {
  if (s.trigger.kind === 'at') return null;
  if (s.trigger.kind === 'every') return (Math.floor(after / s.trigger.ms) + 1) * s.trigger.ms;
  return cronOf(s as Schedule & { trigger: { kind: 'cron' } }).nextRun(new Date(after))?.getTime() ?? null;
}

/** Where a schedule starts when it is new, re-enabled or changed: its first fire after now. */
export function initialFire(s: Schedule, now: number): number | null {
  if (!s.enabled) return null;
  return s.trigger.kind === 'at' ? s.trigger.at : fireAfter(s, now);
}

/** The `n` most recent fires at or before `upTo`, oldest first. */
function latestFires(s: Schedule, n: number, upTo: number): number[] {
  if (s.trigger.kind === 'at') return s.trigger.at <= upTo ? [s.trigger.at] : [];
  if (s.trigger.kind === 'every') {
    const { ms } = s.trigger;
    const last = Math.floor(upTo / ms) * ms;
    return Array.from({ length: n }, (_, i) => last - (n - 1 - i) * ms).filter((t) => t >= 0);
  }
  return cronOf(s as Schedule & { trigger: { kind: 'cron' } })
    .previousRuns(n, new Date(upTo + 1))
    .map((d) => d.getTime())
    .reverse();
}

export interface SkippedFires {
  /** The skipped fire times (up to LISTED_CAP of them, oldest first). */
  listed: number[];
  /** How many were skipped; null when more than ENUMERATE_CAP were due (not counted). */
  count: number | null;
  first: number;
  last: number;
  reason: string;
}

export interface FirePlan {
  /** Fire times to make envelopes for, oldest first. */
  fire: number[];
  skipped: SkippedFires | null;
  /** The schedule's next fire after this: strictly after now, or null (a spent one-shot). */
  next: number | null;
}

/**
 * Decides what to do with the fires due at `now`, starting at the stored `nextFireAt`.
 * The most recent due fire is on time when it is at most `graceMs` old; every earlier
 * one was missed. Missed fires follow the schedule's catchUp:
 *   skip  the on-time fire only; missed ones are skipped
 *   once  one fire, the most recent (late if need be); the rest are skipped
 *   all   every due fire, the newest `maxCatchUp` of them; older ones are skipped
 */
export function planFires(s: Schedule, nextFireAt: number, now: number, graceMs: number): FirePlan {
  const due: number[] = [];
  let t: number | null = nextFireAt;
  while (t !== null && t <= now && due.length < ENUMERATE_CAP) {
    due.push(t);
    t = fireAfter(s, t);
  }
  let next = t;
  /** Due fires that were neither enumerated nor are in `due` (only when overflowing). */
  let uncounted = false;
  if (t !== null && t <= now) {
    // More due than we enumerate: keep the enumerated head, jump to the most recent ones.
    // One more than may fire, so the last skipped fire is known exactly.
    const keep = (s.catchUp === 'all' ? s.maxCatchUp : 1) + 1;
    const head = due[due.length - 1]!;
    const tail = latestFires(s, keep, now).filter((x) => x > head);
    uncounted = tail.length === 0 || tail[0] !== t;
    due.push(...tail);
    next = fireAfter(s, now);
  }
  if (due.length === 0) return { fire: [], skipped: null, next };
  const latest = due[due.length - 1]!;
  const onTime = now - latest <= graceMs;
  let fire: number[];
  let reason: string;
  switch (s.catchUp) {
    case 'skip':
      fire = onTime ? [latest] : [];
      reason = 'missed (catchUp: skip)';
      break;
    case 'once':
      fire = [latest];
      reason = 'missed (catchUp: once fires only the most recent)';
      break;
    case 'all':
      fire = due.slice(-s.maxCatchUp);
      reason = `missed beyond maxCatchUp ${s.maxCatchUp} (catchUp: all)`;
      break;
  }
  const skippedTimes = due.slice(0, due.length - fire.length);
  if (skippedTimes.length === 0) return { fire, skipped: null, next };
  const counted = !uncounted;
  return {
    fire,
    next,
    skipped: {
      listed: skippedTimes.slice(0, LISTED_CAP),
      count: counted ? skippedTimes.length : null,
      first: skippedTimes[0]!,
      last: skippedTimes[skippedTimes.length - 1]!,
      reason,
    },
  };
}

/** The idempotency key of a schedule's fire: the same in every process, on every retry. */
export function fireKey(scheduleId: string, fireAt: number): string {
  return `cron:${scheduleId}:${new Date(fireAt).toISOString()}`;
}
