import { CancelledError, InvalidStateError, NotFoundError, StoreUnavailableError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { toJson } from '../../core/json.ts';
import type { ErrorInfo, Json, Run } from '../../core/types.ts';
import { UNFINISHED_TASK_STATES, sqlStateSet } from '../../engine/task-states.ts';
import type { AuditEntry } from '../audit.ts';
import type { NewRun, RunFilter, RunStore } from '../store.ts';
import { cancelOpenApprovals } from './approvals-close-sql.ts';
import { auditCtes, insertAudit } from './audit-sql.ts';
import { releaseTaskReservations } from './limits-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { toRun, type RunRow } from './rows.ts';
import { statementBatcher, type StatementBackend } from './statement-batcher.ts';
import { enterLane, leaveLane, retakeLane } from './sessions-sql.ts';
import { valuesOf, whereOf } from './where.ts';

const UNFINISHED = sqlStateSet(UNFINISHED_TASK_STATES);

/** What a run is made from: the request, its chosen id, and where it came from (envelope, session lane). */
export interface RunStart extends NewRun {
  runId: string;
  envelopeId: string | null;
  kind: 'work' | 'router';
  session: { key: string; agent: string; resetBefore: number } | null;
}

/**
 * Inserts a run and its root task. In a session, the run joins the session's lane:
 * its root task is queued only if the lane is free, else it waits for the lane.
 * Audit entries go to `sink` (the caller writes them with its own), else are written
 * here. Returns null if the idempotency key exists already.
 */
export async function insertRun(tx: SqlExecutor, req: RunStart, now: number, sink?: AuditEntry[]): Promise<Run | null> {
  const { runId } = req;
  const taskId = newId('task');
  const audit: AuditEntry[] = sink ?? [];
  const lane = req.session ? await enterLane(tx, req.session, runId, now, audit) : null;
  const inserted = await tx.get<RunRow>(
    `INSERT INTO runs (id, idempotency_key, agent, state, input, root_task_id, tenant, envelope_id, session_key, session_seq, session_epoch, kind, origin, created_at, updated_at)
     VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
    [
      runId,
      req.idempotencyKey ?? null,
      req.agent,
      toJson(req.input),
      taskId,
      req.tenant ?? 'default',
      req.envelopeId,
      req.session?.key ?? null,
      lane?.seq ?? null,
      lane?.epoch ?? null,
      req.kind,
      req.origin ?? null,
      now,
      now,
    ],
  );
  if (!inserted) {
    if (lane?.active) throw new Error('lane taken for a run that was not inserted');
    return null;
  }
  const waits = lane !== null && !lane.active;
  await tx.run(
    `INSERT INTO tasks (id, run_id, depth, agent, state, waiting_for, input, max_attempts, run_at, created_at, updated_at)
     VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [taskId, runId, req.agent, waits ? 'waiting' : 'queued', waits ? 'lane' : null, toJson(req.input), req.maxAttempts, now, now, now],
  );
  audit.push(...createdEvents(req, taskId, waits));
  if (!sink) await insertAudit(tx, now, audit);
  return toRun(inserted);
}

/** A new run's events: run.created and its root task's task.created, each opening its stream. */
function createdEvents(req: RunStart, taskId: string, waits: boolean): AuditEntry[] {
  const { runId } = req;
  const actor = req.actor ?? null;
  return [
    {
      kind: 'run.created',
      opensStream: true,
      runId,
      agent: req.agent,
      actor,
      data: { idempotencyKey: req.idempotencyKey ?? null, envelope: req.envelopeId, session: req.session?.key ?? null, kind: req.kind, ...(req.origin ? { origin: req.origin } : {}) },
    },
    { kind: 'task.created', opensStream: true, runId, taskId, agent: req.agent, actor, data: { depth: 0, ...(waits ? { waitingFor: 'lane' } : {}) } },
  ];
}

/** A run to create by statement (createsStatement): its ids are drawn when it is asked for. */
interface RunToCreate {
  start: RunStart;
  taskId: string;
  now: number;
  /** The input as stored (JSON), serialised once. */
  input: string;
}

function runToCreate(req: NewRun, now: number): RunToCreate {
  return { start: { ...req, runId: newId('run'), envelopeId: null, session: null, kind: 'work' }, taskId: newId('task'), now, input: toJson(req.input) };
}

/**
 * Runs outside any session, with no envelope, created by one statement that is its own
 * transaction (the backend's commitStatement; PostgreSQL: one round trip for them all,
 * where BEGIN, two inserts, the events and COMMIT are five for each). Their events
 * open the runs' and the tasks' streams, so there is no head to read. A run whose
 * idempotency key is taken is not inserted, and nothing of it is written (alone in its
 * statement: the events' guard is the inserted run). Returns the inserted runs' rows.
 */
function createsStatement(batch: readonly RunToCreate[]): { sql: string; params: SqlParam[] } {
  const params: SqlParam[] = [];
  const tasks: SqlParam[] = [];
  const events: Array<{ now: number; entry: AuditEntry }> = [];
  for (const { start, taskId, now, input } of batch) {
    params.push(start.runId, start.idempotencyKey ?? null, start.agent, input, taskId, start.tenant ?? 'default', start.origin ?? null, now, now);
    tasks.push(start.runId, start.maxAttempts);
    for (const entry of createdEvents(start, taskId, false)) events.push({ now, entry });
  }
  const appended = auditCtes(events, new Map(), 'run');
  const sql = `WITH run AS (
      INSERT INTO runs (id, idempotency_key, agent, state, input, root_task_id, tenant, envelope_id, session_key, session_seq, session_epoch, kind, origin, created_at, updated_at)
      VALUES ${valuesOf(batch.length, "(?, ?, ?, 'running', ?, ?, ?, NULL, NULL, NULL, NULL, 'work', ?, ?, ?)")}
      ON CONFLICT (idempotency_key) DO NOTHING RETURNING *
    ), task AS (
      INSERT INTO tasks (id, run_id, depth, agent, state, waiting_for, input, max_attempts, run_at, created_at, updated_at)
      SELECT r.root_task_id, r.id, 0, r.agent, 'queued', NULL, r.input, v.max_attempts, r.created_at, r.created_at, r.created_at
      FROM run r JOIN (VALUES ${valuesOf(batch.length, '(?, CAST(? AS INTEGER))')}) AS v(id, max_attempts) ON v.id = r.id
    ), ${appended.ctes.join(', ')}
    SELECT * FROM run`;
  return { sql, params: [...params, ...tasks, ...appended.params] };
}

/** Runs without an idempotency key that share one statement, at most (about 40 parameters each)... */
const CREATE_BATCH = 100;
/** ...and their inputs' size, at most (a statement takes one run whatever its size). */
const CREATE_BATCH_BYTES = 1 << 20;
/** Such statements in flight at once: the rest of the pool stays free for the workers' claims and commits. */
const CREATES_IN_FLIGHT = 2;

/**
 * PostgreSQL: the runs without an idempotency key that callers of this process ask for
 * meanwhile are created together (statement-batcher.ts), CREATE_BATCH to a statement
 * (createsStatement; fewer if their inputs pass CREATE_BATCH_BYTES). Resolves to the
 * run, or null if the statement was refused (the caller creates the run in a
 * transaction instead); a store failure is thrown as it is.
 */
function createBatcher(db: StatementBackend): (run: RunToCreate) => Promise<Run | null> {
  return statementBatcher<RunToCreate, RunRow, Run | null>(db, {
    inFlight: CREATES_IN_FLIGHT,
    most: CREATE_BATCH,
    take(queue) {
      let n = 0;
      for (let bytes = 0; n < Math.min(queue.length, CREATE_BATCH); n++) {
        bytes += queue[n]!.input.length;
        if (n > 0 && bytes > CREATE_BATCH_BYTES) break;
      }
      return queue.splice(0, n);
    },
    build: createsStatement,
    // Lost: each fails as the statement did. Refused, or no connection came: each run is
    // created by a transaction instead (null).
    settle(runs, rows, err) {
      if (err instanceof StoreUnavailableError) throw err;
      const byId = new Map((rows ?? []).map((r) => [r.id, r]));
      if (byId.size > 0) db.signalTasksReady();
      return runs.map((run) => {
        const row = byId.get(run.start.runId);
        return row ? toRun(row) : null;
      });
    },
  });
}

/** A run with an idempotency key, created by a statement of its own (see createsStatement); null: it was not created. */
async function createAlone(db: StatementBackend, req: NewRun, now: number): Promise<{ run: Run; created: boolean } | null> {
  // Built once a connection is free: thousands of callers queued for the pool hold no statement.
  const rows = await db.commitStatement<RunRow>(() => createsStatement([runToCreate(req, now)]));
  if (rows === null) return null;
  if (rows[0]) {
    db.signalTasksReady();
    return { run: toRun(rows[0]), created: true };
  }
  // The key was taken: the run it names (ON CONFLICT waited for its insert to commit).
  const existing = await db.read.get<RunRow>('SELECT * FROM runs WHERE idempotency_key = ?', [req.idempotencyKey ?? null]);
  return existing ? { run: toRun(existing), created: false } : null;
}

export async function selectRun(db: SqlExecutor, id: string): Promise<Run | null> {
  const row = await db.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]);
  return row ? toRun(row) : null;
}

