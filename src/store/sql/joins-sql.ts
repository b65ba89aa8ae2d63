import { JoinFailedError, LaneEndedError } from '../../core/errors.ts';
import { decideJoin, type JoinSpec, type JoinVerdict } from '../../core/join.ts';
import { toJson } from '../../core/json.ts';
import type { ErrorInfo, Json } from '../../core/types.ts';
import { UNFINISHED_TASK_STATES, sqlStateSet } from '../../engine/task-states.ts';
import type { AuditEntry } from '../audit.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';

/**
 * Joins: a parent waiting on a batch of handoffs (its lanes) wakes when its join
 * policy (core/join.ts) is decided, not only when every lane has finished. Lanes
 * still running then are cancelled in the same transaction (audited), so a late lane
 * can never commit into a join that already completed: its lease is gone.
 */

const UNFINISHED = sqlStateSet(UNFINISHED_TASK_STATES);

/** The columns a parent's wait sets: the compiled policy, fresh counts and the deadline. */
export function joinColumns(join: JoinSpec | null, now: number): { sql: string; params: SqlParam[] } {
  return {
    sql: 'join_mode = ?, join_need = ?, join_on_failure = ?, join_deadline_at = ?, join_ok = 0, join_failed = 0,',
    params: [join?.mode ?? null, join?.need ?? null, join?.onChildFailure ?? null, join?.deadlineMs ? now + join.deadlineMs : null],
  };
}

interface ParentJoinRow {
  id: string;
  run_id: string;
  agent: string;
  waiting_on: number | string;
  join_mode: string | null;
  join_need: number | string | null;
  join_on_failure: string | null;
  join_ok: number | string;
  join_failed: number | string;
}

function specOf(r: ParentJoinRow): JoinSpec | null {
  if (r.join_mode === null) return null;
  return {
    mode: r.join_mode as JoinSpec['mode'],
    need: r.join_need === null ? null : Number(r.join_need),
    onChildFailure: r.join_on_failure === 'fail' ? 'fail' : 'include',
    deadlineMs: null,
  };
}

/** Fails a parent whose join can no longer be satisfied (tasks-sql's finishTask, passed in to keep the files acyclic). */
export type FailParent = (tx: SqlExecutor, parentId: string, error: ErrorInfo, sink: AuditEntry[]) => Promise<boolean>;

/**
 * A lane finished: counts it on its waiting parent and decides the join. Returns true
 * if a task became ready. A parent no longer waiting (its join completed earlier) is
 * left alone.
 */
export async function joinLane(
  tx: SqlExecutor,
  parentId: string,
  ok: boolean,
  now: number,
  actor: string,
  sink: AuditEntry[],
  failParent: FailParent,
): Promise<boolean> {
  const parent = await tx.get<ParentJoinRow>(
    `UPDATE tasks SET waiting_on = waiting_on - 1, join_ok = join_ok + ?, join_failed = join_failed + ?, updated_at = ?
     WHERE id = ? AND state = 'waiting' AND waiting_on > 0
     RETURNING id, run_id, agent, waiting_on, join_mode, join_need, join_on_failure, join_ok, join_failed`,
    [ok ? 1 : 0, ok ? 0 : 1, now, parentId],
  );
  if (!parent) return false;
  const counts = { pending: Number(parent.waiting_on), ok: Number(parent.join_ok), failed: Number(parent.join_failed), lastOk: ok };
  const verdict = decideJoin(specOf(parent), counts);
  if (verdict === 'wait') return false;
  return completeJoin(tx, parent, verdict, counts, 'cancelled', now, actor, sink, failParent);
}

/** Applies a decided join: ends the lanes still running, then wakes the parent (or fails it). */
async function completeJoin(
  tx: SqlExecutor,
  parent: ParentJoinRow,
  verdict: Exclude<JoinVerdict, 'wait'>,
  counts: { pending: number; ok: number; failed: number },
  laneEnd: 'cancelled' | 'expired',
  now: number,
  actor: string,
  sink: AuditEntry[],
  failParent: FailParent,
): Promise<boolean> {
  const mode = parent.join_mode ?? 'all';
  let ended: Array<{ id: string; agent: string; run_id: string }> = [];
  if (counts.pending > 0) {
    const why = laneEnd === 'cancelled' ? `the ${mode} join of task ${parent.id} completed without this lane` : `the join of task ${parent.id} reached its deadline`;
    const error = new LaneEndedError(laneEnd, why).toInfo();
    ended = await tx.all<{ id: string; agent: string; run_id: string }>(
      `WITH RECURSIVE subtree(id) AS (
         SELECT id FROM tasks WHERE parent_id = ? AND state IN ${UNFINISHED}
         UNION ALL SELECT t.id FROM tasks t JOIN subtree s ON t.parent_id = s.id
       )
       UPDATE tasks SET state = 'cancelled', error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
       WHERE id IN (SELECT id FROM subtree) AND state IN ${UNFINISHED} RETURNING id, agent, run_id`,
      [parent.id, toJson(error), now, now],
    );
    for (const r of ended) sink.push({ kind: 'task.cancelled', runId: r.run_id, taskId: r.id, agent: r.agent, actor, data: { reason: why, code: error.code } });
  }
  const data: Json = { mode, verdict, ok: counts.ok, failed: counts.failed, ended: ended.map((r) => r.id).sort(), ...(laneEnd === 'expired' ? { deadline: true } : {}) };
  sink.push({ kind: 'join.completed', runId: parent.run_id, taskId: parent.id, agent: parent.agent, actor, data });
  if (verdict === 'failed') {
    const error = new JoinFailedError(`${mode} join failed: ${counts.ok} lane(s) succeeded, ${counts.failed + counts.pending} did not`, data).toInfo();
    await tx.run(`UPDATE tasks SET waiting_on = 0, waiting_for = NULL WHERE id = ?`, [parent.id]);
    return failParent(tx, parent.id, error, sink);
  }
  await tx.run(`UPDATE tasks SET state = 'queued', waiting_for = NULL, waiting_on = 0, join_deadline_at = NULL, run_at = ?, updated_at = ? WHERE id = ?`, [now, now, parent.id]);
  sink.push({ kind: 'task.joined', runId: parent.run_id, taskId: parent.id, agent: parent.agent, actor });
  return true;
}

/** Decides every join whose deadline has passed: lanes still running are cancelled as expired and count as failed. */
export async function expireJoins(tx: SqlExecutor, now: number, actor: string, sink: AuditEntry[], failParent: FailParent): Promise<number> {
  const due = await tx.all<ParentJoinRow>(
    `UPDATE tasks SET join_deadline_at = NULL, updated_at = ?
     WHERE state = 'waiting' AND join_deadline_at IS NOT NULL AND join_deadline_at <= ?
     RETURNING id, run_id, agent, waiting_on, join_mode, join_need, join_on_failure, join_ok, join_failed`,
    [now, now],
  );
  for (const p of due) {
    const pending = Number(p.waiting_on);
    const counts = { pending, ok: Number(p.join_ok), failed: Number(p.join_failed) };
    // The lanes still running count as failed: a join at its deadline is always decided.
    const verdict = decideJoin(specOf(p), { pending: 0, ok: counts.ok, failed: counts.failed + pending, lastOk: false });
    await completeJoin(tx, p, verdict === 'wait' ? 'unmet' : verdict, counts, 'expired', now, actor, sink, failParent);
  }
  return due.length;
}
