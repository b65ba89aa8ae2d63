/**
 * Law 5: everything that crosses into, out of or between agents passes one
 * boundary, a pipeline of named stages in a fixed order. The kinds of crossing and
 * the stages each passes are declared here once; engine/boundary.ts runs them,
 * docs/architecture.md describes them, and `spine policy explain` prints them.
 */
export const STAGES = ['contract', 'policy', 'gates', 'audit', 'effect'] as const;
export type Stage = (typeof STAGES)[number];

export const CROSSING_STAGES = {
  /** An envelope entering: the receiving agent's input contract (policy governs agents' actions; bindings and token scopes govern who may send). */
  intake: ['contract', 'gates', 'audit', 'effect'],
  /** An agent's own turn: its model spend, reserved against cost ceilings before the call. */
  turn: ['policy', 'audit', 'effect'],
  /** A tool call, before it runs. */
  tool: ['contract', 'policy', 'gates', 'audit', 'effect'],
  /** A tool's result, before it reaches the agent. */
  toolResult: ['contract', 'gates', 'audit'],
  /** A handoff to another agent, before its child task is created. */
  handoff: ['contract', 'policy', 'gates', 'audit', 'effect'],
  /** A child's result, before it joins its parent. */
  handoffResult: ['gates', 'audit'],
  /** A task's final output, before it is committed. */
  output: ['contract', 'gates', 'audit'],
  /** An outbound message (an agent's `deliver`, or a run's reply to its channel), before its outbox row. */
  deliver: ['contract', 'policy', 'gates', 'audit', 'effect'],
  /** A memory write, before the fact is stored. */
  remember: ['contract', 'policy', 'gates', 'audit', 'effect'],
} as const satisfies Record<string, readonly Stage[]>;

export type CrossingKind = keyof typeof CROSSING_STAGES;
export const CROSSING_KINDS = Object.keys(CROSSING_STAGES) as CrossingKind[];

export function hasStage(kind: CrossingKind, stage: Stage): boolean {
  return (CROSSING_STAGES[kind] as readonly Stage[]).includes(stage);
}