/** What the runs row says once a run is finished: who ran it, and the session lane it held. */
export interface FinishedRun {
  agent: string;
  session_key: string | null;
}

/**
 * Records a run's end (its root task finished) and what follows from it in the same
 * commit: the next message of its session. Returns true if that made a task leasable.
 * (A run's reply to its channel is an outbound message the engine sends through the
 * boundary with the root task's last turn, not a decision made here.) `finished`: the
 * row was already updated (PostgreSQL, in the fence's round trip: finishRunAfterFence).
 */
export async function finishRun(
  tx: SqlExecutor,
  end: { runId: string; agent: string; state: 'succeeded' | 'failed' | 'cancelled'; output: Json | null; error: ErrorInfo | null },
  now: number,
  actor: string,
  sink: AuditEntry[],
  finished?: FinishedRun,
): Promise<boolean> {
  const run =
    finished ??
    (await tx.get<FinishedRun>(`UPDATE runs SET ${FINISH_RUN} WHERE id = ? RETURNING agent, session_key`, [...finishParams(end.state, end.output, end.error, now), end.runId]));
  sink.push(runEnded(end.state, end.runId, run?.agent ?? end.agent, actor));
  // The session's next message may start now.
  if (run?.session_key) return (await leaveLane(tx, run.session_key, end.runId, now)) !== null;
  return false;
}

