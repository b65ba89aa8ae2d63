import { Cron } from 'croner';
import { z } from 'zod';
import { digest } from '../../core/digest.ts';
import type { FieldIssue } from '../../core/errors.ts';
import type { Json } from '../../core/types.ts';
import { isValidTimezone } from '../../core/zoned-time.ts';
import { parseDuration } from '../../policy/duration.ts';
import { compileHeartbeat, heartbeatSchema, type HeartbeatSpec } from './heartbeat.ts';

/**
 * `schedules` in spine.config.json5: cron and one-shot `at` schedules that create
 * envelopes (channel `cron`). See docs/schedules.md.
 *
 *   schedules: {
 *     'morning-brief': { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin', agent: 'commander', text: 'Brief me' },
 *     'launch':        { at: '2026-12-01T09:00:00Z', catchUp: 'once', text: 'Launch checklist' },
 *   }
 */

export const CATCH_UP = ['skip', 'once', 'all'] as const;
export type CatchUp = (typeof CATCH_UP)[number];

/** Default and ceiling of `maxCatchUp`: the most fires `catchUp: 'all'` makes after downtime. */
export const DEFAULT_MAX_CATCH_UP = 100;
export const MAX_CATCH_UP = 1000;

const SCHEDULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export const scheduleSchema = z.strictObject({
  /** A cron pattern (5 fields, or 6 with seconds; nicknames like `@daily`), read in `timezone`. */
  cron: z.string().min(1).max(256).optional(),
  /** A one-shot instant, ISO 8601: with `Z` or an offset, or local time in `timezone`. */
  at: z.string().min(1).max(64).optional(),
  /** A fixed interval (`30m`, `1h`, or ms), at multiples of it since 1970-01-01T00:00Z (every 30m: :00 and :30). */
  every: z.union([z.number().int().positive(), z.string().min(1).max(32)]).optional(),
  /** IANA timezone the pattern (or an offset-less `at`) is read in (default UTC). */
  timezone: z.string().min(1).max(64).optional(),
  /** What to do with fires missed while no process ran (default `skip`). */
  catchUp: z.enum(CATCH_UP).optional(),
  /** With `catchUp: 'all'`: the most missed fires replayed at once (default 100). */
  maxCatchUp: z.number().int().min(1).max(MAX_CATCH_UP).optional(),
  /** Send straight to this agent; otherwise the envelope is routed by the bindings. */
  agent: z.string().min(1).optional(),
  text: z.string().max(1_000_000).optional(),
  data: z.unknown().optional(),
  /** `false` keeps the schedule (and its history) but stops it firing (default true). */
  enabled: z.boolean().optional(),
  /** Makes it a heartbeat (docs/schedules.md): idle fires take no turn, no-op or repeating runs pause it, its runs have a cost ceiling. */
  heartbeat: heartbeatSchema.optional(),
});

export const schedulesSchema = z.record(
  z.string().max(128).regex(SCHEDULE_ID, 'schedule ids start with a letter or digit and use letters, digits, _, . or -'),
  scheduleSchema,
);

export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type SchedulesConfig = z.infer<typeof schedulesSchema>;

export type ScheduleTrigger = { kind: 'cron'; pattern: string } | { kind: 'at'; at: number } | { kind: 'every'; ms: number };

/** The shortest `every`: a second, like the finest cron pattern. */
export const MIN_EVERY_MS = 1_000;

/** One compiled, checked schedule. */
export interface Schedule {
  id: string;
  trigger: ScheduleTrigger;
  timezone: string;
  catchUp: CatchUp;
  maxCatchUp: number;
  agent: string | null;
  text: string;
  data: Json;
  enabled: boolean;
  /** Null: a plain schedule. */
  heartbeat: HeartbeatSpec | null;
  /**
   * Digest of what decides the fire times (pattern and timezone, or the instant, and
   * `enabled`). When it differs from the stored one, the next fire is computed afresh.
   */
  spec: string;
}

export type ScheduleSettings = readonly Schedule[];

/**
 * Checks and compiles `schedules`. Every problem is pushed to `issues` with the path of
 * the bad field (`schedules.<id>.cron`, …). With `agentNames`, an `agent` must be one of them.
 */
