import type { ErrorInfo, Json } from './types.ts';

/**
 * A brief: the synthesised result of a join (docs/synthesis.md). Its parts are the
 * keys the lanes' claims agree on, each with where it came from; its conflicts are
 * the keys they disagree on, with the candidates, the strategies tried and who
 * decided; its failed lanes are data, never missing. The digest covers all of it
 * except times, so the same inputs and decisions always give the same digest.
 */

export const EVIDENCE_KINDS = ['effect', 'fact', 'url', 'quote'] as const;
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

export interface Evidence {
  kind: EvidenceKind;
  ref: string;
}

/** One claim in an output under contract `spine/claims@1`. */
export interface Claim {
  key: string;
  value: Json;
  confidence?: number;
  evidence: Evidence[];
}

/** Where a claim came from: the lane's agent, task and the turn that produced its output. */
export interface ClaimSource {
  agent: string;
  task: string;
  turn: number;
  /** The first effect the claim cites as evidence (an effects-ledger key). */
  effect?: string;
  confidence?: number;
  evidence: Evidence[];
}

/** How a key's values are compared. */
export type Comparator = { kind: 'equal' } | { kind: 'numeric'; tolerance: number } | { kind: 'set' } | { kind: 'enum'; values: Json[] };

export const KEY_STATUSES = ['agree', 'complementary', 'conflict', 'missing'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

export interface BriefPart {
  key: string;
  status: 'agree' | 'complementary';
  value: Json;
  from: ClaimSource[];
}

export interface Candidate {
  value: Json;
  from: ClaimSource[];
}

export const STRATEGIES = ['priority', 'vote', 'confidence', 'judge', 'human', 'keep-both'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** One strategy of a resolution chain, with its settings. */
export type Strategy =
  | { strategy: 'priority'; order: string[] }
  | { strategy: 'vote' }
  | { strategy: 'confidence'; min: number }
  | { strategy: 'judge'; agent: string }
  | { strategy: 'human'; approvers: string; expiresInMs: number | null }
  | { strategy: 'keep-both' };

/** Who decided a conflict: a rule, an agent's turn (a judge) or a person (an approval). */
export type Decider = { kind: 'rule'; rule: string } | { kind: 'agent'; agent: string; task: string; turn: number } | { kind: 'human'; actor: string; approval: string };

/** decided, or why a strategy passed the conflict on. */
export const RESOLUTION_OUTCOMES = ['decided', 'tie', 'no-match', 'below-min', 'abstained', 'failed', 'denied', 'expired', 'cancelled', 'kept-both'] as const;

/** What a strategy did with a conflict (each attempt is kept, in order). */
export interface ResolutionStep {
  strategy: StrategyName;
  outcome: (typeof RESOLUTION_OUTCOMES)[number];
  note?: string;
}

export interface Conflict {
  key: string;
  candidates: Candidate[];
  /** The rule (pattern) whose chain resolves this key. */
  rule: string;
  /** Index of the chain's strategy in progress. */
  step: number;
  steps: ResolutionStep[];
  /** A judge task or an approval in flight (recorded before anything waits on it, so a resumed hub never asks twice). */
  pending: { judge?: string; approval?: string } | null;
  decision: { strategy: StrategyName; value: Json; decider: Decider } | null;
  /** True when the chain ended without a decision (keep-both or nothing left). */
  unresolved: boolean;
}

export interface FailedLane {
  agent: string;
  task: string;
  error: ErrorInfo;
}

export interface MissingKey {
  key: string;
  /** The failed lanes that could have claimed it. */
  lanes: string[];
}

export const BRIEF_STATES = ['resolving', 'done'] as const;
export type BriefState = (typeof BRIEF_STATES)[number];

export interface BriefBody {
  /** Lanes in the join, and how many carried claims. */
  lanes: number;
  claimed: number;
  parts: BriefPart[];
  conflicts: Conflict[];
  missing: MissingKey[];
  failedLanes: FailedLane[];
}

export interface Brief extends BriefBody {
  id: string;
  runId: string;
  /** The parent task whose join this is, and the turn whose handoffs were joined. */
  taskId: string;
  turn: number;
  agent: string;
  state: BriefState;
  /** Set once done: sha256 of the canonical body. */
  digest: string | null;
  createdAt: number;
  updatedAt: number;
}
