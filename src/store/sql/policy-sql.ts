import { InvalidStateError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Json } from '../../core/types.ts';
import type { Approval, ApprovalState, LimitAcquire, LimitResult, NewApproval, StandingGrant } from '../store.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { insertAudit } from './sql-store.ts';

/**
 * Shared-state halves of the policy engine: token buckets, spend budgets with
 * reservations, approvals and standing grants. Written in portable SQL with
 * conditional UPDATEs (no row locks), so any number of workers on one database
 * can race and never overshoot a limit.
 */

export interface ApprovalRow {
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

export function toApproval(r: ApprovalRow): Approval {
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

/** Thrown inside the transaction so that tokens and reservations already taken roll back. */
export class LimitRefused extends Error {
  readonly result: LimitResult;
  constructor(result: LimitResult) {
    super('limit refused');
    this.result = result;
  }
}

/** Takes one token from every bucket and reserves spend on every budget — or throws LimitRefused, changing nothing. */
export async function acquireLimits(tx: SqlExecutor, req: LimitAcquire, now: number): Promise<LimitResult> {
  for (const take of req.takes) {
    const got = await takeToken(tx, take.key, take.capacity, take.refillPerMs, now);
    if (got !== true) throw new LimitRefused({ ok: false, kind: 'rate', ruleId: take.ruleId, key: take.key, retryAt: got, onExceeded: take.onExceeded });
  }
  if (req.budgets.length > 0) {
    for (const b of req.budgets) {
      await tx.run('INSERT INTO budgets (key, updated_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [b.key, now]);
      const conds: string[] = [];
      const params: SqlParam[] = [req.micros, req.tokens, now, b.key];
      if (b.maxMicros !== null) {
        conds.push('spent_micros + reserved_micros + ? <= ?');
        params.push(req.micros, b.maxMicros);
      }
      if (b.maxTokens !== null) {
        conds.push('spent_tokens + reserved_tokens + ? <= ?');
        params.push(req.tokens, b.maxTokens);
      }
      const changed = await tx.run(
        `UPDATE budgets SET reserved_micros = reserved_micros + ?, reserved_tokens = reserved_tokens + ?, updated_at = ?
         WHERE key = ?${conds.length ? ' AND ' + conds.join(' AND ') : ''}`,
        params,
      );
      if (changed !== 1) throw new LimitRefused({ ok: false, kind: 'cost', ruleId: b.ruleId, key: b.key });
    }
    await tx.run(
      `INSERT INTO reservations (id, run_id, task_id, keys, micros, tokens, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?)`,
      [req.reservationId, req.runId, req.taskId, toJson(req.budgets.map((b) => b.key)), req.micros, req.tokens, now, req.expiresAt],
    );
  }
  return { ok: true, reservationId: req.budgets.length > 0 ? req.reservationId : null };
}

/** Refills by elapsed time, then takes one token; returns true, or when one will be available. */
async function takeToken(tx: SqlExecutor, key: string, capacity: number, refillPerMs: number, now: number): Promise<true | number> {
  for (let i = 0; i < 20; i++) {
    const row = await tx.get<{ tokens: number | string; updated_at: number | string }>('SELECT tokens, updated_at FROM rate_buckets WHERE key = ?', [key]);
    if (!row) {
      const inserted = await tx.run('INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING', [key, capacity - 1, now]);
      if (inserted === 1) return true;
      continue;
    }
    const last = Number(row.updated_at);
    const level = Math.min(capacity, Number(row.tokens) + Math.max(0, now - last) * refillPerMs);
    if (level < 1) return now + Math.ceil((1 - level) / refillPerMs);
    // Optimistic: only if nobody else moved the bucket since we read it.
    const changed = await tx.run('UPDATE rate_buckets SET tokens = ?, updated_at = ? WHERE key = ? AND updated_at = ? AND tokens = ?', [
      level - 1,
      Math.max(now, last),
      key,
      row.updated_at,
      row.tokens,
    ]);
    if (changed === 1) return true;
  }
  throw new Error(`rate bucket ${key} is too contended`);
}

/** Moves a reservation's estimate from reserved to spent (actual amounts). Idempotent. */
export async function settleReservation(tx: SqlExecutor, id: string, actual: { micros: number; tokens: number }, now: number): Promise<boolean> {
  const r = await tx.get<{ keys: string; micros: number | string; tokens: number | string; run_id: string; task_id: string }>(
    `UPDATE reservations SET state = 'settled', settled_micros = ?, settled_tokens = ?, finished_at = ? WHERE id = ? AND state = 'reserved'
     RETURNING keys, micros, tokens, run_id, task_id`,
    [actual.micros, actual.tokens, now, id],
  );
  if (!r) return false;
  for (const key of parseJson<string[]>(r.keys) ?? []) {
    await tx.run(
      `UPDATE budgets SET reserved_micros = reserved_micros - ?, reserved_tokens = reserved_tokens - ?,
         spent_micros = spent_micros + ?, spent_tokens = spent_tokens + ?, updated_at = ? WHERE key = ?`,
      [Number(r.micros), Number(r.tokens), actual.micros, actual.tokens, now, key],
    );
  }
  await insertAudit(tx, now, [
    { kind: 'cost.settled', runId: r.run_id, taskId: r.task_id, data: { reservation: id, micros: actual.micros, tokens: actual.tokens, keys: parseJson<string[]>(r.keys) ?? [] } },
  ]);
  return true;
}

/** Releases reservations whose holder died before settling them. */
export async function releaseExpiredReservations(tx: SqlExecutor, now: number): Promise<number> {
  return releaseWhere(tx, 'expires_at < ?', [now], now, 'expired');
}

/**
 * Releases the open reservations of a task whose worker died (its lease was
 * reclaimed). Every recorded effect settled its reservation in the same commit, so
 * what is still reserved belongs to an effect that will run again under a new one.
 */
export async function releaseTaskReservations(tx: SqlExecutor, taskId: string, now: number): Promise<number> {
  return releaseWhere(tx, 'task_id = ?', [taskId], now, 'holder died');
}

async function releaseWhere(tx: SqlExecutor, cond: string, params: Array<string | number>, now: number, reason: string): Promise<number> {
  const rows = await tx.all<{ id: string; keys: string; micros: number | string; tokens: number | string; run_id: string; task_id: string }>(
    `UPDATE reservations SET state = 'released', finished_at = ? WHERE state = 'reserved' AND ${cond} RETURNING id, keys, micros, tokens, run_id, task_id`,
    [now, ...params],
  );
  for (const r of rows) {
    for (const key of parseJson<string[]>(r.keys) ?? []) {
      await tx.run('UPDATE budgets SET reserved_micros = reserved_micros - ?, reserved_tokens = reserved_tokens - ?, updated_at = ? WHERE key = ?', [
        Number(r.micros),
        Number(r.tokens),
        now,
        key,
      ]);
    }
  }
  await insertAudit(
    tx,
    now,
    rows.map((r) => ({ kind: 'cost.released', runId: r.run_id, taskId: r.task_id, actor: 'reaper', data: { reservation: r.id, reason } })),
  );
  return rows.length;
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
      data: { approval: id, ruleId: a.ruleId, approvers: a.approvers, reason: a.reason, expiresAt: a.expiresAt, action: a.action },
    },
  ]);
  return id;
}

