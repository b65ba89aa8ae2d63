import type { Json } from '../core/types.ts';
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
  createdAt: number;
  updatedAt: number;
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
  claim(c: { id: string; expectNextFireAt: number; nextFireAt: number | null; claim: ScheduleClaim | null; audit: AuditEntry[] }, now: number): Promise<ScheduleState | null>;
  /**
   * Closes a claim once its fires' envelopes are accepted: counts them, records the last
   * fire time and appends `audit`, only if the claim is still open. False when another
   * process closed it first.
   */
  complete(c: { id: string; claimId: string; fired: number; lastFireAt: number | null; audit: AuditEntry[] }, now: number): Promise<boolean>;
}
