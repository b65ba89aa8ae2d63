import { InvalidStateError, LeaseExpiredTooOftenError, LeaseLostError, NotFoundError } from '../../core/errors.ts';
import { parseJson, toJson } from '../../core/json.ts';
import { turnUsage, type TurnUsage } from '../../core/usage.ts';
import type { Action, ErrorInfo, Json, Task, TurnRecord, Usage } from '../../core/types.ts';
import { HELD_TASK_STATES, UNFINISHED_TASK_STATES, sqlStateSet } from '../../engine/task-states.ts';
import type { AuditEntry } from '../audit.ts';
import type { ClaimedTask, ClaimRequest, EffectRecord, EffectStart, Lease, NewChildTask, Settlement, TaskFilter, TaskStore } from '../store.ts';
import { cancelOpenApprovals } from './approvals-close-sql.ts';
import { insertAudit } from './audit-sql.ts';
import { CLAIM, type SqlBackend } from './backend.ts';
import { beginEffect, completeEffect, listEffects } from './effects-sql.ts';
import type { ClaimContextColumns, SqlExecutor, SqlParam } from './executor.ts';
import { releaseTaskReservations } from './limits-sql.ts';
import { toTask, type TaskRow } from './rows.ts';
import { cancelledInfo, finishRun, type FinishedRun } from './runs-sql.ts';
import { sessionHistory } from './sessions-sql.ts';
import { assembleTurnRows, insertDecidedTurn, loadTurns, openTurnOf, turnRowsOf, type TurnRow } from './turns-sql.ts';
import { placeholders, slices, valuesOf, whereOf } from './where.ts';
import { FINISHED_JOINS, expireJoins, joinColumns, joinLane, settleJoin, unfinishedLanesOf, type FailParent } from './joins-sql.ts';
import type { JoinSpec } from '../../core/join.ts';
import { runStream, taskStream } from '../../audit/chain.ts';

/**
 * Tasks: claims and leases (every worker write is fenced by its lease), the moves of
 * the task state machine (engine/task-states.ts), and the join of a finished task
 * into its parent or its run.
 */

const UNFINISHED = sqlStateSet(UNFINISHED_TASK_STATES);
const HELD = sqlStateSet(HELD_TASK_STATES);
/**
 * Task.waitingOn as read: a parent waiting for its lanes counts them from their rows
 * (lanes of an `all` join commit without writing the parent's count on PostgreSQL).
 */
const LANES_OUT = `CASE WHEN t.state = 'waiting' AND t.waiting_for = 'children'
  THEN (SELECT COUNT(*) FROM (${unfinishedLanesOf('t')}) AS lanes) ELSE t.waiting_on END AS lanes_out`;

/** What PostgreSQL does in the fence's round trip (a data-modifying WITH over the fenced row, `fenced`). */
export interface FenceExtras {
  /** A statement over `fenced`, e.g. the turn's row: it does nothing if the fence did not hold. */
  then?: { sql: string; params: SqlParam[] };
  /** The run's end when the fenced task is its root (finishRunAfterFence): returned as `finished_run`. */
  finishRun?: { sql: string; params: SqlParam[] };
  /**
   * Lock and read the audit heads this commit will append to, the task's stream and, with
   * `run`, its run's when the task is the root (its run finishes): they seed the
   * transaction's known heads (StagedWrites.heads), so the append locks nothing more.
   */
  heads?: { run: boolean };
}

/** The fenced task row, with what FenceExtras asked for. */
export type FencedRow = TaskRow & { finished_run?: FinishedRun | null; locked_heads?: Array<[string, number | string, string]> | null };

/**
 * Checks the lease is still held and returns the task row; throws LeaseLostError.
 * `also` sets more columns in the same statement (the fence and the change are one write);
 * `extras` (PostgreSQL) adds more writes to that statement.
 */
