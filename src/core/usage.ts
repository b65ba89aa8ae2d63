import type { Usage } from './types.ts';

/**
 * What agents' turns used (tokens and cost, as the agent reported them: an LLM agent
 * from the provider's usage and its model's pricing) and what the run's ceilings
 * reserved and settled. Shown by `spine runs show`, `GET /v1/runs/{id}`,
 * `GET /v1/tasks/{id}` and the `turn.answered` audit event (docs/policy.md, "Spend").
 */

/** One turn's usage. */
export interface TurnUsage {
  taskId: string;
  agent: string;
  turn: number;
  inputTokens: number;
  outputTokens: number;
  /** Null when the agent reported no cost (e.g. a model without pricing). */
  costUsd: number | null;
}

/** Usage summed over turns; `costUsd` sums the turns that reported one (null if none did). */
export interface UsageTotal {
  turns: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
}

/** A run's spend under its ceilings: reserved (held by crossings in flight) and settled (moved to spent). */
export interface RunSpend {
  reservedUsd: number;
  reservedTokens: number;
  settledUsd: number;
  settledTokens: number;
}

/** Usage per turn and summed, with the run's reserved and settled spend. */
export interface RunUsage {
  turns: TurnUsage[];
  total: UsageTotal;
  spend: RunSpend;
}

export function turnUsage(taskId: string, agent: string, turn: number, u: Usage): TurnUsage {
  return { taskId, agent, turn, inputTokens: u.inputTokens ?? 0, outputTokens: u.outputTokens ?? 0, costUsd: u.costUsd ?? null };
}

/** Micro-dollar precision: sums of floats print as 0.30000000000000004 otherwise. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}

export function totalUsage(turns: readonly TurnUsage[]): UsageTotal {
  let cost: number | null = null;
  let input = 0;
  let output = 0;
  for (const t of turns) {
    input += t.inputTokens;
    output += t.outputTokens;
    if (t.costUsd !== null) cost = (cost ?? 0) + t.costUsd;
  }
  return { turns: turns.length, inputTokens: input, outputTokens: output, costUsd: cost === null ? null : roundUsd(cost) };
}

/** `1,204 in / 310 out tokens, $0.0012` */
export function formatUsage(u: { inputTokens: number; outputTokens: number; costUsd: number | null }): string {
  const cost = u.costUsd === null ? 'cost not reported' : `$${u.costUsd.toFixed(u.costUsd < 0.01 ? 6 : 4)}`;
  return `${u.inputTokens.toLocaleString('en')} in / ${u.outputTokens.toLocaleString('en')} out tokens, ${cost}`;
}
