import type { Store } from '../store/store.ts';

/**
 * Deterministic stuck-work detectors (no model involved): what `spine doctor` lists.
 * Each finding names the stuck thing, its run, and since when.
 */
export interface LivenessSettings {
  /** A pending approval expiring within this is reported. */
  approvalWarnMs: number;
  /** A run still running after this is reported (null: no SLA). */
  runSlaMs: number | null;
  /** A running task's turn may take this long (its agent's timeout) before it is overdue. */
  turnTimeoutMs: (agent: string) => number;
}

export const LIVENESS_FINDINGS = ['turn-overdue', 'approval-expiring', 'run-over-sla'] as const;

export interface Finding {
  kind: (typeof LIVENESS_FINDINGS)[number];
  /** The task, approval or run. */
  id: string;
  runId: string;
  since: number;
  detail: string;
}

/** How many rows of each kind a pass looks at. */
const SCAN = 1_000;
/** A turn outliving its timeout by this much is stuck (the runner aborts it at the timeout itself). */
const TURN_SLACK_MS = 30_000;

export async function findStuckWork(store: Pick<Store, 'tasks' | 'approvals' | 'runs'>, now: number, s: LivenessSettings): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const t of await store.tasks.list({ state: 'running', limit: SCAN })) {
    const limit = s.turnTimeoutMs(t.agent) + TURN_SLACK_MS;
    if (now - t.updatedAt > limit) {
      findings.push({ kind: 'turn-overdue', id: t.id, runId: t.runId, since: t.updatedAt, detail: `${t.agent} running for ${Math.round((now - t.updatedAt) / 1000)} s, past its timeout` });
    }
  }
  for (const a of await store.approvals.list({ state: 'pending', limit: SCAN })) {
    if (a.expiresAt !== null && a.expiresAt - now <= s.approvalWarnMs) {
      findings.push({ kind: 'approval-expiring', id: a.id, runId: a.runId, since: a.requestedAt, detail: `for ${a.approvers}, expires in ${Math.max(0, Math.round((a.expiresAt - now) / 1000))} s` });
    }
  }
  if (s.runSlaMs !== null) {
    for (const r of await store.runs.list({ state: 'running', limit: SCAN })) {
      if (now - r.createdAt > s.runSlaMs) findings.push({ kind: 'run-over-sla', id: r.id, runId: r.id, since: r.createdAt, detail: `${r.agent} running for ${Math.round((now - r.createdAt) / 1000)} s` });
    }
  }
  return findings;
}