export async function fence(tx: SqlExecutor, lease: Lease, now: number, also?: { sql: string; params: SqlParam[] }, extras?: FenceExtras): Promise<FencedRow> {
  const { sql: update, params } = fenceUpdate(lease, now, also);
  if (!extras) {
    const row = await tx.get<TaskRow>(update, params);
    if (!row) throw new LeaseLostError(lease.taskId);
    return row;
  }
  const parts = [`fenced AS (${update})`];
  if (extras.then) {
    parts.push(`followed AS (${extras.then.sql})`);
    params.push(...extras.then.params);
  }
  let returned = '';
  if (extras.finishRun) {
    parts.push(`run_done AS (${extras.finishRun.sql})`);
    params.push(...extras.finishRun.params);
    returned += ', (SELECT row_to_json(r) FROM run_done r) AS finished_run';
  }
  if (extras.heads) {
    // The run's stream before the task's: the order writeAudit locks heads in (sorted).
    parts.push(`heads AS (UPDATE audit_heads SET stream_seq = stream_seq WHERE stream IN (
        SELECT ? || run_id FROM fenced WHERE CAST(? AS INTEGER) = 1 AND parent_id IS NULL UNION ALL SELECT ? || id FROM fenced
      ) RETURNING stream, stream_seq, hash)`);
    params.push(runStream(''), extras.heads.run ? 1 : 0, taskStream(''));
    returned += ', (SELECT json_agg(json_build_array(stream, stream_seq, hash)) FROM heads) AS locked_heads';
  }
  const row = await tx.get<FencedRow>(`WITH ${parts.join(', ')} SELECT fenced.*${returned} FROM fenced`, params);
  if (!row) throw new LeaseLostError(lease.taskId);
  for (const [stream, n, hash] of row.locked_heads ?? []) tx.staged?.heads?.set(stream, { n: Number(n), hash });
  return row;
}

/** The fence's statement: the task's row, moved by `also`, if the lease is still held. */
export function fenceUpdate(lease: Lease, now: number, also?: { sql: string; params: SqlParam[] }): { sql: string; params: SqlParam[] } {
  return {
    sql: `UPDATE tasks SET ${also?.sql ?? ''} updated_at = ? WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state IN ${HELD} RETURNING *`,
    params: [...(also?.params ?? []), now, lease.taskId, lease.owner, lease.leaseNo],
  };
}

/**
 * fenceUpdate with succeedInFence or continueInFence, for several tasks in one
 * statement (commit-statement-sql.ts): `u` has a row per task (id, owner, lease_no,
 * succeed, output, n, at). The same moves as those two, chosen per row.
 */
export const FENCE_UNITS = `UPDATE tasks t SET
    state = CASE WHEN u.succeed THEN 'succeeded' ELSE 'running' END,
    output = CASE WHEN u.succeed THEN u.output ELSE t.output END,
    turns = COALESCE(u.n, t.turns), attempt = 0,
    error = CASE WHEN u.succeed THEN t.error ELSE NULL END,
    finished_at = CASE WHEN u.succeed THEN u.at ELSE t.finished_at END,
    lease_owner = CASE WHEN u.succeed THEN NULL ELSE t.lease_owner END,
    lease_expires_at = CASE WHEN u.succeed THEN NULL ELSE t.lease_expires_at END,
    updated_at = u.at
  FROM u WHERE t.id = u.id AND t.lease_owner = u.owner AND t.lease_no = u.lease_no AND t.state IN ${HELD}
  RETURNING t.id, t.run_id, t.parent_id`;

/** The `also` of a fence that finishes the task in the same statement (the common case: a turn with an output). */
export function succeedInFence(output: Json, turns: number | null, now: number): { sql: string; params: SqlParam[] } {
  return {
    sql: `state = 'succeeded', output = ?, turns = COALESCE(?, turns), attempt = 0, finished_at = ?, lease_owner = NULL, lease_expires_at = NULL,`,
    params: [toJson(output), turns, now],
  };
}

/** Moves a task to a final state and tells its parent (join) or its run. Returns true if a task became ready. */
export async function finishTask(
  tx: SqlExecutor,
  task: Task,
  state: 'succeeded' | 'dead',
  output: Json | null,
  error: ErrorInfo | null,
  now: number,
  actor: string,
  sink?: AuditEntry[],
): Promise<boolean> {
  await tx.run(
    `UPDATE tasks SET state = ?, output = ?, error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
     WHERE id = ?`,
    [state, output === null ? null : toJson(output), error ? toJson(error) : null, now, now, task.id],
  );
  const audit = sink ?? [];
  audit.push({ kind: `task.${state}`, runId: task.runId, taskId: task.id, agent: task.agent, actor, ...(error ? { data: { error: error as unknown as Json } } : {}) });
  const woke = await propagateFinish(tx, task, state, output, error, now, actor, audit);
  if (!sink) await insertAudit(tx, now, audit);
  return woke;
}

