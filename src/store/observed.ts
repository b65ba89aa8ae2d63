/**
 * What the live view reads from the store in one go: the queue per agent, pending
 * approvals, spend against each ceiling and the outbox per channel. Read-only; the
 * metrics gauges and the dashboard's cost and health views use it.
 */
export interface ObservedState {
  /** Non-terminal tasks per agent and state (queue depth is queued + retry-scheduled). */
  tasks: Array<{ agent: string; state: string; count: number }>;
  approvals: { pending: number; oldestRequestedAt: number | null };
  /** Spend budgets touched in the last two days, one row per ceiling key and period. */
  budgets: Array<{ key: string; spentMicros: number; reservedMicros: number; spentTokens: number; reservedTokens: number; updatedAt: number }>;
  /** Open reservations and settled spend per run and agent (the newest runs first). */
  spend: Array<{ runId: string; agent: string; reservedMicros: number; settledMicros: number; settledTokens: number }>;
  outbox: Array<{ channel: string; state: string; count: number }>;
}

export interface ObservedStore {
  snapshot(now: number): Promise<ObservedState>;
}
