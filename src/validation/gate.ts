import type { CrossingKind } from '../core/crossing.ts';
import type { GateMode } from '../core/states.ts';
import type { Json } from '../core/types.ts';

/**
 * A gate: one validation check in the boundary's `gates` stage, after policy and
 * strictly before the audit and the effect it guards. The validation layer
 * (docs/validation.md) provides the kinds (schema, rule, validator agent, human);
 * the boundary only runs what the registry holds, and decides what a failed check
 * does with `decideOutcome` (outcome.ts).
 */
export interface GateSubject {
  crossing: CrossingKind;
  /** What crosses: the tool, the receiving agent, `channel:to`, the scope/key of a fact… */
  name: string;
  /** The acting agent. */
  agent: string;
  runId: string | null;
  taskId: string | null;
  /** The crossing's place in the run (its effect key). */
  key: string;
  value: Json;
}

/** What a check found. A `fail` may carry a replacement (`fix`), applied when the gate's onFail is `fix`. */
export type GateVerdict =
  | { verdict: 'pass' }
  | { verdict: 'warn'; reasons: string[] }
  | { verdict: 'fail'; reasons: string[]; fix?: Json };

/** What a failed check does: block it, only record it, send the reasons back, apply the fix, or ask a human. */
export const GATE_ON_FAIL = ['block', 'warn', 'reask', 'fix', 'escalate'] as const;
export type GateOnFail = (typeof GATE_ON_FAIL)[number];

export interface GateSettings {
  onFail: GateOnFail;
  /** With onFail `reask`: how often per task the reasons go back before the gate blocks. */
  maxReasks: number;
  /** A check that throws or times out blocks (fail closed) unless this is `warn`. */
  onError: 'block' | 'warn';
  mode: GateMode;
  /** How long the check may take; longer is an error. */
  timeoutMs: number;
  /** Who decides an escalation (human gates, onFail `escalate`). */
  approvers: string;
}

export const DEFAULT_GATE_SETTINGS: GateSettings = { onFail: 'block', maxReasks: 1, onError: 'block', mode: 'enforce', timeoutMs: 30_000, approvers: 'operators' };

export interface Gate {
  readonly id: string;
  readonly on: CrossingKind;
  /** schema, rule, agent or human (for records and `spine gates list`). */
  readonly kind?: string;
  /** Unset fields take DEFAULT_GATE_SETTINGS. */
  readonly settings?: Partial<GateSettings>;
  /** Whether this gate looks at this subject (agent and tool filters). */
  applies(subject: GateSubject): boolean;
  /** The check; `signal` aborts when the gate's timeout passes. */
  check(subject: GateSubject, signal?: AbortSignal): Promise<GateVerdict>;
}

export function gateSettings(gate: Gate): GateSettings {
  return gate.settings ? { ...DEFAULT_GATE_SETTINGS, ...gate.settings } : DEFAULT_GATE_SETTINGS;
}

/** The approval key of a gate's escalation at one crossing. */
export function gateApprovalKey(key: string, gate: string): string {
  return `${key}/gate:${gate}`;
}