/** A finished task wakes its parent once all siblings are done, or finishes its run. Returns true if a task became ready. */
export async function propagateFinish(
  tx: SqlExecutor,
  task: Task,
  state: 'succeeded' | 'dead' | 'cancelled',
  output: Json | null,
  error: ErrorInfo | null,
  now: number,
  actor: string,
  sink?: AuditEntry[],
): Promise<boolean> {
  // Audit entries go to the caller's sink (one INSERT per commit), or are written here.
  if (!sink) {
    const own: AuditEntry[] = [];
    const woke = await propagateFinish(tx, task, state, output, error, now, actor, own);
    await insertAudit(tx, now, own);
    return woke;
  }
  if (task.parentId) return joinLane(tx, task.parentId, state === 'succeeded', now, actor, sink, failParentFor(now, actor));
  const runState = state === 'succeeded' ? 'succeeded' : state === 'dead' ? 'failed' : 'cancelled';
  return finishRun(tx, { runId: task.runId, agent: task.agent, state: runState, output, error }, now, actor, sink);
}

/** How a join that can no longer be satisfied fails its parent: dead, told upward like any failed task. */
function failParentFor(now: number, actor: string): FailParent {
  return async (tx, parentId, error, sink) => {
    const row = await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', [parentId]);
    if (!row) return false;
    sink.push({ kind: 'task.failed', runId: row.run_id, taskId: row.id, agent: row.agent, actor, data: { error: error as unknown as Json } });
    return finishTask(tx, toTask(row), 'dead', null, error, now, actor, sink);
  };
}

/**
 * After a lane of an `all` join committed without touching its parent (one statement,
 * commit-statement-sql.ts): if no lane of that join is unfinished now, decides it.
 * Whichever lane commits last sees every other lane finished here, so one of them
 * always decides; two that both see it are told apart by the parent's lock. A process
 * that dies in between leaves the join to the reaper (FINISHED_JOINS). Returns true if
 * the parent woke.
 */
export async function settleAllJoin(db: SqlBackend, parentId: string, now: number, actor: string): Promise<boolean> {
  const finished = await db.read.get<{ id: string }>(`${FINISHED_JOINS} AND p.id = ?`, [parentId]);
  if (!finished) return false;
  const woke = await db.transaction(async (tx) => {
    const audit: AuditEntry[] = [];
    const woke = await settleJoin(tx, parentId, true, now, actor, audit, failParentFor(now, actor));
    await insertAudit(tx, now, audit);
    return woke;
  });
  if (woke) db.signalTasksReady();
  return woke;
}

// ── a turn's outcome (composed by the store's commitTurn) ────────────────────

/** The `also` of a fence that keeps the task running for another turn (an intermediate turn: one statement, not two). */
export function continueInFence(turns: number | null): { sql: string; params: SqlParam[] } {
  return { sql: `turns = COALESCE(?, turns), attempt = 0, error = NULL, state = 'running',`, params: [turns] };
}

/** Creates the handoff's children and parks the parent until they have all finished. */
export async function waitForChildren(
  tx: SqlExecutor,
  task: Task,
  turns: number,
  children: NewChildTask[],
  actor: string,
  now: number,
  audit: AuditEntry[],
  join: JoinSpec | null = null,
): Promise<void> {
  // A multi-row INSERT per slice: a fan-out of 100 is 4 statements, not 100 (round trips on PostgreSQL).
  for (const slice of slices(children)) {
    const params: SqlParam[] = [];
    for (const child of slice) {
      params.push(child.id, task.runId, task.id, turns, child.parentAction, task.depth + 1, child.agent, toJson(child.input), child.maxAttempts, now, now, now);
      audit.push({ kind: 'task.created', opensStream: true, runId: task.runId, taskId: child.id, agent: child.agent, actor, data: { parent: task.id, depth: task.depth + 1 } });
    }
    await tx.run(
      `INSERT INTO tasks (id, run_id, parent_id, parent_turn, parent_action, depth, agent, state, input, max_attempts, run_at, created_at, updated_at)
       VALUES ${valuesOf(slice.length, "(?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)")}`,
      params,
    );
  }
  const cols = joinColumns(join, now);
  await tx.run(
    `UPDATE tasks SET turns = ?, attempt = 0, error = NULL, state = 'waiting', waiting_for = 'children', waiting_on = ?, ${cols.sql} lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
     WHERE id = ?`,
    [turns, children.length, ...cols.params, now, task.id],
  );
}