/** A run's end event, `run.<state>`, on the run's stream. */
export function runEnded(state: 'succeeded' | 'failed' | 'cancelled', runId: string, agent: string, actor: string): AuditEntry {
  return { kind: `run.${state}`, runId, agent, actor };
}

const FINISH_RUN = 'state = ?, output = ?, error = ?, finished_at = ?, updated_at = ?';
const finishParams = (state: string, output: Json | null, error: ErrorInfo | null, now: number): SqlParam[] => [
  state,
  output === null ? null : toJson(output),
  error ? toJson(error) : null,
  now,
  now,
];

/**
 * finishRun's update as a statement over the fenced task row (`fenced`, tasks-sql.ts
 * fence): it finishes the run only if the fenced task is its root, and returns the
 * FinishedRun finishRun then takes.
 */
export function finishRunAfterFence(state: 'succeeded', output: Json, now: number): { sql: string; params: SqlParam[] } {
  return {
    sql: `UPDATE runs SET ${FINISH_RUN} WHERE id = (SELECT run_id FROM fenced WHERE parent_id IS NULL) RETURNING agent, session_key`,
    params: finishParams(state, output, null, now),
  };
}

/** finishRunAfterFence for the fenced tasks of `u` that are their runs' roots and succeed (`u.root`), with their outputs. */
export const FINISH_RUNS_AFTER_FENCE = `UPDATE runs r SET state = 'succeeded', output = u.output, error = NULL, finished_at = u.at, updated_at = u.at
  FROM u JOIN fenced f ON f.id = u.id WHERE u.root AND f.parent_id IS NULL AND r.id = f.run_id RETURNING r.id`;

export function cancelledInfo(actor: string, reason?: string): ErrorInfo {
  return new CancelledError(reason ? `cancelled by ${actor}: ${reason}` : `cancelled by ${actor}`).toInfo();
}

