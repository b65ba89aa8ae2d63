import type { ScopeMatch } from '../core/memory.ts';
import type { ErrorInfo, Json } from '../core/types.ts';
import type { AuditEntry } from './audit.ts';

/**
 * Schedules' durable state: when each fires next, so fires survive restarts and happen
 * once per cluster. Every write is conditional on the state its caller read, so of
 * several processes deciding the same thing exactly one write takes effect.
 */

/** Fires claimed (next_fire_at already advanced past them) whose envelopes are not yet all accepted. */
export interface ScheduleClaim {
  id: string;
  claimedAt: number;
  /** Fire times, oldest first. */
  fires: number[];
}

export interface ScheduleState {
  id: string;
  /** Digest of what decides the fire times (see `Schedule.spec`). */
  spec: string;
  nextFireAt: number | null;
  lastFireAt: number | null;
  /** Fires whose envelope was accepted. */
  fires: number;
  claim: ScheduleClaim | null;
  /** Heartbeat schedules only (all zero/null for the others). */
  heartbeat: HeartbeatState;
  createdAt: number;
  updatedAt: number;
}

/** A heartbeat's durable state: what it has seen, its streaks, its pause. */
export interface HeartbeatState {
  /** Activity at or after this instant is new to the next fire (null: since the schedule was stored). */
  since: number | null;
  /** The last fire's run, judged (no-op? same output?) before the next fire. */
  run: string | null;
  /** No-op runs in a row, and identical outputs in a row (with the last output's digest). */
  noops: number;
  identical: number;
  digest: string | null;
  /** Idle fires skipped (no turn taken), and the last one. */
  skipped: number;
  skippedAt: number | null;
  /** Set when a streak paused it; only a resume clears it. */
  paused: { at: number; reason: string } | null;
}

/** What a heartbeat's fire changes, written with the claim (and only if the claim wins). */
export interface HeartbeatPatch {
  since: number;
  run: string | null;
  noops: number;
  identical: number;
  digest: string | null;
  /** An idle or busy fire: counted as skipped, at this time. */
  skippedAt?: number;
  /** A streak reached its limit: the heartbeat stops firing until resumed. */
  pause?: string;
}

/** What a heartbeat watches for activity: memory scopes, runs of agents, envelopes on channels. */
export interface ActivityQuery {
  since: number;
  tenant: string;
  scopes: readonly ScopeMatch[];
  agents: readonly string[];
  channels: readonly string[];
  /** The heartbeat's own runs (and what they wrote) are not activity: `heartbeat:<id>`. */
  origin: string;
  /** Its own cron envelopes are not activity either. */
  schedule: string;
}

/** What a finished heartbeat run did, for the no-op and identical-output streaks. */
export interface RunEffects {
  state: string;
  output: Json | null;
  error: ErrorInfo | null;
  /** Effects in its ledger: tool calls, memory writes, outbound messages. */
  effects: number;
  /** Tasks in the run: more than one means it handed off. */
  tasks: number;
}

export interface ScheduleSync {
  id: string;
  spec: string;
  /** Where a new or changed schedule starts. */
  nextFireAt: number | null;
  /** What the spec is, for the audit record (`schedule.created` / `schedule.changed`). */
  describe: Json;
  actor: string;
}

export interface ScheduleStore {
  list(): Promise<ScheduleState[]>;
  get(id: string): Promise<ScheduleState | null>;
  /**
   * Records a configured schedule: a new one is inserted, one whose spec changed gets
   * the new spec and `nextFireAt` (a claim in flight is kept); an unchanged one is left
   * as it is. Audited when something changed. Returns the stored state.
   */
  sync(s: ScheduleSync, now: number): Promise<{ state: ScheduleState; change: 'created' | 'changed' | 'unchanged' }>;
  /**
   * Advances next_fire_at from `expectNextFireAt` to `nextFireAt` and records `claim`
   * (null: nothing to fire), with `audit`, in one transaction — only if next_fire_at is
   * still `expectNextFireAt` and no claim is open. Returns the new state, or null when
   * another process got there first.
   */
  claim(
    c: { id: string; expectNextFireAt: number; nextFireAt: number | null; claim: ScheduleClaim | null; audit: AuditEntry[]; heartbeat?: HeartbeatPatch },
    now: number,
  ): Promise<ScheduleState | null>;
  /**
   * Closes a claim once its fires' envelopes are accepted: counts them, records the last
   * fire time and appends `audit`, only if the claim is still open. False when another
   * process closed it first.
   */
  complete(c: { id: string; claimId: string; fired: number; lastFireAt: number | null; audit: AuditEntry[]; heartbeatRun?: string | null }, now: number): Promise<boolean>;
  /** Whether anything the heartbeat watches happened since `q.since` (its own runs and envelopes aside). */
  activity(q: ActivityQuery): Promise<boolean>;
  /** What a run did (null when it does not exist). */
  runEffects(runId: string): Promise<RunEffects | null>;
  /**
   * Lifts a heartbeat's pause: streaks reset, watermark and next fire set afresh, `audit`
   * appended; only if it is paused. False when it was not (or no longer) paused.
   */
  resume(c: { id: string; nextFireAt: number | null; audit: AuditEntry[] }, now: number): Promise<boolean>;
}