export async function scheduleRetry(tx: SqlExecutor, taskId: string, turns: number, error: ErrorInfo, runAt: number, now: number): Promise<void> {
  await tx.run(
    `UPDATE tasks SET turns = ?, state = 'retry-scheduled', attempt = attempt + 1, error = ?, run_at = ?,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
    [turns, toJson(error), runAt, now, taskId],
  );
}

/** The fallback agent takes the task over, queued now with fresh attempts. */
export async function handOverTask(tx: SqlExecutor, taskId: string, agent: string, maxAttempts: number, turns: number, error: ErrorInfo, now: number): Promise<void> {
  await tx.run(
    `UPDATE tasks SET agent = ?, max_attempts = ?, turns = ?, state = 'queued', attempt = 0, error = ?, run_at = ?,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
    [agent, maxAttempts, turns, toJson(error), now, now, taskId],
  );
}

/** Not a failure: the open decision is re-evaluated when the task comes due. */
export async function deferTask(tx: SqlExecutor, taskId: string, turns: number, until: number, now: number): Promise<void> {
  await tx.run(`UPDATE tasks SET turns = ?, state = 'queued', run_at = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`, [
    turns,
    until,
    now,
    taskId,
  ]);
}

export async function waitForApproval(tx: SqlExecutor, taskId: string, turns: number, now: number): Promise<void> {
  await tx.run(
    `UPDATE tasks SET turns = ?, state = 'waiting', waiting_for = 'approval', waiting_on = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
    [turns, now, taskId],
  );
}

export async function escalateTask(tx: SqlExecutor, taskId: string, turns: number, error: ErrorInfo, now: number): Promise<void> {
  await tx.run(
    `UPDATE tasks SET turns = ?, state = 'escalated', error = ?, waiting_on = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
    [turns, toJson(error), now, taskId],
  );
}

/** The failed attempt counts before the task goes dead. */
export async function countFailedAttempt(tx: SqlExecutor, taskId: string, turns: number): Promise<void> {
  await tx.run(`UPDATE tasks SET turns = ?, attempt = attempt + 1 WHERE id = ?`, [turns, taskId]);
}

// ── the sub-port ─────────────────────────────────────────────────────────────

type RunContext = {
  tenant: string;
  session_key: string | null;
  session_seq: number | string | null;
  session_epoch: number | string | null;
  kind: string;
  /** The envelope's channel, account and reply target (null when nothing is to be answered). */
  reply_channel: string | null;
  reply_account: string | null;
  reply_to: string | null;
  origin: string | null;
  agent: string;
  /** The run's audit stream head as the claim statement read it (a hint for commit-statement-sql.ts). */
  head_seq?: number | string | null;
  head_hash?: string | null;
};

/** The runs' part of what claimed tasks' turns need, by run id (where the claim statement did not bring it). */
async function runContexts(db: SqlExecutor, runIds: readonly string[]): Promise<Map<string, RunContext>> {
  const runs = await db.all<RunContext & { id: string }>(
    `SELECT r.id, r.agent, r.tenant, r.session_key, r.session_seq, r.session_epoch, r.kind, r.origin, e.channel AS reply_channel, e.account AS reply_account, e.reply_to
     FROM runs r LEFT JOIN envelopes e ON e.id = r.envelope_id WHERE r.id IN (${placeholders(runIds.length)})`,
    runIds,
  );
  return new Map(runs.map((r) => [r.id, r]));
}

