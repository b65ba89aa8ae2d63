import { z } from 'zod';
import type { FieldIssue } from '../core/issues.ts';
import { parseDuration } from '../policy/duration.ts';
import type { NewApproval, Store } from '../store/store.ts';
import { findStuckWork, type Finding, type FindingKind, type LivenessSettings } from './liveness.ts';

/**
 * The stuck-work sweep (docs/health.md): the detectors of validation/liveness.ts run
 * on the worker's reaper tick; each new finding is recorded once per subject with a
 * `stuck.<kind>` audit event, and its detector's action applies: `report` (the event
 * only), `escalate` (an approval for an operator) or `cancel` (the normal cancel path).
 */
export const STUCK_ACTIONS = ['report', 'escalate', 'cancel'] as const;
export type StuckAction = (typeof STUCK_ACTIONS)[number];

const action = z.enum(STUCK_ACTIONS);
const duration = z.union([z.string(), z.number()]);
export const stuckSchema = z.strictObject({
  /** A leased task whose lease expired without a heartbeat (its worker died or hangs). */
  leaseExpired: action.optional(),
  /** A running task past its agent's timeout. */
  overTimeout: action.optional(),
  /** A parent waiting on its children past its join deadline. */
  joinOverdue: action.optional(),
  /** A pending approval expiring within `within` (default 15m). */
  approvalExpiring: z.union([action, z.strictObject({ within: duration.optional(), action: action.optional() })]).optional(),
  /** A run still running `after` its start (no SLA unless set). */
  runSla: z.union([duration, z.strictObject({ after: duration, action: action.optional() })]).optional(),
  /** Who the escalations go to (default `operators`). */
  approvers: z.string().min(1).optional(),
});
export type StuckConfig = z.infer<typeof stuckSchema>;

/** The config's `health` section. */
export const healthSchema = z.strictObject({
  stuck: stuckSchema.optional(),
});

export interface StuckSettings {
  actions: Record<FindingKind, StuckAction>;
  approvalWarnMs: number;
  runSlaMs: number | null;
  approvers: string;
}

export const DEFAULT_APPROVAL_WARN_MS = 900_000;

function ms(value: string | number | undefined, path: string, fallback: number, issues: FieldIssue[]): number {
  if (value === undefined) return fallback;
  const v = parseDuration(value);
  if (v === null) issues.push({ path, message: `not a duration: ${String(value)} (e.g. 30s, 10m, 2h)` });
  return v ?? fallback;
}

/** The sweep's settings, or null when `health.stuck` is not configured (doctor still lists findings). */
export function compileStuck(cfg: StuckConfig | undefined, issues: FieldIssue[], path = 'health.stuck'): StuckSettings | null {
  if (!cfg) return null;
  const ae = typeof cfg.approvalExpiring === 'string' ? { action: cfg.approvalExpiring } : (cfg.approvalExpiring ?? {});
  const sla = typeof cfg.runSla === 'object' ? cfg.runSla : cfg.runSla === undefined ? null : { after: cfg.runSla };
  return {
    actions: {
      'lease-expired': cfg.leaseExpired ?? 'report',
      'turn-overdue': cfg.overTimeout ?? 'report',
      'join-overdue': cfg.joinOverdue ?? 'report',
      'approval-expiring': ae.action ?? 'report',
      'run-over-sla': sla?.action ?? 'report',
    },
    approvalWarnMs: ms(ae.within, `${path}.approvalExpiring.within`, DEFAULT_APPROVAL_WARN_MS, issues),
    runSlaMs: sla ? ms(sla.after, `${path}.runSla${typeof cfg.runSla === 'object' ? '.after' : ''}`, 0, issues) : null,
    approvers: cfg.approvers ?? 'operators',
  };
}

export interface SweepReport {
  findings: Finding[];
  /** Those seen for the first time by this sweep (recorded, evented, acted on). */
  raised: Array<Finding & { action: StuckAction }>;
}

/**
 * One sweep: every finding not recorded before gets its event and its action. Any
 * number of workers may sweep at once: the record is claimed per (kind, subject) in
 * the store, so one of them raises it. The cancel runs after the record commits; a
 * crash between the two leaves the event without the cancel (the operator sees it).
 */
export async function sweepStuck(
  store: Pick<Store, 'tasks' | 'approvals' | 'runs' | 'stuck'>,
  s: StuckSettings,
  liveness: Pick<LivenessSettings, 'turnTimeoutMs'>,
  now: number,
  actor: string,
): Promise<SweepReport> {
  const findings = await findStuckWork(store, now, { approvalWarnMs: s.approvalWarnMs, runSlaMs: s.runSlaMs, turnTimeoutMs: liveness.turnTimeoutMs });
  const raised: SweepReport['raised'] = [];
  for (const f of findings) {
    const act = s.actions[f.kind];
    const approval: NewApproval | null =
      act === 'escalate'
        ? {
            runId: f.runId,
            taskId: f.taskId,
            agent: f.agent,
            actionKey: `stuck/${f.kind}/${f.id}`,
            action: { kind: 'stuck', name: f.kind, input: { subject: f.id, detail: f.detail } },
            kind: 'approval',
            ruleId: `stuck:${f.kind}`,
            reason: `stuck work (${f.kind}): ${f.detail}. Approve to acknowledge; cancel the run with \`spine runs cancel ${f.runId}\` if it should stop`,
            approvers: s.approvers,
            expiresAt: null,
            onExpiry: null,
          }
        : null;
    const event = { kind: `stuck.${f.kind}`, runId: f.runId, taskId: f.taskId, agent: f.agent, actor, data: { subject: f.id, since: f.since, detail: f.detail, action: act } };
    const fresh = await store.stuck.record({ kind: f.kind, subject: f.id, runId: f.runId, since: f.since, detail: f.detail, action: act }, [event], approval, now);
    if (!fresh) continue;
    raised.push({ ...f, action: act });
    if (act === 'cancel') {
      const reason = `stuck work (${f.kind}): ${f.detail}`;
      if (f.kind === 'run-over-sla') await store.runs.cancel(f.runId, now, actor, reason);
      else await store.tasks.cancel(f.taskId, now, actor, reason);
    }
  }
  return { findings, raised };
}
