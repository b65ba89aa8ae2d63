import { InvalidStateError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { ErrorInfo } from '../../core/types.ts';
import type { Approval, ApprovalDecision, ApprovalState, ApprovalStore, Decision, NewApproval } from '../store.ts';
import { raiseCeiling } from './limits-sql.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { toTask, type TaskRow } from './rows.ts';
import { finishTask } from './tasks-sql.ts';
import { whereOf } from './where.ts';

/**
 * Approvals: durable requests for a human decision about one action (its effect key),
 * with expiry and escalation. A decision wakes the waiting task in the same commit.
 */

interface ApprovalRow {
  id: string;
  run_id: string;
  task_id: string;
  agent: string;
  action_key: string;
  action: string;
  kind: string;
  rule_id: string | null;
  reason: string;
  approvers: string;
  state: string;
  requested_at: number | string;
  expires_at: number | string | null;
  on_expiry: string | null;
  decided_by: string | null;
  decided_at: number | string | null;
  decision_reason: string | null;
  supersedes: string | null;
}

function toApproval(r: ApprovalRow): Approval {
  return {
    id: r.id,
    runId: r.run_id,
    taskId: r.task_id,
    agent: r.agent,
    actionKey: r.action_key,
    action: parseJson(r.action) ?? null,
    kind: r.kind as Approval['kind'],
    ruleId: r.rule_id,
    reason: r.reason,
    approvers: r.approvers,
    state: r.state as ApprovalState,
    requestedAt: Number(r.requested_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    onExpiry: parseJson(r.on_expiry),
    decidedBy: r.decided_by,
    decidedAt: r.decided_at === null ? null : Number(r.decided_at),
    decisionReason: r.decision_reason,
    supersedes: r.supersedes,
  };
}

export async function insertApproval(tx: SqlExecutor, a: NewApproval, now: number, actor: string): Promise<string> {
  const id = newId('apr');
  await tx.run(
    `INSERT INTO approvals (id, run_id, task_id, agent, action_key, action, kind, rule_id, reason, approvers, state, requested_at, expires_at, on_expiry, supersedes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`,
    [
      id,
      a.runId,
      a.taskId,
      a.agent,
      a.actionKey,
      toJson(a.action),
      a.kind,
      a.ruleId,
      a.reason,
      a.approvers,
      now,
      a.expiresAt,
      a.onExpiry === null ? null : toJson(a.onExpiry),
      a.supersedes ?? null,
    ],
  );
  await insertAudit(tx, now, [
    {
      kind: a.kind === 'escalation' ? 'task.escalated' : 'approval.requested',
      runId: a.runId,
      taskId: a.taskId,
      agent: a.agent,
      actor,
      data: { approval: id, key: a.actionKey, ruleId: a.ruleId, approvers: a.approvers, reason: a.reason, expiresAt: a.expiresAt, action: a.action },
    },
  ]);
  return id;
}

/** Records a human decision. The caller wakes (or, for a denied escalation, dead-letters) the task. */
async function decideApproval(tx: SqlExecutor, id: string, decision: Decision, now: number): Promise<Approval> {
  const existing = await tx.get<ApprovalRow>('SELECT * FROM approvals WHERE id = ?', [id]);
  if (!existing) throw new NotFoundError('approval', id);
  if (existing.state !== 'pending') throw new InvalidStateError(`approval ${id} is already ${existing.state}`);
  if (decision.raise && (!decision.approve || existing.kind !== 'escalation')) {
    throw new InvalidStateError(`approval ${id} is ${existing.kind === 'escalation' ? 'being denied' : 'not an escalation'}: only approving an escalation can raise a ceiling`);
  }
  const state: ApprovalState = decision.approve ? 'approved' : 'denied';
  const row = await tx.get<ApprovalRow>(
    `UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, decision_reason = ? WHERE id = ? AND state = 'pending' RETURNING *`,
    [state, decision.actor, now, decision.reason ?? null, id],
  );
  if (!row) throw new InvalidStateError(`approval ${id} was decided concurrently`);
  await insertAudit(tx, now, [
    {
      kind: `approval.${state}`,
      runId: row.run_id,
      taskId: row.task_id,
      agent: row.agent,
      actor: decision.actor,
      data: { approval: id, ruleId: row.rule_id, reason: decision.reason ?? null, ...(decision.raise ? { raiseTo: decision.raise.maxMicros } : {}) },
    },
  ]);
  if (decision.raise) {
    const { budgetKey, ruleId, maxMicros } = decision.raise;
    const from = await raiseCeiling(tx, budgetKey, maxMicros, now);
    await insertAudit(tx, now, [
      { kind: 'cost.ceiling-raised', runId: row.run_id, taskId: row.task_id, agent: row.agent, actor: decision.actor, data: { approval: id, ruleId, budget: budgetKey, fromMicros: from, toMicros: Math.max(from ?? 0, maxMicros) } },
    ]);
  }
  return toApproval(row);
}

/** An escalated or approval-waiting task continues once its approval is decided. */
async function wakeForApproval(tx: SqlExecutor, a: Approval, now: number, actor: string): Promise<boolean> {
  const woke = await tx.run(
    // An escalated task keeps its error, so its fresh attempt sees why it was escalated (lastError).
    `UPDATE tasks SET state = 'queued', attempt = 0, waiting_for = NULL, run_at = ?, updated_at = ? WHERE id = ? AND state IN ('waiting', 'escalated') AND waiting_on = 0`,
    [now, now, a.taskId],
  );
  if (woke === 1) {
    await insertAudit(tx, now, [{ kind: 'task.queued', runId: a.runId, taskId: a.taskId, agent: a.agent, actor, data: { approval: a.id, decision: a.state } }]);
  }
  return woke === 1;
}

interface ExpiryEffect {
  approval: Approval;
  outcome: 'denied' | 'rerouted' | 'notified';
}

/** Applies each expired approval's escalation: deny (wakes the task), reroute (a new request), or notify. */
async function expireApprovals(tx: SqlExecutor, now: number): Promise<ExpiryEffect[]> {
  const rows = await tx.all<ApprovalRow>(`SELECT * FROM approvals WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at < ? ORDER BY expires_at LIMIT 100`, [now]);
  const out: ExpiryEffect[] = [];
  for (const row of rows) {
    const onExpiry = parseJson<{ action: string; approvers?: string; expiresInMs?: number }>(row.on_expiry) ?? { action: 'deny' };
    if (onExpiry.action === 'notify') {
      // Keep waiting for a human, but stop expiring: operators were told.
      await tx.run('UPDATE approvals SET expires_at = NULL WHERE id = ?', [row.id]);
      await insertAudit(tx, now, [
        { kind: 'approval.expired', runId: row.run_id, taskId: row.task_id, agent: row.agent, actor: 'reaper', data: { approval: row.id, ruleId: row.rule_id, escalation: 'notify' } },
        { kind: 'operator.notified', runId: row.run_id, taskId: row.task_id, agent: row.agent, actor: 'reaper', data: { approval: row.id, ruleId: row.rule_id, why: 'approval expired' } },
      ]);
      out.push({ approval: toApproval(row), outcome: 'notified' });
      continue;
    }
    await tx.run(`UPDATE approvals SET state = 'expired', decided_by = 'expiry', decided_at = ? WHERE id = ?`, [now, row.id]);
    if (onExpiry.action === 'reroute' && onExpiry.approvers) {
      await insertAudit(tx, now, [
        { kind: 'approval.expired', runId: row.run_id, taskId: row.task_id, agent: row.agent, actor: 'reaper', data: { approval: row.id, ruleId: row.rule_id, escalation: 'reroute', to: onExpiry.approvers } },
      ]);
      await insertApproval(
        tx,
        {
          runId: row.run_id,
          taskId: row.task_id,
          agent: row.agent,
          actionKey: row.action_key,
          action: parseJson(row.action) ?? null,
          kind: row.kind as Approval['kind'],
          ruleId: row.rule_id,
          reason: `${row.reason} (rerouted from ${row.approvers} after expiry)`,
          approvers: onExpiry.approvers,
          expiresAt: now + (onExpiry.expiresInMs ?? 24 * 3_600_000),
          // A rerouted request falls back to deny if it also expires.
          onExpiry: { action: 'deny' },
          supersedes: row.id,
        },
        now,
        'reaper',
      );
      out.push({ approval: toApproval(row), outcome: 'rerouted' });
      continue;
    }
    await insertAudit(tx, now, [
      { kind: 'approval.expired', runId: row.run_id, taskId: row.task_id, agent: row.agent, actor: 'reaper', data: { approval: row.id, ruleId: row.rule_id, escalation: 'deny' } },
    ]);
    out.push({ approval: toApproval({ ...row, state: 'expired' }), outcome: 'denied' });
  }
  return out;
}

/**
 * A decided approval wakes its task: approved actions go ahead, denied ones come back
 * to the agent as refusals. A denied escalation dead-letters the task instead.
 */
async function afterDecision(tx: SqlExecutor, a: Approval, now: number, actor: string): Promise<void> {
  // A stuck-work escalation (validation/stuck.ts) tells an operator; no task waits on it, so its decision wakes nothing.
  if (a.ruleId?.startsWith('stuck:')) return;
  if (a.kind === 'escalation' && a.state !== 'approved') {
    const row = await tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = ? AND state = 'escalated'`, [a.taskId]);
    if (!row) return;
    const error = parseJson<ErrorInfo>(row.error) ?? { code: 'ESCALATION_DENIED', message: 'an operator denied the escalation', retryable: false };
    await finishTask(tx, toTask(row), 'dead', null, error, now, actor);
    return;
  }
  await wakeForApproval(tx, a, now, actor);
}

export function sqlApprovalStore(db: SqlBackend): ApprovalStore {
  return {
    async decisionFor(actionKey: string): Promise<ApprovalDecision | null> {
      const row = await db.read.get<{ state: string; decided_by: string | null; decision_reason: string | null }>(
        'SELECT state, decided_by, decision_reason FROM approvals WHERE action_key = ? ORDER BY requested_at DESC, id DESC LIMIT 1',
        [actionKey],
      );
      return row ? { state: row.state as ApprovalState, decidedBy: row.decided_by, reason: row.decision_reason } : null;
    },

    async get(id: string): Promise<Approval | null> {
      const row = await db.read.get<ApprovalRow>('SELECT * FROM approvals WHERE id = ?', [id]);
      return row ? toApproval(row) : null;
    },

    async list(filter: { state?: ApprovalState; runId?: string; limit: number }): Promise<Approval[]> {
      const w = whereOf([
        ['state = ?', filter.state],
        ['run_id = ?', filter.runId],
      ]);
      const rows = await db.read.all<ApprovalRow>(`SELECT * FROM approvals ${w.sql} ORDER BY requested_at, id LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toApproval);
    },

    async decide(id: string, decision: Decision, now: number): Promise<Approval> {
      const approval = await db.transaction(async (tx) => {
        const a = await decideApproval(tx, id, decision, now);
        await afterDecision(tx, a, now, decision.actor);
        return a;
      });
      db.signalTasksReady();
      return approval;
    },

    async expire(now: number): Promise<number> {
      const effects = await db.transaction(async (tx) => {
        const effects = await expireApprovals(tx, now);
        for (const e of effects) if (e.outcome === 'denied') await afterDecision(tx, e.approval, now, 'expiry');
        return effects;
      });
      if (effects.some((e) => e.outcome === 'denied')) db.signalTasksReady();
      return effects.length;
    },
  };
}
