import type { CrossingKind } from '../core/crossing.ts';
import type { Json } from '../core/types.ts';

/**
 * A gate: one validation check in the boundary's `gates` stage, after policy and
 * strictly before the audit and the effect it guards. The validation layer
 * (docs/validation.md) provides the kinds (schema, rule, validator agent, human);
 * the boundary only runs what the registry holds.
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

export type GateVerdict =
  | { verdict: 'pass' }
  | { verdict: 'warn'; reasons: string[] }
  | { verdict: 'block'; reasons: string[] };

export interface Gate {
  readonly id: string;
  readonly on: CrossingKind;
  /** Whether this gate looks at this subject (agent and tool filters). */
  applies(subject: GateSubject): boolean;
  check(subject: GateSubject): Promise<GateVerdict>;
}