/** The same, from the run_* columns a claim statement returned (ClaimContextColumns). */
function runContextsOf(rows: ReadonlyArray<TaskRow & Partial<ClaimContextColumns>>): Map<string, RunContext> {
  const byId = new Map<string, RunContext>();
  for (const r of rows) {
    if (r.run_agent === null || r.run_agent === undefined || byId.has(r.run_id)) continue;
    byId.set(r.run_id, {
      agent: r.run_agent,
      tenant: r.run_tenant!,
      session_key: r.run_session_key ?? null,
      session_seq: r.run_session_seq ?? null,
      session_epoch: r.run_session_epoch ?? null,
      kind: r.run_kind!,
      origin: r.run_origin ?? null,
      reply_channel: r.run_reply_channel ?? null,
      reply_account: r.run_reply_account ?? null,
      reply_to: r.run_reply_to ?? null,
      head_seq: r.run_head_seq ?? null,
      head_hash: r.run_head_hash ?? null,
    });
  }
  return byId;
}

/** Everything a claimed task's next turn needs, read after the claim committed. */
async function claimContext(db: SqlExecutor, task: Task, run: RunContext | undefined, turnRows: TurnRow[], historyLimit: number): Promise<ClaimedTask> {
  const lease: Lease = { taskId: task.id, owner: task.leaseOwner!, leaseNo: task.leaseNo };
  let session: ClaimedTask['session'] = null;
  if (task.parentId === null && run?.session_key) {
    session = { key: run.session_key, history: await sessionHistory(db, run.session_key, Number(run.session_seq), Number(run.session_epoch), historyLimit) };
  }
  const { committed, open } = await assembleTurnRows(db, task.id, turnRows);
  const last = committed.at(-1);
  const openTurn = open ? await openTurnOf(db, task.id, open) : null;
  // Only the root task of a work run answers (a routing run's output names an agent).
  const reply =
    task.parentId === null && run?.kind === 'work' && run.reply_to !== null && run.reply_channel !== null
      ? { channel: run.reply_channel, account: run.reply_account ?? 'default', target: parseJson(run.reply_to) }
      : null;
  return { task, lease, tenant: run?.tenant ?? 'default', session, history: committed, results: last ? last.results : [], openTurn, reply, origin: run?.origin ?? null };
}