export async function approvalFor(db: SqlExecutor, key: string): Promise<ApprovalState | null> {
  const row = await db.get<{ state: string }>('SELECT state FROM approvals WHERE action_key = ? ORDER BY requested_at DESC, id DESC LIMIT 1', [key]);
  return (row?.state as ApprovalState | undefined) ?? null;
}

/** Records a human decision. The caller wakes (or, for a denied escalation, dead-letters) the task. */
export async function decideApproval(
  tx: SqlExecutor,
  id: string,
  decision: { approve: boolean; actor: string; reason?: string },
  now: number,
): Promise<Approval> {
  const existing = await tx.get<ApprovalRow>('SELECT * FROM approvals WHERE id = ?', [id]);
  if (!existing) throw new NotFoundError('approval', id);
  if (existing.state !== 'pending') throw new InvalidStateError(`approval ${id} is already ${existing.state}`);
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
      data: { approval: id, ruleId: row.rule_id, reason: decision.reason ?? null },
    },
  ]);
  return toApproval(row);
}

/** An escalated or approval-waiting task continues once its approval is decided. */
export async function wakeForApproval(tx: SqlExecutor, a: Approval, now: number, actor: string): Promise<boolean> {
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

export interface ExpiryEffect {
  approval: Approval;
  outcome: 'denied' | 'rerouted' | 'notified';
}

/** Applies each expired approval's escalation: deny (wakes the task), reroute (a new request), or notify. */
export async function expireApprovals(tx: SqlExecutor, now: number): Promise<ExpiryEffect[]> {
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

export interface StandingGrantRow {
  id: string;
  agent: string;
  action: string;
  granted_by: string;
  reason: string | null;
  created_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
}

export function toStandingGrant(r: StandingGrantRow): StandingGrant {
  return {
    id: r.id,
    agent: r.agent,
    action: r.action,
    grantedBy: r.granted_by,
    reason: r.reason,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

export type { Json };