async function cancelRun(tx: SqlExecutor, runId: string, now: number, actor: string, reason?: string): Promise<number> {
  const run = await tx.get<RunRow>('SELECT * FROM runs WHERE id = ?', [runId]);
  if (!run) throw new NotFoundError('run', runId);
  if (run.state === 'succeeded' || run.state === 'cancelled') {
    throw new InvalidStateError(`run ${runId} is already ${run.state}`);
  }
  const error = cancelledInfo(actor, reason);
  const rows = await tx.all<{ id: string; agent: string }>(
    `UPDATE tasks SET state = 'cancelled', error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
     WHERE run_id = ? AND state IN ${UNFINISHED} RETURNING id, agent`,
    [toJson(error), now, now, runId],
  );
  await tx.run(`UPDATE runs SET state = 'cancelled', error = ?, finished_at = ?, updated_at = ? WHERE id = ?`, [toJson(error), now, now, runId]);
  if (run.session_key) await leaveLane(tx, run.session_key, runId, now);
  await insertAudit(tx, now, [
    ...rows.map((r) => ({ kind: 'task.cancelled', runId, taskId: r.id, agent: r.agent, actor, data: { reason: reason ?? null } })),
    { kind: 'run.cancelled', runId, agent: run.agent, actor, data: { reason: reason ?? null } },
  ]);
  await cancelOpenApprovals(tx, rows.map((r) => r.id), now, actor, reason);
  for (const r of rows) await releaseTaskReservations(tx, r.id, now, 'task cancelled');
  return rows.length;
}

async function retryRun(tx: SqlExecutor, runId: string, now: number, actor: string): Promise<Run> {
  const run = await tx.get<RunRow>('SELECT * FROM runs WHERE id = ?', [runId]);
  if (!run) throw new NotFoundError('run', runId);
  if (run.state !== 'failed') throw new InvalidStateError(`run ${runId} is ${run.state}; only a failed run can be retried`);
  const changed = await tx.run(
    `UPDATE tasks SET state = 'queued', attempt = 0, reclaims = 0, error = NULL, finished_at = NULL,
       lease_owner = NULL, lease_expires_at = NULL, run_at = ?, updated_at = ?
     WHERE id = ? AND state = 'dead'`,
    [now, now, run.root_task_id],
  );
  if (changed !== 1) throw new InvalidStateError(`run ${runId}'s root task is not dead; nothing to retry`);
  const updated = await tx.get<RunRow>(`UPDATE runs SET state = 'running', error = NULL, finished_at = NULL, updated_at = ? WHERE id = ? RETURNING *`, [now, runId]);
  // Back into its session's lane: now if the lane is free, else behind the run holding it.
  if (run.session_key && !(await retakeLane(tx, run.session_key, runId))) {
    await tx.run(`UPDATE tasks SET state = 'waiting', waiting_for = 'lane' WHERE id = ?`, [run.root_task_id]);
  }
  await insertAudit(tx, now, [
    { kind: 'run.retried', runId, agent: run.agent, actor },
    { kind: 'task.replayed', runId, taskId: run.root_task_id, agent: run.agent, actor },
  ]);
  return toRun(updated!);
}

export function sqlRunStore(db: SqlBackend): RunStore {
  const byStatement = db.commitStatement ? (db as StatementBackend) : null;
  const batched = byStatement ? createBatcher(byStatement) : null;
  return {
    async create(req: NewRun, now: number): Promise<{ run: Run; created: boolean }> {
      if (byStatement && batched) {
        if (req.idempotencyKey) {
          const alone = await createAlone(byStatement, req, now);
          if (alone) return alone;
        } else {
          const run = await batched(runToCreate(req, now));
          if (run) return { run, created: true };
        }
      }
      const result = await db.transaction(async (tx) => {
        const inserted = await insertRun(tx, { ...req, runId: newId('run'), envelopeId: null, session: null, kind: 'work' }, now);
        if (inserted) return { run: inserted, created: true };
        const existing = await tx.get<RunRow>('SELECT * FROM runs WHERE idempotency_key = ?', [req.idempotencyKey ?? null]);
        if (!existing) throw new Error('idempotency conflict without an existing run');
        return { run: toRun(existing), created: false };
      });
      if (result.created) db.signalTasksReady();
      return result;
    },

    get(id: string): Promise<Run | null> {
      return selectRun(db.read, id);
    },

    async list(filter: RunFilter): Promise<Run[]> {
      const w = whereOf([
        ['state = ?', filter.state],
        ['agent = ?', filter.agent],
        ['id < ?', filter.before],
      ]);
      const rows = await db.read.all<RunRow>(`SELECT * FROM runs ${w.sql} ORDER BY id DESC LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toRun);
    },

    async cancel(runId: string, now: number, actor: string, reason?: string): Promise<number> {
      const count = await db.transaction((tx) => cancelRun(tx, runId, now, actor, reason));
      // A session lane may have been freed for the next message.
      db.signalTasksReady();
      return count;
    },

    async retry(runId: string, now: number, actor: string): Promise<Run> {
      const run = await db.transaction((tx) => retryRun(tx, runId, now, actor));
      db.signalTasksReady();
      return run;
    },
  };
}
