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

/** The columns a parent's wait sets: the compiled policy, fresh counts (SQLite's) and the deadline. */
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
  turns: number | string;
  join_mode: string | null;
  join_need: number | string | null;
  join_on_failure: string | null;
}

const PARENT_COLUMNS = 'id, run_id, agent, turns, join_mode, join_need, join_on_failure';

function specOf(r: ParentJoinRow): JoinSpec | null {
  if (r.join_mode === null) return null;
  return {
    mode: r.join_mode as JoinSpec['mode'],
    need: r.join_need === null ? null : Number(r.join_need),
    onChildFailure: r.join_on_failure === 'fail' ? 'fail' : 'include',
    deadlineMs: null,
  };
}

/** The unfinished lanes (as `c`) of the parent row `p` names: the children of its latest handoff. */
export function unfinishedLanesOf(p: string): string {
  return `SELECT 1 FROM tasks c WHERE c.parent_id = ${p}.id AND c.parent_turn = ${p}.turns AND c.state IN ${UNFINISHED}`;
}

/**
 * The parent's lanes (the children of its latest handoff) by outcome, counted from
 * their rows. PostgreSQL decides every join so: a lane of an `all` join commits there
 * without writing its parent's row (commit-statement-sql.ts), so lanes finishing
 * together do not queue on that row's lock through each other's COMMIT. Read after the
 * parent's row is locked, in a statement of its own, so that it sees every lane
 * committed before the lock was granted.
 */
async function laneCounts(tx: SqlExecutor, parent: ParentJoinRow): Promise<JoinTally> {
  const row = await tx.get<{ pending: number | string | null; ok: number | string | null; total: number | string }>(
    `SELECT SUM(CASE WHEN state IN ${UNFINISHED} THEN 1 ELSE 0 END) AS pending, SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END) AS ok, COUNT(*) AS total
     FROM tasks WHERE parent_id = ? AND parent_turn = ?`,
    [parent.id, parent.turns],
  );
  const pending = Number(row?.pending ?? 0);
  const ok = Number(row?.ok ?? 0);
  return { pending, ok, failed: Number(row?.total ?? 0) - pending - ok };
}

type JoinTally = { pending: number; ok: number; failed: number };

/** Fails a parent whose join can no longer be satisfied (tasks-sql's finishTask, passed in to keep the files acyclic). */
export type FailParent = (tx: SqlExecutor, parentId: string, error: ErrorInfo, sink: AuditEntry[]) => Promise<boolean>;

/**
 * A lane finished (`ok`: it succeeded): decides its parent's join. Returns true if a
 * task became ready. A parent no longer waiting (its join completed earlier) is left
 * alone. SQLite has one writer: the lane is counted on the parent's row, the cheapest
 * exact count; PostgreSQL counts the lanes' rows (settleJoin).
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
  if (tx.dialect === 'postgres') return settleJoin(tx, parentId, ok, now, actor, sink, failParent);
  const parent = await tx.get<ParentJoinRow & { waiting_on: number | string; join_ok: number | string; join_failed: number | string }>(
    `UPDATE tasks SET waiting_on = waiting_on - 1, join_ok = join_ok + ?, join_failed = join_failed + ?, updated_at = ?
     WHERE id = ? AND state = 'waiting' AND waiting_on > 0
     RETURNING ${PARENT_COLUMNS}, waiting_on, join_ok, join_failed`,
    [ok ? 1 : 0, ok ? 0 : 1, now, parentId],
  );
  if (!parent) return false;
  return decide(tx, parent, { pending: Number(parent.waiting_on), ok: Number(parent.join_ok), failed: Number(parent.join_failed) }, ok, now, actor, sink, failParent);
}

/**
 * Decides a parent's join from its lanes' rows, under the lock of the parent's row (an
 * UPDATE, which waits for the lanes holding it FOR SHARE). Deciding twice is harmless:
 * a parent no longer waiting is left alone. `lastOk`: the lane that prompted it succeeded.
 */
export async function settleJoin(
  tx: SqlExecutor,
  parentId: string,
  lastOk: boolean,
  now: number,
  actor: string,
  sink: AuditEntry[],
  failParent: FailParent,
): Promise<boolean> {
  const parent = await tx.get<ParentJoinRow>(
    `UPDATE tasks SET updated_at = ? WHERE id = ? AND state = 'waiting' AND waiting_for = 'children' RETURNING ${PARENT_COLUMNS}`,
    [now, parentId],
  );
  if (!parent) return false;
  return decide(tx, parent, await laneCounts(tx, parent), lastOk, now, actor, sink, failParent);
}

/** What deciding a join needs besides the parent and its counts: the time, who decides, the audit sink and how a parent fails. */
type Deciding = [now: number, actor: string, sink: AuditEntry[], failParent: FailParent];

function decide(tx: SqlExecutor, parent: ParentJoinRow, counts: JoinTally, lastOk: boolean, ...deciding: Deciding): Promise<boolean> {
  const verdict = decideJoin(specOf(parent), { ...counts, lastOk });
  if (verdict === 'wait') return Promise.resolve(false);
  return completeJoin(tx, parent, verdict, counts, 'cancelled', ...deciding);
}

/**
 * `all` joins still waiting although none of their lanes is unfinished. Only a process
 * that died between a lane's one-statement commit and its look at the parent leaves
 * one (sql-store.ts); the reaper decides them (expireJoins). Parameters: none.
 */
export const FINISHED_JOINS = `SELECT p.id FROM tasks p WHERE p.state = 'waiting' AND p.waiting_for = 'children' AND COALESCE(p.join_mode, 'all') = 'all'
  AND NOT EXISTS (${unfinishedLanesOf('p')})`;

/** Applies a decided join: ends the lanes still running, then wakes the parent (or fails it). */
async function completeJoin(
  tx: SqlExecutor,
  parent: ParentJoinRow,
  verdict: Exclude<JoinVerdict, 'wait'>,
  counts: JoinTally,
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

/**
 * Decides every join whose deadline has passed (lanes still running are cancelled as
 * expired and count as failed), then every join left waiting with all its lanes
 * finished (FINISHED_JOINS). Returns how many joins were decided.
 */
export async function expireJoins(tx: SqlExecutor, now: number, actor: string, sink: AuditEntry[], failParent: FailParent): Promise<number> {
  const due = await tx.all<ParentJoinRow>(
    `UPDATE tasks SET join_deadline_at = NULL, updated_at = ?
     WHERE state = 'waiting' AND join_deadline_at IS NOT NULL AND join_deadline_at <= ?
     RETURNING ${PARENT_COLUMNS}`,
    [now, now],
  );
  for (const p of due) {
    const counts = await laneCounts(tx, p);
    // The lanes still running count as failed: a join at its deadline is always decided.
    const verdict = decideJoin(specOf(p), { pending: 0, ok: counts.ok, failed: counts.failed + counts.pending, lastOk: false });
    await completeJoin(tx, p, verdict === 'wait' ? 'unmet' : verdict, counts, 'expired', now, actor, sink, failParent);
  }
  let settled = 0;
  for (const { id } of await tx.all<{ id: string }>(FINISHED_JOINS)) if (await settleJoin(tx, id, true, now, actor, sink, failParent)) settled++;
  return due.length + settled;
}