export function compileSchedules(raw: SchedulesConfig | undefined, issues: FieldIssue[], agentNames?: readonly string[]): Schedule[] {
  const out: Schedule[] = [];
  for (const [id, cfg] of Object.entries(raw ?? {})) {
    const path = `schedules.${id}`;
    const before = issues.length;
    const timezone = cfg.timezone ?? 'UTC';
    const tzOk = isValidTimezone(timezone);
    if (!tzOk) issues.push({ path: `${path}.timezone`, message: `unknown IANA timezone "${timezone}"` });
    let trigger: ScheduleTrigger | null = null;
    const triggers = [cfg.cron, cfg.at, cfg.every].filter((t) => t !== undefined).length;
    if (triggers !== 1) {
      issues.push({ path: `${path}.cron`, message: 'a schedule has exactly one of cron, at or every' });
    } else if (cfg.every !== undefined) {
      const ms = parseDuration(cfg.every);
      if (ms === null || ms < MIN_EVERY_MS) issues.push({ path: `${path}.every`, message: `not a duration of at least 1s: ${JSON.stringify(cfg.every)} (e.g. 30s, 15m, 4h, 1d, or milliseconds)` });
      else trigger = { kind: 'every', ms };
    } else if (cfg.cron !== undefined) {
      const problem = checkCron(cfg.cron, tzOk ? timezone : 'UTC');
      if (problem) issues.push({ path: `${path}.cron`, message: problem });
      else trigger = { kind: 'cron', pattern: cfg.cron.trim() };
    } else if (cfg.at !== undefined) {
      const at = parseAt(cfg.at, tzOk ? timezone : 'UTC');
      if (typeof at === 'string') issues.push({ path: `${path}.at`, message: at });
      else trigger = { kind: 'at', at };
    }
    if (cfg.maxCatchUp !== undefined && cfg.catchUp !== 'all') {
      issues.push({ path: `${path}.maxCatchUp`, message: "only applies with catchUp: 'all'" });
    }
    if (cfg.agent !== undefined && agentNames && !agentNames.includes(cfg.agent)) {
      issues.push({ path: `${path}.agent`, message: `unknown agent "${cfg.agent}" (known: ${agentNames.join(', ') || 'none'})` });
    }
    let heartbeat: HeartbeatSpec | null = null;
    if (cfg.heartbeat) {
      heartbeat = compileHeartbeat(cfg.heartbeat, `${path}.heartbeat`, issues, agentNames);
      // Its runs are judged and ceilinged as one agent's; routing could hand them to anyone.
      if (cfg.agent === undefined) issues.push({ path: `${path}.agent`, message: 'a heartbeat needs an agent' });
      if (cfg.at !== undefined) issues.push({ path: `${path}.at`, message: 'a heartbeat repeats: use every or cron' });
      if (cfg.catchUp === 'all') issues.push({ path: `${path}.catchUp`, message: "a heartbeat fires at most once at a time: use skip or once" });
    }
    if (issues.length > before || !trigger) continue;
    const enabled = cfg.enabled ?? true;
    out.push({
      id,
      trigger,
      timezone,
      catchUp: cfg.catchUp ?? 'skip',
      maxCatchUp: cfg.maxCatchUp ?? DEFAULT_MAX_CATCH_UP,
      agent: cfg.agent ?? null,
      text: cfg.text ?? '',
      data: (cfg.data ?? null) as Json,
      enabled,
      heartbeat,
      spec: specDigest(trigger, timezone, enabled),
    });
  }
  return out;
}

function specDigest(trigger: ScheduleTrigger, timezone: string, enabled: boolean): string {
  if (trigger.kind === 'every') return digest({ every: trigger.ms, enabled });
  return digest(trigger.kind === 'cron' ? { cron: trigger.pattern, timezone, enabled } : { at: trigger.at, enabled });
}

/** Why a cron pattern cannot be used, or null when it can. */
function checkCron(pattern: string, timezone: string): string | null {
  try {
    const cron = new Cron(pattern.trim(), { timezone, paused: true });
    if (cron.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) return `"${pattern}" never fires`;
    return null;
  } catch (err) {
    const msg = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, '') : String(err);
    return `invalid cron pattern "${pattern}": ${msg}`;
  }
}

const AT_FORMAT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * An `at` instant in epoch ms, or why it is not one. With `Z` or an offset it is
 * absolute; without, it is wall-clock time in `timezone` (a time in a DST gap moves
 * to just after it).
 */
export function parseAt(text: string, timezone: string): number | string {
  const m = AT_FORMAT.exec(text.trim());
  const bad = `not a date and time "${text}": use ISO 8601, e.g. 2026-12-01T09:00:00Z or 2026-12-01T09:00 (read in timezone)`;
  if (!m) return bad;
  const [, y, mo, d, h, mi, s, ms, zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s ?? '0');
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return bad;
  if (zone) {
    const [zh, zm] = zone === 'Z' ? [0, 0] : zone.slice(1).split(':').map(Number);
    if (zh! > 23 || zm! > 59) return bad;
    const t = Date.parse(text.trim());
    return Number.isNaN(t) ? bad : t;
  }
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const local = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}`;
  const fire = new Cron(local, { timezone, paused: true, allowPast: true }).nextRun(new Date(0));
  if (!fire) return bad;
  return fire.getTime() + Number((ms ?? '0').padEnd(3, '0'));
}
