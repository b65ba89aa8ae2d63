import { CancelledError, InvalidStateError, LeaseExpiredTooOftenError, LeaseLostError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Action, ErrorInfo, Json, Run, Task, TurnRecord, Usage } from '../../core/types.ts';
import type {
  AuditEntry,
  AuditEvent,
  ClaimedTask,
  ClaimRequest,
  EffectRecord,
  EffectStart,
  Lease,
  NewRun,
  RunFilter,
  SchemaStatus,
  Store,
  StoreCapabilities,
  TaskFilter,
  TurnCommit,
  WorkerInfo,
} from '../store.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { assertSchemaCurrent, migrate, schemaStatus } from './migrator.ts';
import {
  assembleTurns,
  parseUsage,
  toAuditEvent,
  toEffect,
  toRun,
  toTask,
  toWorker,
  type AuditRow,
  type ChildOutcomeRow,
  type EffectRow,
  type RunRow,
  type TaskRow,
  type TurnRow,
  type WorkerRow,
} from './rows.ts';

const UNFINISHED = `('queued', 'leased', 'running', 'waiting', 'retry-scheduled', 'escalated')`;
const HELD = `('leased', 'running')`;
/** Rows per multi-row audit INSERT; keeps the number of distinct statements small. */
const AUDIT_CHUNK = 32;

/**
 * The Store port implemented once in portable SQL over a SqlBackend. All state
 * transitions live here, so SQLite and PostgreSQL share one behaviour and one
 * conformance suite; the backends differ only in what SqlBackend names.
 */
