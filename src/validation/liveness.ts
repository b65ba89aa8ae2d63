import type { Store } from '../store/store.ts';

/**
 * Deterministic stuck-work detectors (no model involved): what `spine doctor` lists
 * and the worker's stuck-work sweep acts on (validation/stuck.ts). Each finding names
 * the stuck thing, its run, and since when.
 */
export interface LivenessSettings {
  /** A pending approval expiring within this is reported. */
  approvalWarnMs: number;
  /** A run still running after this is reported (null: no SLA). */
  runSlaMs: number | null;
  /** A running task's turn may take this long (its agent's timeout) before it is overdue. */
  turnTimeoutMs: (agent: string) => number;
}

export const LIVENESS_FINDINGS = ['lease-expired', 'turn-overdue', 'join-overdue', 'approval-expiring', 'run-over-sla'] as const;
export type FindingKind = (typeof LIVENESS_FINDINGS)[number];

export interface Finding {
  kind: FindingKind;
  /** The task, approval or run. */
  id: string;
  runId: string;
  /** The task concerned: the stuck task, the one waiting on the approval, or the run's root task. */
  taskId: string;
  agent: string;
  since: number;
  detail: string;
}

/** How many rows of each kind a pass looks at. */
const SCAN = 1_000;
/** A turn outliving its timeout by this much is stuck (the runner aborts it at the timeout itself). */
const TURN_SLACK_MS = 30_000;

const secs = (ms: number) => Math.max(0, Math.round(ms / 1000));

export async function findStuckWork(store: Pick<Store, 'tasks' | 'approvals' | 'runs' | 'stuck'>, now: number, s: LivenessSettings): Promise<Finding[]> {
  const findings: Finding[] = [];
  const { leaseExpired, joinOverdue } = await store.stuck.candidates(now, SCAN);
  for (const t of leaseExpired) {
    findings.push({ kind: 'lease-expired', id: t.id, runId: t.runId, taskId: t.id, agent: t.agent, since: t.since, detail: `${t.agent}'s lease expired ${secs(now - t.since)} s ago without a heartbeat` });
  }
  for (const t of await store.tasks.list({ state: 'running', limit: SCAN })) {
    const limit = s.turnTimeoutMs(t.agent) + TURN_SLACK_MS;
    if (now - t.updatedAt > limit) {
      findings.push({ kind: 'turn-overdue', id: t.id, runId: t.runId, taskId: t.id, agent: t.agent, since: t.updatedAt, detail: `${t.agent} running for ${secs(now - t.updatedAt)} s, past its timeout` });
    }
  }
  for (const t of joinOverdue) {
    findings.push({ kind: 'join-overdue', id: t.id, runId: t.runId, taskId: t.id, agent: t.agent, since: t.since, detail: `${t.agent} waits on its children ${secs(now - t.since)} s past its join deadline` });
  }
  for (const a of await store.approvals.list({ state: 'pending', limit: SCAN })) {
    // The sweep's own escalations are not findings about themselves.
    if (a.ruleId?.startsWith('stuck:')) continue;
    if (a.expiresAt !== null && a.expiresAt - now <= s.approvalWarnMs) {
      findings.push({ kind: 'approval-expiring', id: a.id, runId: a.runId, taskId: a.taskId, agent: a.agent, since: a.requestedAt, detail: `for ${a.approvers}, expires in ${secs(a.expiresAt - now)} s` });
    }
  }
  if (s.runSlaMs !== null) {
    for (const r of await store.runs.list({ state: 'running', limit: SCAN })) {
      if (now - r.createdAt > s.runSlaMs) findings.push({ kind: 'run-over-sla', id: r.id, runId: r.id, taskId: r.rootTaskId, agent: r.agent, since: r.createdAt, detail: `${r.agent} running for ${secs(now - r.createdAt)} s` });
    }
  }
  return findings;
}
