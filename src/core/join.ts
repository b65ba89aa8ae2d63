/**
 * Join policy: when the parent of a batch of handoffs (its "lanes") wakes up.
 *
 * - `all`: every lane has finished.
 * - `quorum:N`: N lanes succeeded (or too few can still succeed).
 * - `first`: one lane succeeded (quorum:1).
 * - `race`: one lane finished, whatever its outcome.
 *
 * `onChildFailure: 'fail'` fails the parent when the join can no longer be satisfied:
 * for `all`, any failed lane; for `race`, a first lane that failed; for a quorum, too
 * few lanes left to reach it. `include` (the default) wakes the parent with the failed
 * lanes among its results as `{ok: false, error}`: a lane is never missing.
 * `deadlineMs`: lanes still running then are cancelled as expired lanes, and the join
 * is decided with them counted as failed.
 */

export const JOIN_MODES = ['all', 'quorum', 'first', 'race'] as const;
export type JoinMode = (typeof JOIN_MODES)[number];
export const JOIN_ON_FAILURE = ['include', 'fail'] as const;
export type JoinOnFailure = (typeof JOIN_ON_FAILURE)[number];

/** The policy as configured (`mode` is `all`, `first`, `race` or `quorum:N`). */
export interface JoinPolicy {
  mode: string;
  onChildFailure?: JoinOnFailure;
  deadlineMs?: number;
}

/** The policy compiled: what the store keeps on a waiting parent. */
export interface JoinSpec {
  mode: JoinMode;
  /** Lanes that must succeed (quorum, first); null for all and race. */
  need: number | null;
  onChildFailure: JoinOnFailure;
  deadlineMs: number | null;
}

export const JOIN_MODE_PATTERN = /^(all|first|race|quorum:[1-9][0-9]*)$/;

/** Compiles a join policy; returns a message naming what is wrong instead of throwing. */
export function compileJoin(p: JoinPolicy): JoinSpec | string {
  const m = JOIN_MODE_PATTERN.exec(p.mode);
  if (!m) return `mode must be all, first, race or quorum:N (N ≥ 1), not ${JSON.stringify(p.mode)}`;
  const onChildFailure = p.onChildFailure ?? 'include';
  if (!(JOIN_ON_FAILURE as readonly string[]).includes(onChildFailure)) return `onChildFailure must be include or fail`;
  if (p.deadlineMs !== undefined && !(Number.isInteger(p.deadlineMs) && p.deadlineMs > 0)) return 'deadlineMs must be a positive integer';
  const deadlineMs = p.deadlineMs ?? null;
  if (p.mode.startsWith('quorum:')) return { mode: 'quorum', need: Number(p.mode.slice(7)), onChildFailure, deadlineMs };
  const mode = p.mode as JoinMode;
  return { mode, need: mode === 'first' ? 1 : null, onChildFailure, deadlineMs };
}

/** How a join stands after a lane finished. */
export interface JoinCounts {
  /** Lanes not finished yet. */
  pending: number;
  ok: number;
  failed: number;
  /** Whether the lane that just finished succeeded (race decides on it). */
  lastOk: boolean;
}

/** `wait`: not yet; `met`: the parent wakes; `failed`: the parent fails (onChildFailure fail). */
export type JoinVerdict = 'wait' | 'met' | 'unmet' | 'failed';

/** Decides a join (a pure function of the policy and the counts; the store applies it). A null spec is `all`/`include`. */
export function decideJoin(spec: JoinSpec | null, c: JoinCounts): JoinVerdict {
  const mode = spec?.mode ?? 'all';
  const failHard = spec?.onChildFailure === 'fail';
  switch (mode) {
    case 'all':
      if (failHard && c.failed > 0) return 'failed';
      return c.pending === 0 ? (c.failed > 0 ? 'unmet' : 'met') : 'wait';
    case 'race':
      if (c.ok + c.failed === 0) return 'wait';
      if (c.lastOk) return 'met';
      return failHard ? 'failed' : 'unmet';
    case 'first':
    case 'quorum': {
      const need = spec?.need ?? 1;
      if (c.ok >= need) return 'met';
      if (c.ok + c.pending < need) return failHard ? 'failed' : 'unmet';
      return 'wait';
    }
  }
}