export class SqlStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly description: string;
  private readonly db: SqlBackend;

  constructor(backend: SqlBackend) {
    this.db = backend;
    this.capabilities = backend.capabilities;
    this.description = backend.description;
  }

  migrate(): Promise<{ applied: number[]; version: number }> {
    return migrate(this.db, Date.now());
  }
  schemaStatus(): Promise<SchemaStatus> {
    return schemaStatus(this.db);
  }
  assertSchemaCurrent(): Promise<void> {
    return assertSchemaCurrent(this.db);
  }
  close(): Promise<void> {
    return this.db.close();
  }
  onTasksReady(listener: () => void): () => void {
    return this.db.onTasksReady(listener);
  }

  // ── runs ────────────────────────────────────────────────────────────────────

  async createRun(req: NewRun, now: number): Promise<{ run: Run; created: boolean }> {
    const result = await this.db.transaction(async (tx) => {
      const runId = newId('run');
      const taskId = newId('task');
      const inserted = await tx.get<RunRow>(
        `INSERT INTO runs (id, idempotency_key, agent, state, input, root_task_id, created_at, updated_at)
         VALUES (?, ?, ?, 'running', ?, ?, ?, ?)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
        [runId, req.idempotencyKey ?? null, req.agent, toJson(req.input), taskId, now, now],
      );
      if (!inserted) {
        const existing = await tx.get<RunRow>('SELECT * FROM runs WHERE idempotency_key = ?', [req.idempotencyKey ?? null]);
        if (!existing) throw new Error('idempotency conflict without an existing run');
        return { run: toRun(existing), created: false };
      }
      await tx.run(
        `INSERT INTO tasks (id, run_id, depth, agent, state, input, max_attempts, run_at, created_at, updated_at)
         VALUES (?, ?, 0, ?, 'queued', ?, ?, ?, ?, ?)`,
        [taskId, runId, req.agent, toJson(req.input), req.maxAttempts, now, now, now],
      );
      const actor = req.actor ?? null;
      await insertAudit(tx, now, [
        { kind: 'run.created', runId, agent: req.agent, actor, data: { idempotencyKey: req.idempotencyKey ?? null } },
        { kind: 'task.created', runId, taskId, agent: req.agent, actor, data: { depth: 0 } },
      ]);
      return { run: toRun(inserted), created: true };
    });
    if (result.created) this.db.signalTasksReady();
    return result;
  }

  async getRun(id: string): Promise<Run | null> {
    const row = await this.db.read.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]);
    return row ? toRun(row) : null;
  }

  async listRuns(filter: RunFilter): Promise<Run[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.state) {
      where.push('state = ?');
      params.push(filter.state);
    }
    if (filter.agent) {
      where.push('agent = ?');
      params.push(filter.agent);
    }
    if (filter.before) {
      where.push('id < ?');
      params.push(filter.before);
    }
    params.push(filter.limit);
    const rows = await this.db.read.all<RunRow>(
      `SELECT * FROM runs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`,
      params,
    );
    return rows.map(toRun);
  }

  async getTask(id: string): Promise<Task | null> {
    const row = await this.db.read.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', [id]);
    return row ? toTask(row) : null;
  }

  async listTasks(filter: TaskFilter): Promise<Task[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.runId) {
      where.push('run_id = ?');
      params.push(filter.runId);
    }
    if (filter.state) {
      where.push('state = ?');
      params.push(filter.state);
    }
    params.push(filter.limit);
    const rows = await this.db.read.all<TaskRow>(
      `SELECT * FROM tasks ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT ?`,
      params,
    );
    return rows.map(toTask);
  }

  async getTurns(taskId: string): Promise<TurnRecord[]> {
    const { committed } = await this.loadTurns(this.db.read, taskId);
    return committed;
  }

  async listEffects(filter: { runId?: string; taskId?: string }): Promise<EffectRecord[]> {
    const rows = filter.taskId
      ? await this.db.read.all<EffectRow>('SELECT * FROM effects WHERE task_id = ? ORDER BY turn, action', [filter.taskId])
      : filter.runId
        ? await this.db.read.all<EffectRow>('SELECT * FROM effects WHERE run_id = ? ORDER BY task_id, turn, action', [filter.runId])
        : await this.db.read.all<EffectRow>('SELECT * FROM effects ORDER BY started_at, key');
    return rows.map(toEffect);
  }

  async cancelRun(runId: string, now: number, actor: string, reason?: string): Promise<number> {
    return this.db.transaction(async (tx) => {
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
      await tx.run(`UPDATE runs SET state = 'cancelled', error = ?, finished_at = ?, updated_at = ? WHERE id = ?`, [
        toJson(error),
        now,
        now,
        runId,
      ]);
      await insertAudit(tx, now, [
        ...rows.map((r) => ({ kind: 'task.cancelled', runId, taskId: r.id, agent: r.agent, actor, data: { reason: reason ?? null } })),
        { kind: 'run.cancelled', runId, agent: run.agent, actor, data: { reason: reason ?? null } },
      ]);
      return rows.length;
    });
  }

  async cancelTask(taskId: string, now: number, actor: string, reason?: string): Promise<number> {
    const result = await this.db.transaction(async (tx) => {
      const top = await tx.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', [taskId]);
      if (!top) throw new NotFoundError('task', taskId);
      if (!isUnfinished(top.state)) throw new InvalidStateError(`task ${taskId} is already ${top.state}`);
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
      const woke = await this.propagateFinish(tx, toTask(top), 'cancelled', null, error, now, actor);
      return { count: rows.length, woke };
    });
    if (result.woke) this.db.signalTasksReady();
    return result.count;
  }

  async retryRun(runId: string, now: number, actor: string): Promise<Run> {
    const run = await this.db.transaction(async (tx) => {
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
      const updated = await tx.get<RunRow>(
        `UPDATE runs SET state = 'running', error = NULL, finished_at = NULL, updated_at = ? WHERE id = ? RETURNING *`,
        [now, runId],
      );
      await insertAudit(tx, now, [
        { kind: 'run.retried', runId, agent: run.agent, actor },
        { kind: 'task.replayed', runId, taskId: run.root_task_id, agent: run.agent, actor },
      ]);
      return toRun(updated!);
    });
    this.db.signalTasksReady();
    return run;
  }

  // ── workers ─────────────────────────────────────────────────────────────────

  async claimTasks(req: ClaimRequest): Promise<ClaimedTask[]> {
    if (req.limit <= 0) return [];
    const rows = await this.db.transaction(async (tx) => {
      const rows = await tx.all<TaskRow>(this.db.sql.claimTasks, [req.workerId, req.now + req.leaseMs, req.now, req.now, req.limit]);
      await insertAudit(
        tx,
        req.now,
        rows.map((r) => ({ kind: 'task.leased', runId: r.run_id, taskId: r.id, agent: r.agent, actor: req.workerId, data: { leaseNo: Number(r.lease_no) } })),
      );
      return rows;
    });
    const claimed: ClaimedTask[] = [];
    for (const row of rows) {
      const task = toTask(row);
      claimed.push(await this.loadClaimContext(task));
    }
    return claimed;
  }

  private async loadClaimContext(task: Task): Promise<ClaimedTask> {
    const lease: Lease = { taskId: task.id, owner: task.leaseOwner!, leaseNo: task.leaseNo };
    const { committed, open } = await this.loadTurns(this.db.read, task.id);
    const last = committed.at(-1);
    let openTurn: ClaimedTask['openTurn'] = null;
    if (open) {
      const effects = await this.db.read.all<EffectRow>('SELECT * FROM effects WHERE task_id = ? AND turn = ? ORDER BY action', [
        task.id,
        Number(open.n),
      ]);
      openTurn = {
        turn: Number(open.n),
        actions: parseJson<Action[]>(open.actions) ?? [],
        ...(open.output === null ? {} : { output: parseJson(open.output) }),
        usage: parseUsage(open.usage),
        effects: effects.map(toEffect),
      };
    }
    return { task, lease, history: committed, results: last ? last.results : [], openTurn };
  }

  private async loadTurns(db: SqlExecutor, taskId: string) {
    const turns = await db.all<TurnRow>('SELECT * FROM turns WHERE task_id = ? ORDER BY n', [taskId]);
    if (turns.length === 0) return { committed: [], open: null };
    const needsChildren = turns.some((t) => t.actions.includes('"handoff"'));
    const children = needsChildren
      ? await db.all<ChildOutcomeRow>('SELECT id, parent_turn, parent_action, state, output, error FROM tasks WHERE parent_id = ?', [taskId])
      : [];
    return assembleTurns(turns, children);
  }

  async markRunning(lease: Lease, now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await tx.get<{ run_id: string; agent: string }>(
        `UPDATE tasks SET state = 'running', updated_at = ? WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state = 'leased'
         RETURNING run_id, agent`,
        [now, lease.taskId, lease.owner, lease.leaseNo],
      );
      if (row) await insertAudit(tx, now, [{ kind: 'task.running', runId: row.run_id, taskId: lease.taskId, agent: row.agent, actor: lease.owner }]);
    });
  }

  async heartbeat(workerId: string, leaseUntil: number, now: number): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.all<{ id: string }>(
        `UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? AND state IN ${HELD} RETURNING id`,
        [leaseUntil, workerId],
      );
      await tx.run('UPDATE workers SET heartbeat_at = ? WHERE id = ?', [now, workerId]);
      return rows.map((r) => r.id);
    });
  }

  async releaseLeases(leases: Lease[], now: number): Promise<void> {
    if (leases.length === 0) return;
    await this.db.transaction(async (tx) => {
      const audit: AuditEntry[] = [];
      for (const lease of leases) {
        const row = await tx.get<{ run_id: string; agent: string }>(
          `UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_at = ?, updated_at = ?
           WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state IN ${HELD} RETURNING run_id, agent`,
          [now, now, lease.taskId, lease.owner, lease.leaseNo],
        );
        if (row) audit.push({ kind: 'task.released', runId: row.run_id, taskId: lease.taskId, agent: row.agent, actor: lease.owner });
      }
      await insertAudit(tx, now, audit);
    });
    this.db.signalTasksReady();
  }

  async reclaimExpiredLeases(now: number, maxReclaims: number): Promise<number> {
    const count = await this.db.transaction(async (tx) => {
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
        if (task.reclaims > maxReclaims) {
          const error = new LeaseExpiredTooOftenError(task.reclaims).toInfo();
          await tx.run(
            `UPDATE tasks SET state = 'dead', error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'`,
            [toJson(error), now, now, task.id],
          );
          await insertAudit(tx, now, [{ kind: 'task.dead', runId: task.runId, taskId: task.id, agent: task.agent, actor: 'reaper', data: { error: error as unknown as Json } }]);
          await this.propagateFinish(tx, task, 'dead', null, error, now, 'reaper');
        }
      }
      return rows.length;
    });
    if (count > 0) this.db.signalTasksReady();
    return count;
  }

  async recordDecision(
    lease: Lease,
    decision: { n: number; actions: Action[]; output?: Json; usage: Usage | null; effects: EffectStart[]; audit: AuditEntry[] },
    now: number,
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      const task = await this.fence(tx, lease, now);
      await tx.run(`INSERT INTO turns (task_id, n, state, actions, output, usage, decided_at) VALUES (?, ?, 'decided', ?, ?, ?, ?)`, [
        lease.taskId,
        decision.n,
        toJson(decision.actions),
        decision.output === undefined ? null : toJson(decision.output),
        decision.usage ? toJson(decision.usage) : null,
        now,
      ]);
      for (const e of decision.effects) {
        await tx.run(
          `INSERT INTO effects (key, run_id, task_id, turn, action, tool, input_digest, state, attempts, started_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'started', 1, ?)`,
          [e.key, task.run_id, lease.taskId, decision.n, e.action, e.tool, e.inputDigest, now],
        );
      }
      await insertAudit(tx, now, decision.audit);
    });
  }

  async restartEffect(key: string, now: number): Promise<EffectRecord> {
    return this.db.transaction(async (tx) => {
      const row = await tx.get<EffectRow>(
        `UPDATE effects SET attempts = attempts + 1, started_at = ? WHERE key = ? AND state = 'started' RETURNING *`,
        [now, key],
      );
      if (!row) throw new InvalidStateError(`effect ${key} is not in state started`);
      await insertAudit(tx, now, [
        { kind: 'effect.restarted', runId: row.run_id, taskId: row.task_id, data: { key, tool: row.tool, attempts: Number(row.attempts) } },
      ]);
      return toEffect(row);
    });
  }

  async completeEffect(key: string, outcome: { result: Json } | { error: ErrorInfo }, now: number, audit: AuditEntry[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const ok = 'result' in outcome;
      await tx.run(`UPDATE effects SET state = ?, result = ?, error = ?, completed_at = ? WHERE key = ? AND state = 'started'`, [
        ok ? 'completed' : 'failed',
        ok ? toJson(outcome.result) : null,
        ok ? null : toJson(outcome.error),
        now,
        key,
      ]);
      await insertAudit(tx, now, audit);
    });
  }

  async commitTurn(c: TurnCommit): Promise<void> {
    const woke = await this.db.transaction(async (tx) => {
      const row = await this.fence(tx, c.lease, c.now);
      const task = toTask(row);
      const now = c.now;
      if (c.turn) {
        await tx.run(
          `INSERT INTO turns (task_id, n, state, actions, results, output, usage, decided_at, committed_at)
           VALUES (?, ?, 'committed', ?, ?, ?, ?, ?, ?)
           ON CONFLICT (task_id, n) DO UPDATE SET state = 'committed', results = excluded.results, output = excluded.output,
             usage = COALESCE(excluded.usage, turns.usage), committed_at = excluded.committed_at`,
          [
            task.id,
            c.turn.n,
            toJson(c.turn.actions),
            toJson(c.turn.results),
            c.turn.output === undefined ? null : toJson(c.turn.output),
            c.turn.usage ? toJson(c.turn.usage) : null,
            now,
            now,
          ],
        );
      }
      const turns = c.turn ? c.turn.n : task.turns;
      const audit: AuditEntry[] = [...c.audit];
      const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: c.lease.owner };
      let woke = false;
      switch (c.outcome.kind) {
        case 'continue':
          await tx.run(`UPDATE tasks SET turns = ?, attempt = 0, state = 'running', updated_at = ? WHERE id = ?`, [turns, now, task.id]);
          break;
        case 'wait': {
          const children = c.outcome.children;
          for (const child of children) {
            const childId = child.id;
            await tx.run(
              `INSERT INTO tasks (id, run_id, parent_id, parent_turn, parent_action, depth, agent, state, input, max_attempts, run_at, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
              [childId, task.runId, task.id, turns, child.parentAction, task.depth + 1, child.agent, toJson(child.input), child.maxAttempts, now, now, now],
            );
            audit.push({ kind: 'task.created', runId: task.runId, taskId: childId, agent: child.agent, actor: c.lease.owner, data: { parent: task.id, depth: task.depth + 1 } });
          }
          await tx.run(
            `UPDATE tasks SET turns = ?, attempt = 0, state = 'waiting', waiting_on = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
             WHERE id = ?`,
            [turns, children.length, now, task.id],
          );
          audit.push({ ...base, kind: 'task.waiting', data: { children: children.length } });
          woke = children.length > 0;
          break;
        }
        case 'succeed':
          await tx.run(`UPDATE tasks SET turns = ?, attempt = 0 WHERE id = ?`, [turns, task.id]);
          await insertAudit(tx, now, audit.splice(0));
          woke = await this.finishTask(tx, task, 'succeeded', c.outcome.output, null, now, c.lease.owner);
          break;
        case 'retry':
          await tx.run(
            `UPDATE tasks SET turns = ?, state = 'retry-scheduled', attempt = attempt + 1, error = ?, run_at = ?,
               lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
            [turns, toJson(c.outcome.error), c.outcome.runAt, now, task.id],
          );
          audit.push(
            { ...base, kind: 'task.failed', data: { error: c.outcome.error as unknown as Json, attempt: task.attempt + 1 } },
            { ...base, kind: 'task.retry-scheduled', data: { runAt: c.outcome.runAt, attempt: task.attempt + 1 } },
          );
          break;
        case 'dead':
          await tx.run(`UPDATE tasks SET turns = ?, attempt = attempt + 1 WHERE id = ?`, [turns, task.id]);
          audit.push({ ...base, kind: 'task.failed', data: { error: c.outcome.error as unknown as Json, attempt: task.attempt + 1 } });
          await insertAudit(tx, now, audit.splice(0));
          woke = await this.finishTask(tx, task, 'dead', null, c.outcome.error, now, c.lease.owner);
          break;
      }
      await insertAudit(tx, now, audit);
      return woke;
    });
    if (woke) this.db.signalTasksReady();
  }

  /** Checks the lease is still held; returns the task row. */
  private async fence(tx: SqlExecutor, lease: Lease, now: number): Promise<TaskRow> {
    const row = await tx.get<TaskRow>(
      `UPDATE tasks SET updated_at = ? WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state IN ${HELD} RETURNING *`,
      [now, lease.taskId, lease.owner, lease.leaseNo],
    );
    if (!row) throw new LeaseLostError(lease.taskId);
    return row;
  }

  /** Moves a task to a final state and tells its parent (join) or its run. Returns true if a task became ready. */
  private async finishTask(
    tx: SqlExecutor,
    task: Task,
    state: 'succeeded' | 'dead',
    output: Json | null,
    error: ErrorInfo | null,
    now: number,
    actor: string,
  ): Promise<boolean> {
    await tx.run(
      `UPDATE tasks SET state = ?, output = ?, error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
       WHERE id = ?`,
      [state, output === null ? null : toJson(output), error ? toJson(error) : null, now, now, task.id],
    );
    await insertAudit(tx, now, [
      {
        kind: `task.${state}`,
        runId: task.runId,
        taskId: task.id,
        agent: task.agent,
        actor,
        ...(error ? { data: { error: error as unknown as Json } } : {}),
      },
    ]);
    return this.propagateFinish(tx, task, state, output, error, now, actor);
  }

  /** A finished task wakes its parent once all siblings are done, or finishes its run. */
  private async propagateFinish(
    tx: SqlExecutor,
    task: Task,
    state: 'succeeded' | 'dead' | 'cancelled',
    output: Json | null,
    error: ErrorInfo | null,
    now: number,
    actor: string,
  ): Promise<boolean> {
    if (task.parentId) {
      const parent = await tx.get<{ waiting_on: number | string; run_id: string; agent: string }>(
        `UPDATE tasks SET waiting_on = waiting_on - 1, updated_at = ? WHERE id = ? AND state = 'waiting' RETURNING waiting_on, run_id, agent`,
        [now, task.parentId],
      );
      if (parent && Number(parent.waiting_on) === 0) {
        await tx.run(`UPDATE tasks SET state = 'queued', run_at = ?, updated_at = ? WHERE id = ?`, [now, now, task.parentId]);
        await insertAudit(tx, now, [{ kind: 'task.joined', runId: parent.run_id, taskId: task.parentId, agent: parent.agent, actor }]);
        return true;
      }
      return false;
    }
    const runState = state === 'succeeded' ? 'succeeded' : state === 'dead' ? 'failed' : 'cancelled';
    const run = await tx.get<{ agent: string }>(
      `UPDATE runs SET state = ?, output = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ? RETURNING agent`,
      [runState, output === null ? null : toJson(output), error ? toJson(error) : null, now, now, task.runId],
    );
    await insertAudit(tx, now, [{ kind: `run.${runState}`, runId: task.runId, agent: run?.agent ?? task.agent, actor }]);
    return false;
  }

  async registerWorker(info: { id: string; pid: number; host: string }, now: number): Promise<void> {
    await this.db.transaction((tx) =>
      tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', [info.id, info.pid, info.host, now, now]),
    );
  }

  async stopWorker(id: string, now: number): Promise<void> {
    await this.db.transaction((tx) => tx.run('UPDATE workers SET stopped_at = ?, heartbeat_at = ? WHERE id = ?', [now, now, id]));
  }

  async listWorkers(opts: { aliveSince?: number }): Promise<WorkerInfo[]> {
    const rows =
      opts.aliveSince === undefined
        ? await this.db.read.all<WorkerRow>('SELECT * FROM workers ORDER BY started_at')
        : await this.db.read.all<WorkerRow>('SELECT * FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ? ORDER BY started_at', [
            opts.aliveSince,
          ]);
    return rows.map(toWorker);
  }

  // ── audit ───────────────────────────────────────────────────────────────────

  async appendAudit(entries: AuditEntry[], now: number): Promise<void> {
    await this.db.transaction((tx) => insertAudit(tx, now, entries));
  }

  async listAudit(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]> {
    const rows = filter.runId
      ? await this.db.read.all<AuditRow>('SELECT * FROM audit_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?', [
          filter.runId,
          filter.afterSeq ?? 0,
          filter.limit,
        ])
      : await this.db.read.all<AuditRow>('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?', [filter.afterSeq ?? 0, filter.limit]);
    return rows.map(toAuditEvent);
  }

  async latestAuditSeq(): Promise<number> {
    const row = await this.db.read.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM audit_events');
    return Number(row?.seq ?? 0);
  }
}

function isUnfinished(state: string): boolean {
  return UNFINISHED.includes(`'${state}'`);
}

function cancelledInfo(actor: string, reason?: string): ErrorInfo {
  return new CancelledError(reason ? `cancelled by ${actor}: ${reason}` : `cancelled by ${actor}`).toInfo();
}

/** Appends audit rows with multi-row INSERTs (one round trip per chunk). */
export async function insertAudit(tx: SqlExecutor, now: number, entries: readonly AuditEntry[]): Promise<void> {
  for (let i = 0; i < entries.length; i += AUDIT_CHUNK) {
    const chunk = entries.slice(i, i + AUDIT_CHUNK);
    const params: SqlParam[] = [];
    for (const e of chunk) {
      params.push(now, e.kind, e.runId ?? null, e.taskId ?? null, e.agent ?? null, e.actor ?? null, e.digest ?? null, e.data === undefined ? null : toJson(e.data));
    }
    await tx.run(
      `INSERT INTO audit_events (at, kind, run_id, task_id, agent, actor, digest, data) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      params,
    );
  }
}