export function sqlTaskStore(db: SqlBackend): TaskStore {
  return {
    async get(id: string): Promise<Task | null> {
      const row = await db.read.get<TaskRow>(`SELECT t.*, ${LANES_OUT} FROM tasks t WHERE t.id = ?`, [id]);
      return row ? toTask(row) : null;
    },

    async list(filter: TaskFilter): Promise<Task[]> {
      const w = whereOf([
        ['t.run_id = ?', filter.runId],
        ['t.state = ?', filter.state],
      ]);
      const rows = await db.read.all<TaskRow>(`SELECT t.*, ${LANES_OUT} FROM tasks t ${w.sql} ORDER BY t.id LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toTask);
    },

    async turns(taskId: string): Promise<TurnRecord[]> {
      return (await loadTurns(db.read, taskId)).committed;
    },

    async usage(filter: { runId: string } | { taskId: string }): Promise<TurnUsage[]> {
      const [cond, id] = 'runId' in filter ? ['t.run_id = ?', filter.runId] : ['t.id = ?', filter.taskId];
      const rows = await db.read.all<{ task_id: string; agent: string; n: number | string; usage: string }>(
        `SELECT u.task_id, t.agent, u.n, u.usage FROM turns u JOIN tasks t ON t.id = u.task_id
          WHERE ${cond} AND u.usage IS NOT NULL ORDER BY t.created_at, t.id, u.n`,
        [id],
      );
      return rows.map((r) => turnUsage(r.task_id, r.agent, Number(r.n), parseJson<Usage>(r.usage) ?? {}));
    },

    effects(filter: { runId?: string; taskId?: string }): Promise<EffectRecord[]> {
      return listEffects(db.read, filter);
    },

    async cancel(taskId: string, now: number, actor: string, reason?: string): Promise<number> {
      const result = await db.transaction(async (tx) => {
        const top = await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', [taskId]);
        if (!top) throw new NotFoundError('task', taskId);
        if (!(UNFINISHED_TASK_STATES as readonly string[]).includes(top.state)) throw new InvalidStateError(`task ${taskId} is already ${top.state}`);
        const error = cancelledInfo(actor, reason);
        const rows = await tx.all<{ id: string; agent: string; run_id: string }>(
          `WITH RECURSIVE subtree(id) AS (
             SELECT id FROM tasks WHERE id = ?
             UNION ALL SELECT t.id FROM tasks t JOIN subtree s ON t.parent_id = s.id
           )
           UPDATE tasks SET state = 'cancelled', error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
           WHERE id IN (SELECT id FROM subtree) AND state IN ${UNFINISHED} RETURNING id, agent, run_id`,
          [taskId, toJson(error), now, now],
        );
        await insertAudit(
          tx,
          now,
          rows.map((r) => ({ kind: 'task.cancelled', runId: r.run_id, taskId: r.id, agent: r.agent, actor, data: { reason: reason ?? null } })),
        );
        await cancelOpenApprovals(tx, rows.map((r) => r.id), now, actor, reason);
        for (const r of rows) await releaseTaskReservations(tx, r.id, now, 'task cancelled');
        const woke = await propagateFinish(tx, toTask(top), 'cancelled', null, error, now, actor);
        return { count: rows.length, woke };
      });
      if (result.woke) db.signalTasksReady();
      return result.count;
    },

    async nextDueAt(): Promise<number | null> {
      const row = await db.read.get<{ at: number | string | null }>(`SELECT MIN(run_at) AS at FROM tasks WHERE state IN ('queued', 'retry-scheduled')`);
      return row?.at === null || row?.at === undefined ? null : Number(row.at);
    },

    async claim(req: ClaimRequest): Promise<ClaimedTask[]> {
      if (req.limit <= 0) return [];
      const rows = await db.transaction(async (tx) => {
        const rows = await tx.all<TaskRow & Partial<ClaimContextColumns>>(db.sql.claimTasks(req.limit), [req.workerId, req.now + req.leaseMs, req.now, req.now]);
        // Heads the claim statement locked already (PostgreSQL): the events below append there.
        for (const r of rows) if (r.head_hash) tx.staged?.heads?.set(taskStream(r.id), { n: Number(r.head_seq), hash: r.head_hash });
        // Leased and running in one step: both transitions recorded, in one INSERT.
        await insertAudit(
          tx,
          req.now,
          rows.flatMap((r) => [
            { kind: 'task.leased', runId: r.run_id, taskId: r.id, agent: r.agent, actor: req.workerId, data: { leaseNo: Number(r.lease_no) } },
            { kind: 'task.running', runId: r.run_id, taskId: r.id, agent: r.agent, actor: req.workerId },
          ]),
        );
        return rows;
      }, CLAIM);
      if (rows.length === 0) return [];
      // Everything the turns need, in a few batched reads (committed data: the claim is
      // done), unless the claim statement brought the runs' part along.
      const tasks = rows.map(toTask);
      const runById = rows[0]!.run_agent !== undefined ? runContextsOf(rows) : await runContexts(db.read, [...new Set(tasks.map((t) => t.runId))]);
      // What a later commit of these leases may take as known (commit-statement-sql.ts).
      const hints = db.hints;
      if (hints) {
        for (const [id, r] of runById) if (r.head_hash) hints.heads.set(runStream(id), { n: Number(r.head_seq), hash: r.head_hash });
        for (const t of tasks) {
          const run = runById.get(t.runId);
          if (run) hints.tasks.set(t.id, { leaseNo: t.leaseNo, runId: t.runId, agent: t.agent, parentId: t.parentId, session: run.session_key !== null, runAgent: run.agent });
        }
      }
      // Only a lease holder writes turn rows, so a task on its first lease has none to read.
      const leasedBefore = tasks.filter((t) => t.leaseNo > 1).map((t) => t.id);
      const turnsByTask = leasedBefore.length > 0 ? await turnRowsOf(db.read, leasedBefore) : new Map<string, TurnRow[]>();
      const claimed: ClaimedTask[] = [];
      for (const task of tasks) claimed.push(await claimContext(db.read, task, runById.get(task.runId), turnsByTask.get(task.id) ?? [], req.historyLimit ?? 20));
      return claimed;
    },


    async heartbeat(workerId: string, leaseUntil: number, now: number, taskIds?: readonly string[]): Promise<string[]> {
      return db.transaction(async (tx) => {
        const only = taskIds === undefined ? '' : `AND id IN (${placeholders(taskIds.length)})`;
        const rows =
          taskIds?.length === 0
            ? []
            : await tx.all<{ id: string }>(`UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? AND state IN ${HELD} ${only} RETURNING id`, [
                leaseUntil,
                workerId,
                ...(taskIds ?? []),
              ]);
        await tx.run('UPDATE workers SET heartbeat_at = ? WHERE id = ?', [now, workerId]);
        return rows.map((r) => r.id);
      });
    },

    async release(leases: Lease[], now: number): Promise<void> {
      if (leases.length === 0) return;
      await db.transaction(async (tx) => {
        const audit: AuditEntry[] = [];
        for (const lease of leases) {
          const row = await tx.get<{ run_id: string; agent: string }>(
            `UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_at = ?, updated_at = ?
             WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state IN ${HELD} RETURNING run_id, agent`,
            [now, now, lease.taskId, lease.owner, lease.leaseNo],
          );
          if (!row) continue;
          audit.push({ kind: 'task.released', runId: row.run_id, taskId: lease.taskId, agent: row.agent, actor: lease.owner });
          // Handed back unfinished: what it still had reserved is reserved again by whoever runs it next.
          await releaseTaskReservations(tx, lease.taskId, now, 'task released');
        }
        await insertAudit(tx, now, audit);
      });
      db.signalTasksReady();
    },

    async reclaimExpired(now: number, maxReclaims: number): Promise<number> {
      const count = await db.transaction(async (tx) => {
        const rows = await tx.all<TaskRow>(
          `UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, reclaims = reclaims + 1, run_at = ?, updated_at = ?
           WHERE state IN ${HELD} AND lease_expires_at < ? RETURNING *`,
          [now, now, now],
        );
        for (const row of rows) {
          const task = toTask(row);
          await insertAudit(tx, now, [
            { kind: 'task.reclaimed', runId: task.runId, taskId: task.id, agent: task.agent, actor: 'reaper', data: { reclaims: task.reclaims } },
          ]);
          await releaseTaskReservations(tx, task.id, now);
          if (task.reclaims > maxReclaims) {
            const error = new LeaseExpiredTooOftenError(task.reclaims).toInfo();
            await tx.run(`UPDATE tasks SET state = 'dead', error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'`, [toJson(error), now, now, task.id]);
            await insertAudit(tx, now, [{ kind: 'task.dead', runId: task.runId, taskId: task.id, agent: task.agent, actor: 'reaper', data: { error: error as unknown as Json } }]);
            await propagateFinish(tx, task, 'dead', null, error, now, 'reaper');
          }
        }
        return rows.length;
      });
      if (count > 0) db.signalTasksReady();
      return count;
    },

    async expireJoins(now: number): Promise<number> {
      const count = await db.transaction(async (tx) => {
        const audit: AuditEntry[] = [];
        const n = await expireJoins(tx, now, 'reaper', audit, failParentFor(now, 'reaper'));
        await insertAudit(tx, now, audit);
        return n;
      });
      if (count > 0) db.signalTasksReady();
      return count;
    },

    async recordDecision(lease: Lease, decision: { n: number; actions: Action[]; output?: Json; usage: Usage | null; audit: AuditEntry[] }, now: number): Promise<void> {
      await db.transaction(async (tx) => {
        await fence(tx, lease, now);
        await insertDecidedTurn(tx, lease.taskId, decision, now);
        await insertAudit(tx, now, decision.audit);
      });
    },

    beginEffect(start: EffectStart, now: number): Promise<EffectRecord> {
      return db.transaction((tx) => beginEffect(tx, start, now));
    },

    completeEffect(key: string, outcome: { result: Json } | { error: ErrorInfo }, now: number, audit: AuditEntry[], settle?: Settlement): Promise<EffectRecord> {
      return db.transaction((tx) => completeEffect(tx, key, outcome, now, audit, settle));
    },
  };
}
