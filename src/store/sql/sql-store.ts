import { CancelledError, InvalidStateError, LeaseExpiredTooOftenError, LeaseLostError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Action, ErrorInfo, Json, Run, SessionMessage, Task, TurnRecord, Usage } from '../../core/types.ts';
import { HELD_TASK_STATES, UNFINISHED_TASK_STATES, sqlStateSet } from '../../engine/task-states.ts';
import type { Envelope } from '../../core/envelope.ts';
import { envelopeInput } from '../../intake/envelope.ts';
import type {
  AcceptResult,
  AcceptRoute,
  Approval,
  ApprovalStore,
  AuditStore,
  ContractStore,
  EnvelopeStore,
  GrantStore,
  LimitStore,
  RunStore,
  SessionStore,
  TaskStore,
  WorkerStore,
  ApprovalState,
  AuditEntry,
  AuditEvent,
  BudgetUsage,
  ClaimedTask,
  ClaimRequest,
  EffectRecord,
  EffectStart,
  EnvelopeRecord,
  Lease,
  LimitAcquire,
  LimitResult,
  NewRun,
  RunFilter,
  SchemaStatus,
  SessionInfo,
  Settlement,
  StandingGrant,
  Store,
  StoreCapabilities,
  StoreHealth,
  TaskFilter,
  TurnCommit,
  WorkerInfo,
} from '../store.ts';
import type { OutboxStore } from '../outbox.ts';
import type { ScheduleStore } from '../schedules.ts';
import type { TokenStore } from '../tokens.ts';
import type { SqlBackend } from './backend.ts';
import { SqlOutboxStore, enqueueRunReply } from './outbox-sql.ts';
import { SqlScheduleStore } from './schedule-sql.ts';
import { SqlTokenStore } from './token-sql.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { assertSchemaCurrent, migrate, schemaStatus } from './migrator.ts';
import { storeHealth } from './health-sql.ts';
import { enterLane, insertEnvelopeRow, leaveLane, resetSession, sessionHistory, toEnvelope, toSession, type EnvelopeRow, type SessionRow } from './intake-sql.ts';
import {
  LimitRefused,
  acquireLimits,
  approvalFor,
  decideApproval,
  expireApprovals,
  insertApproval,
  releaseExpiredReservations,
  releaseTaskReservations,
  settleReservation,
  toApproval,
  toStandingGrant,
  wakeForApproval,
  type ApprovalRow,
  type StandingGrantRow,
} from './policy-sql.ts';
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

const UNFINISHED = sqlStateSet(UNFINISHED_TASK_STATES);
const HELD = sqlStateSet(HELD_TASK_STATES);
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
  readonly tokens: TokenStore;
  readonly outbox: OutboxStore;
  readonly schedules: ScheduleStore;
  readonly runs: RunStore;
  readonly tasks: TaskStore;
  readonly workers: WorkerStore;
  readonly envelopes: EnvelopeStore;
  readonly sessions: SessionStore;
  readonly contracts: ContractStore;
  readonly limits: LimitStore;
  readonly approvals: ApprovalStore;
  readonly grants: GrantStore;
  readonly audit: AuditStore;
  private readonly db: SqlBackend;

  constructor(backend: SqlBackend) {
    this.db = backend;
    this.capabilities = backend.capabilities;
    this.description = backend.description;
    this.tokens = new SqlTokenStore(backend);
    this.outbox = new SqlOutboxStore(backend);
    this.schedules = new SqlScheduleStore(backend);
    this.runs = {
      create: (r, now) => this.createRun(r, now),
      get: (id) => this.getRun(id),
      list: (f) => this.listRuns(f),
      cancel: (id, now, actor, reason) => this.cancelRun(id, now, actor, reason),
      retry: (id, now, actor) => this.retryRun(id, now, actor),
    };
    this.tasks = {
      get: (id) => this.getTask(id),
      list: (f) => this.listTasks(f),
      turns: (id) => this.getTurns(id),
      effects: (f) => this.listEffects(f),
      cancel: (id, now, actor, reason) => this.cancelTask(id, now, actor, reason),
      nextDueAt: () => this.nextDueAt(),
      claim: (req) => this.claimTasks(req),
      heartbeat: (w, until, now, ids) => this.heartbeat(w, until, now, ids),
      release: (leases, now) => this.releaseLeases(leases, now),
      reclaimExpired: (now, max) => this.reclaimExpiredLeases(now, max),
      recordDecision: (lease, d, now) => this.recordDecision(lease, d, now),
      beginEffect: (e, now) => this.beginEffect(e, now),
      completeEffect: (key, outcome, now, audit, settle) => this.completeEffect(key, outcome, now, audit, settle),
    };
    this.workers = {
      register: (info, now) => this.registerWorker(info, now),
      stop: (id, now) => this.stopWorker(id, now),
      list: (opts) => this.listWorkers(opts),
    };
    this.envelopes = {
      get: (id) => this.getEnvelope(id),
      list: (f) => this.listEnvelopes(f),
      routingDue: (limit) => this.routingDue(limit),
      failRouting: (id, error, now) => this.failRouting(id, error, now),
      completeRouting: (id, route, now) => this.completeRouting(id, route, now),
    };
    this.sessions = {
      list: (f) => this.listSessions(f),
      get: (key) => this.getSession(key),
      messages: (key, limit) => this.sessionMessages(key, limit),
      reset: (key, actor, now) => this.resetSession(key, actor, now),
      fork: (key, newKey, limit, actor, now) => this.forkSession(key, newKey, limit, actor, now),
    };
    this.contracts = { record: (id, d, schema, now) => this.recordContract(id, d, schema, now) };
    this.limits = {
      acquire: (req, now) => this.acquireLimits(req, now),
      settle: (st, now) => this.settleReservation(st, now),
      releaseExpired: (now) => this.releaseExpiredReservations(now),
      usage: (keys) => this.budgetUsage(keys),
    };
    this.approvals = {
      stateFor: (key) => this.approvalFor(key),
      get: (id) => this.getApproval(id),
      list: (f) => this.listApprovals(f),
      decide: (id, d, now) => this.decideApproval(id, d, now),
      expire: (now) => this.expireApprovals(now),
    };
    this.grants = {
      grant: (g, now) => this.grantStanding(g, now),
      revoke: (id, actor, now) => this.revokeStanding(id, actor, now),
      list: (f) => this.listStandingGrants(f),
    };
    this.audit = {
      append: (entries, now) => this.appendAudit(entries, now),
      list: (f) => this.listAudit(f),
      latestSeq: () => this.latestAuditSeq(),
    };
  }

  async checkWritable(_now: number): Promise<void> {
    // Placeholder until the store split: a real write (disk full, read-only, I/O errors) belongs here.
    await this.db.transaction(async (tx) => {
      await tx.get('SELECT 1');
    });
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
  health(now: number, aliveSince: number): Promise<StoreHealth> {
    return storeHealth(this.db.read, now, aliveSince);
  }
  close(): Promise<void> {
    return this.db.close();
  }
  onTasksReady(listener: () => void): () => void {
    return this.db.onTasksReady(listener);
  }
  onCommitted(listener: () => void): () => void {
    return this.db.onCommitted(listener);
  }

  // ── runs ────────────────────────────────────────────────────────────────────

  async createRun(req: NewRun, now: number): Promise<{ run: Run; created: boolean }> {
    const result = await this.db.transaction(async (tx) => {
      const inserted = await this.insertRun(tx, { ...req, runId: newId('run'), envelopeId: null, session: null, kind: 'work' }, now);
      if (inserted) return { run: inserted, created: true };
      const existing = await tx.get<RunRow>('SELECT * FROM runs WHERE idempotency_key = ?', [req.idempotencyKey ?? null]);
      if (!existing) throw new Error('idempotency conflict without an existing run');
      return { run: toRun(existing), created: false };
    });
    if (result.created) this.db.signalTasksReady();
    return result;
  }

  /**
   * Inserts a run and its root task. In a session, the run joins the session's lane:
   * its root task is queued only if the lane is free, else it waits for the lane.
   * Returns null if the idempotency key exists already.
   */
  private async insertRun(
    tx: SqlExecutor,
    req: NewRun & {
      runId: string;
      envelopeId: string | null;
      kind: 'work' | 'router';
      session: { key: string; agent: string; resetBefore: number } | null;
    },
    now: number,
    sink?: AuditEntry[],
  ): Promise<Run | null> {
    const { runId } = req;
    const taskId = newId('task');
    const audit: AuditEntry[] = sink ?? [];
    const lane = req.session ? await enterLane(tx, req.session, runId, now, audit) : null;
    const inserted = await tx.get<RunRow>(
      `INSERT INTO runs (id, idempotency_key, agent, state, input, root_task_id, tenant, envelope_id, session_key, session_seq, session_epoch, kind, created_at, updated_at)
       VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    const actor = req.actor ?? null;
    audit.push(
      {
        kind: 'run.created',
        runId,
        agent: req.agent,
        actor,
        data: { idempotencyKey: req.idempotencyKey ?? null, envelope: req.envelopeId, session: req.session?.key ?? null, kind: req.kind },
      },
      { kind: 'task.created', runId, taskId, agent: req.agent, actor, data: { depth: 0, ...(waits ? { waitingFor: 'lane' } : {}) } },
    );
    if (!sink) await insertAudit(tx, now, audit);
    return toRun(inserted);
  }

  async acceptEnvelope(req: { envelope: Envelope; envelopeId: string; route: AcceptRoute; actor: string }, now: number): Promise<AcceptResult> {
    const result = await this.db.transaction(async (tx) => {
      const e = req.envelope;
      const route = req.route;
      // The run's id is chosen up front, so the envelope row is written once, complete.
      const runId = route.ok ? newId('run') : null;
      const row: Omit<EnvelopeRow, 'received_at'> = {
        id: req.envelopeId,
        idempotency_key: e.idempotencyKey,
        channel: e.channel,
        account: e.account,
        peer_kind: e.peer.kind,
        peer_id: e.peer.id,
        parent_peer: e.parentPeer,
        sender: e.sender ? toJson(e.sender) : null,
        thread: e.thread,
        text: e.text,
        data: toJson(e.data),
        reply_to: e.replyTo === null ? null : toJson(e.replyTo),
        state: route.ok ? (route.kind === 'router' ? 'routing' : 'routed') : 'unroutable',
        route: toJson(route.decision),
        error: route.ok ? null : toJson(route.error),
        run_id: runId,
        session_key: route.ok ? route.session.key : null,
      };
      const created = await insertEnvelopeRow(tx, row, now);
      if (!created) {
        const existing = await tx.get<EnvelopeRow>('SELECT * FROM envelopes WHERE idempotency_key = ?', [e.idempotencyKey]);
        const env = toEnvelope(existing!);
        const run = env.runId ? await tx.get<RunRow>('SELECT * FROM runs WHERE id = ?', [env.runId]) : undefined;
        return { envelope: env, created: false, run: run ? toRun(run) : null };
      }
      // One audit INSERT for the envelope, its routing decision and its run.
      const audit: AuditEntry[] = [
        { kind: 'envelope.received', actor: req.actor, data: { envelope: req.envelopeId, channel: e.channel, account: e.account, peer: e.peer.id, idempotencyKey: e.idempotencyKey } },
        {
          kind: route.ok ? 'route.decided' : 'route.unroutable',
          agent: route.ok ? route.agent : null,
          actor: req.actor,
          data: { envelope: req.envelopeId, decision: route.decision, ...(route.ok ? {} : { error: route.error as unknown as Json }) },
        },
      ];
      let run: Run | null = null;
      if (route.ok) {
        run = await this.insertRun(
          tx,
          {
            runId: runId!,
            agent: route.agent,
            input: envelopeInput(e, req.envelopeId),
            maxAttempts: route.maxAttempts,
            actor: req.actor,
            envelopeId: req.envelopeId,
            session: route.session,
            kind: route.kind,
            ...(route.tenant ? { tenant: route.tenant } : {}),
          },
          now,
          audit,
        );
      }
      await insertAudit(tx, now, audit);
      return { envelope: toEnvelope({ ...row, received_at: now }), created: true, run };
    });
    if (result.created && result.run) this.db.signalTasksReady();
    return result;
  }

  async getEnvelope(id: string): Promise<EnvelopeRecord | null> {
    const row = await this.db.read.get<EnvelopeRow>('SELECT * FROM envelopes WHERE id = ?', [id]);
    return row ? toEnvelope(row) : null;
  }

  async listEnvelopes(filter: { state?: EnvelopeRecord['state']; before?: string; limit: number }): Promise<EnvelopeRecord[]> {
    const w = whereOf([
      ['state = ?', filter.state],
      ['id < ?', filter.before],
    ]);
    const rows = await this.db.read.all<EnvelopeRow>(`SELECT * FROM envelopes ${w.sql} ORDER BY id DESC LIMIT ?`, [...w.params, filter.limit]);
    return rows.map(toEnvelope);
  }

  async routingDue(limit: number): Promise<Array<{ envelope: EnvelopeRecord; router: Run }>> {
    const rows = await this.db.read.all<EnvelopeRow & { r_id: string }>(
      `SELECT e.*, r.id AS r_id FROM envelopes e JOIN runs r ON r.id = e.run_id
       WHERE e.state = 'routing' AND r.state IN ('succeeded', 'failed', 'cancelled') ORDER BY e.received_at LIMIT ?`,
      [limit],
    );
    const out: Array<{ envelope: EnvelopeRecord; router: Run }> = [];
    for (const r of rows) {
      const run = await this.getRun(r.r_id);
      if (run) out.push({ envelope: toEnvelope(r), router: run });
    }
    return out;
  }

  async failRouting(envelopeId: string, error: ErrorInfo, now: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run(`UPDATE envelopes SET state = 'unroutable', error = ? WHERE id = ? AND state = 'routing'`, [toJson(error), envelopeId]);
      if (changed === 1) await insertAudit(tx, now, [{ kind: 'route.unroutable', actor: 'router', data: { envelope: envelopeId, error: error as unknown as Json } }]);
      return changed === 1;
    });
  }

  async completeRouting(envelopeId: string, route: Extract<AcceptRoute, { ok: true }>, now: number): Promise<Run | null> {
    const run = await this.db.transaction(async (tx) => {
      const row = await tx.get<EnvelopeRow>(`UPDATE envelopes SET state = 'routed' WHERE id = ? AND state = 'routing' RETURNING *`, [envelopeId]);
      if (!row) return null;
      const e = toEnvelope(row);
      const run = await this.insertRun(
        tx,
        {
          runId: newId('run'),
          agent: route.agent,
          input: envelopeInput(e, envelopeId),
          maxAttempts: route.maxAttempts,
          actor: 'router',
          envelopeId,
          session: route.session,
          kind: 'work',
          ...(route.tenant ? { tenant: route.tenant } : {}),
        },
        now,
      );
      await tx.run('UPDATE envelopes SET run_id = ?, session_key = ?, route = ? WHERE id = ?', [run!.id, route.session.key, toJson(route.decision), envelopeId]);
      await insertAudit(tx, now, [{ kind: 'route.decided', runId: run!.id, agent: route.agent, actor: 'router', data: { envelope: envelopeId, decision: route.decision } }]);
      return run;
    });
    if (run) this.db.signalTasksReady();
    return run;
  }

  async listSessions(filter: { agent?: string; limit: number }): Promise<SessionInfo[]> {
    const rows = filter.agent
      ? await this.db.read.all<SessionRow>('SELECT * FROM sessions WHERE agent = ? ORDER BY last_activity_at DESC LIMIT ?', [filter.agent, filter.limit])
      : await this.db.read.all<SessionRow>('SELECT * FROM sessions ORDER BY last_activity_at DESC LIMIT ?', [filter.limit]);
    return rows.map(toSession);
  }

  async getSession(key: string): Promise<SessionInfo | null> {
    const row = await this.db.read.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
    return row ? toSession(row) : null;
  }

  async sessionMessages(key: string, limit: number): Promise<SessionMessage[]> {
    const row = await this.db.read.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
    if (!row) throw new NotFoundError('session', key);
    return sessionHistory(this.db.read, key, Number(row.next_seq) + 1, Number(row.epoch), limit);
  }

  async resetSession(key: string, actor: string, now: number): Promise<boolean> {
    const done = await this.db.transaction((tx) => resetSession(tx, key, actor, now));
    if (!done) throw new NotFoundError('session', key);
    return done;
  }

  async forkSession(key: string, newKey: string, historyLimit: number, actor: string, now: number): Promise<SessionInfo> {
    const history = await this.sessionMessages(key, historyLimit);
    return this.db.transaction(async (tx) => {
      const parent = await tx.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
      if (!parent) throw new NotFoundError('session', key);
      const row = await tx.get<SessionRow>(
        `INSERT INTO sessions (key, agent, forked_from, seed_history, created_at, last_activity_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO NOTHING RETURNING *`,
        [newKey, parent.agent, key, toJson(history), now, now],
      );
      if (!row) throw new InvalidStateError(`session ${newKey} exists already`);
      await insertAudit(tx, now, [{ kind: 'session.forked', agent: parent.agent, actor, data: { from: key, session: newKey, messages: history.length } }]);
      return toSession(row);
    });
  }

  async getRun(id: string): Promise<Run | null> {
    const row = await this.db.read.get<RunRow>('SELECT * FROM runs WHERE id = ?', [id]);
    return row ? toRun(row) : null;
  }

  async listRuns(filter: RunFilter): Promise<Run[]> {
    const w = whereOf([
      ['state = ?', filter.state],
      ['agent = ?', filter.agent],
      ['id < ?', filter.before],
    ]);
    const rows = await this.db.read.all<RunRow>(`SELECT * FROM runs ${w.sql} ORDER BY id DESC LIMIT ?`, [...w.params, filter.limit]);
    return rows.map(toRun);
  }

  async getTask(id: string): Promise<Task | null> {
    const row = await this.db.read.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', [id]);
    return row ? toTask(row) : null;
  }

  async listTasks(filter: TaskFilter): Promise<Task[]> {
    const w = whereOf([
      ['run_id = ?', filter.runId],
      ['state = ?', filter.state],
    ]);
    const rows = await this.db.read.all<TaskRow>(`SELECT * FROM tasks ${w.sql} ORDER BY id LIMIT ?`, [...w.params, filter.limit]);
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
    const count = await this.db.transaction(async (tx) => {
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
      if (run.session_key) await leaveLane(tx, run.session_key, runId, now);
      await insertAudit(tx, now, [
        ...rows.map((r) => ({ kind: 'task.cancelled', runId, taskId: r.id, agent: r.agent, actor, data: { reason: reason ?? null } })),
        { kind: 'run.cancelled', runId, agent: run.agent, actor, data: { reason: reason ?? null } },
      ]);
      return rows.length;
    });
    // A session lane may have been freed for the next message.
    this.db.signalTasksReady();
    return count;
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
      if (run.session_key) {
        // Back into its session's lane: now if the lane is free, else behind the run holding it.
        const took = await tx.run('UPDATE sessions SET active_run = ? WHERE key = ? AND active_run IS NULL', [runId, run.session_key]);
        if (took !== 1) await tx.run(`UPDATE tasks SET state = 'waiting', waiting_for = 'lane' WHERE id = ?`, [run.root_task_id]);
      }
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

  async nextDueAt(): Promise<number | null> {
    const row = await this.db.read.get<{ at: number | string | null }>(`SELECT MIN(run_at) AS at FROM tasks WHERE state IN ('queued', 'retry-scheduled')`);
    return row?.at === null || row?.at === undefined ? null : Number(row.at);
  }

  async claimTasks(req: ClaimRequest): Promise<ClaimedTask[]> {
    if (req.limit <= 0) return [];
    const rows = await this.db.transaction(async (tx) => {
      const rows = await tx.all<TaskRow>(this.db.sql.claimTasks, [req.workerId, req.now + req.leaseMs, req.now, req.now, req.limit]);
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
    });
    if (rows.length === 0) return [];
    // Everything the turns need, in a few batched reads (committed data: the claim is done).
    const tasks = rows.map(toTask);
    const runIds = [...new Set(tasks.map((t) => t.runId))];
    const runs = await this.db.read.all<{ id: string; tenant: string; session_key: string | null; session_seq: number | string | null; session_epoch: number | string | null }>(
      `SELECT id, tenant, session_key, session_seq, session_epoch FROM runs WHERE id IN (${runIds.map(() => '?').join(', ')})`,
      runIds,
    );
    const runById = new Map(runs.map((r) => [r.id, r]));
    const turnRows = await this.db.read.all<TurnRow>(
      `SELECT * FROM turns WHERE task_id IN (${tasks.map(() => '?').join(', ')}) ORDER BY task_id, n`,
      tasks.map((t) => t.id),
    );
    const turnsByTask = new Map<string, TurnRow[]>();
    for (const t of turnRows) turnsByTask.set(t.task_id, [...(turnsByTask.get(t.task_id) ?? []), t]);
    const claimed: ClaimedTask[] = [];
    for (const task of tasks) {
      const run = runById.get(task.runId);
      claimed.push(await this.loadClaimContext(task, run, turnsByTask.get(task.id) ?? [], req.historyLimit ?? 20));
    }
    return claimed;
  }

  private async loadClaimContext(
    task: Task,
    run: { tenant: string; session_key: string | null; session_seq: number | string | null; session_epoch: number | string | null } | undefined,
    turnRows: TurnRow[],
    historyLimit: number,
  ): Promise<ClaimedTask> {
    const lease: Lease = { taskId: task.id, owner: task.leaseOwner!, leaseNo: task.leaseNo };
    let session: ClaimedTask['session'] = null;
    if (task.parentId === null && run?.session_key) {
      session = { key: run.session_key, history: await sessionHistory(this.db.read, run.session_key, Number(run.session_seq), Number(run.session_epoch), historyLimit) };
    }
    const { committed, open } = await this.assembleTurnRows(this.db.read, task.id, turnRows);
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
    return { task, lease, tenant: run?.tenant ?? 'default', session, history: committed, results: last ? last.results : [], openTurn };
  }

  private async loadTurns(db: SqlExecutor, taskId: string) {
    const turns = await db.all<TurnRow>('SELECT * FROM turns WHERE task_id = ? ORDER BY n', [taskId]);
    return this.assembleTurnRows(db, taskId, turns);
  }

  private async assembleTurnRows(db: SqlExecutor, taskId: string, turns: TurnRow[]) {
    if (turns.length === 0) return { committed: [], open: null };
    const needsChildren = turns.some((t) => t.actions.includes('"handoff"'));
    const children = needsChildren
      ? await db.all<ChildOutcomeRow>('SELECT id, parent_turn, parent_action, state, output, error FROM tasks WHERE parent_id = ?', [taskId])
      : [];
    return assembleTurns(turns, children);
  }

  async heartbeat(workerId: string, leaseUntil: number, now: number, taskIds?: readonly string[]): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const only = taskIds === undefined ? '' : `AND id IN (${taskIds.map(() => '?').join(', ')})`;
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
        await releaseTaskReservations(tx, task.id, now);
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
    decision: { n: number; actions: Action[]; output?: Json; usage: Usage | null; audit: AuditEntry[] },
    now: number,
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      await this.fence(tx, lease, now);
      await tx.run(`INSERT INTO turns (task_id, n, state, actions, output, usage, decided_at) VALUES (?, ?, 'decided', ?, ?, ?, ?)`, [
        lease.taskId,
        decision.n,
        toJson(decision.actions),
        decision.output === undefined ? null : toJson(decision.output),
        decision.usage ? toJson(decision.usage) : null,
        now,
      ]);
      await insertAudit(tx, now, decision.audit);
    });
  }

  async beginEffect(e: EffectStart, now: number): Promise<EffectRecord> {
    return this.db.transaction(async (tx) => {
      const row = await tx.get<EffectRow>(
        `INSERT INTO effects (key, run_id, task_id, turn, action, tool, input_digest, state, attempts, started_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'started', 1, ?)
         ON CONFLICT (key) DO UPDATE SET attempts = effects.attempts + 1, started_at = excluded.started_at WHERE effects.state = 'started'
         RETURNING *`,
        [e.key, e.runId, e.taskId, e.turn, e.action, e.tool, e.inputDigest, now],
      );
      if (!row) {
        // Already completed or failed (possibly by an earlier holder of the lease): replay it.
        const existing = await tx.get<EffectRow>('SELECT * FROM effects WHERE key = ?', [e.key]);
        if (!existing) throw new NotFoundError('effect', e.key);
        return toEffect(existing);
      }
      const attempts = Number(row.attempts);
      await insertAudit(tx, now, [
        { kind: attempts > 1 ? 'effect.restarted' : 'effect.started', runId: e.runId, taskId: e.taskId, data: { key: e.key, tool: e.tool, attempts } },
      ]);
      return toEffect(row);
    });
  }

  async completeEffect(
    key: string,
    outcome: { result: Json } | { error: ErrorInfo },
    now: number,
    audit: AuditEntry[],
    settle?: Settlement,
  ): Promise<EffectRecord> {
    return this.db.transaction(async (tx) => {
      const ok = 'result' in outcome;
      const row = await tx.get<EffectRow>(
        `UPDATE effects SET state = ?, result = ?, error = ?, completed_at = ? WHERE key = ? AND state = 'started' RETURNING *`,
        [ok ? 'completed' : 'failed', ok ? toJson(outcome.result) : null, ok ? null : toJson(outcome.error), now, key],
      );
      if (settle) await settleReservation(tx, settle.reservationId, settle, now);
      if (!row) {
        // Already recorded by an earlier holder of the lease: keep the first outcome, the one that counts.
        const existing = await tx.get<EffectRow>('SELECT * FROM effects WHERE key = ?', [key]);
        if (!existing) throw new NotFoundError('effect', key);
        await insertAudit(tx, now, [{ kind: 'effect.duplicate-outcome', runId: existing.run_id, taskId: existing.task_id, data: { key } }]);
        return toEffect(existing);
      }
      await insertAudit(tx, now, audit);
      return toEffect(row);
    });
  }

  async commitTurn(c: TurnCommit): Promise<void> {
    const woke = await this.db.transaction(async (tx) => {
      const now = c.now;
      const outcome = c.outcome;
      // The common case — a turn that finishes its task — fences and finishes in one statement.
      const row =
        outcome.kind === 'succeed'
          ? await this.fence(tx, c.lease, now, {
              sql: `state = 'succeeded', output = ?, turns = COALESCE(?, turns), attempt = 0, finished_at = ?, lease_owner = NULL, lease_expires_at = NULL,`,
              params: [toJson(outcome.output), c.turn ? c.turn.n : null, now],
            })
          : await this.fence(tx, c.lease, now);
      const task = toTask(row);
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
      for (const settlement of c.settle ?? []) await settleReservation(tx, settlement.reservationId, settlement, now);
      const turns = c.turn ? c.turn.n : task.turns;
      const audit: AuditEntry[] = [...c.audit];
      const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: c.lease.owner };
      let woke = false;
      switch (c.outcome.kind) {
        case 'continue':
          await tx.run(`UPDATE tasks SET turns = ?, attempt = 0, error = NULL, state = 'running', updated_at = ? WHERE id = ?`, [turns, now, task.id]);
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
            `UPDATE tasks SET turns = ?, attempt = 0, error = NULL, state = 'waiting', waiting_for = 'children', waiting_on = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
             WHERE id = ?`,
            [turns, children.length, now, task.id],
          );
          audit.push({ ...base, kind: 'task.waiting', data: { children: children.length } });
          woke = children.length > 0;
          break;
        }
        case 'succeed':
          audit.push({ ...base, kind: 'task.succeeded' });
          woke = await this.propagateFinish(tx, task, 'succeeded', c.outcome.output, null, now, c.lease.owner, audit);
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
        case 'defer':
          // Not a failure: the open decision is re-evaluated when the task comes due.
          await tx.run(
            `UPDATE tasks SET turns = ?, state = 'queued', run_at = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
            [turns, c.outcome.until, now, task.id],
          );
          audit.push({ ...base, kind: 'task.deferred', data: { until: c.outcome.until, ruleId: c.outcome.ruleId, reason: c.outcome.reason } });
          break;
        case 'await-approval':
          await tx.run(
            `UPDATE tasks SET turns = ?, state = 'waiting', waiting_for = 'approval', waiting_on = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
            [turns, now, task.id],
          );
          await insertAudit(tx, now, audit.splice(0));
          await insertApproval(tx, c.outcome.approval, now, c.lease.owner);
          audit.push({ ...base, kind: 'task.waiting', data: { for: 'approval' } });
          break;
        case 'escalate':
          await tx.run(
            `UPDATE tasks SET turns = ?, state = 'escalated', error = ?, waiting_on = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`,
            [turns, toJson(c.outcome.error), now, task.id],
          );
          await insertAudit(tx, now, audit.splice(0));
          await insertApproval(tx, c.outcome.approval, now, c.lease.owner);
          break;
        case 'dead':
          await tx.run(`UPDATE tasks SET turns = ?, attempt = attempt + 1 WHERE id = ?`, [turns, task.id]);
          audit.push({ ...base, kind: 'task.failed', data: { error: c.outcome.error as unknown as Json, attempt: task.attempt + 1 } });
          woke = await this.finishTask(tx, task, 'dead', null, c.outcome.error, now, c.lease.owner, audit);
          break;
      }
      await insertAudit(tx, now, audit);
      return woke;
    });
    if (woke) this.db.signalTasksReady();
  }

  /** Checks the lease is still held; returns the task row. */
  private async fence(tx: SqlExecutor, lease: Lease, now: number, also?: { sql: string; params: SqlParam[] }): Promise<TaskRow> {
    // `also` sets more columns in the same statement (the fence and the change are one write).
    const row = await tx.get<TaskRow>(
      `UPDATE tasks SET ${also?.sql ?? ''} updated_at = ? WHERE id = ? AND lease_owner = ? AND lease_no = ? AND state IN ${HELD} RETURNING *`,
      [...(also?.params ?? []), now, lease.taskId, lease.owner, lease.leaseNo],
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
    sink?: AuditEntry[],
  ): Promise<boolean> {
    await tx.run(
      `UPDATE tasks SET state = ?, output = ?, error = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL
       WHERE id = ?`,
      [state, output === null ? null : toJson(output), error ? toJson(error) : null, now, now, task.id],
    );
    const audit = sink ?? [];
    audit.push({
      kind: `task.${state}`,
      runId: task.runId,
      taskId: task.id,
      agent: task.agent,
      actor,
      ...(error ? { data: { error: error as unknown as Json } } : {}),
    });
    const woke = await this.propagateFinish(tx, task, state, output, error, now, actor, audit);
    if (!sink) await insertAudit(tx, now, audit);
    return woke;
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
    sink?: AuditEntry[],
  ): Promise<boolean> {
    // Audit entries go to the caller's sink (one INSERT per commit), or are written here.
    if (!sink) {
      const own: AuditEntry[] = [];
      const woke = await this.propagateFinish(tx, task, state, output, error, now, actor, own);
      await insertAudit(tx, now, own);
      return woke;
    }
    if (task.parentId) {
      const parent = await tx.get<{ waiting_on: number | string; run_id: string; agent: string }>(
        `UPDATE tasks SET waiting_on = waiting_on - 1, updated_at = ? WHERE id = ? AND state = 'waiting' RETURNING waiting_on, run_id, agent`,
        [now, task.parentId],
      );
      if (parent && Number(parent.waiting_on) === 0) {
        await tx.run(`UPDATE tasks SET state = 'queued', waiting_for = NULL, run_at = ?, updated_at = ? WHERE id = ?`, [now, now, task.parentId]);
        sink.push({ kind: 'task.joined', runId: parent.run_id, taskId: task.parentId, agent: parent.agent, actor });
        return true;
      }
      return false;
    }
    const runState = state === 'succeeded' ? 'succeeded' : state === 'dead' ? 'failed' : 'cancelled';
    const run = await tx.get<{ agent: string; session_key: string | null; envelope_id: string | null }>(
      `UPDATE runs SET state = ?, output = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ? RETURNING agent, session_key, envelope_id`,
      [runState, output === null ? null : toJson(output), error ? toJson(error) : null, now, now, task.runId],
    );
    sink.push({ kind: `run.${runState}`, runId: task.runId, agent: run?.agent ?? task.agent, actor });
    // A run answering a channel message queues its reply in the same commit; `true` wakes the dispatcher.
    const replied = runState === 'succeeded' && run?.envelope_id != null && (await enqueueRunReply(tx, task.runId, output, now));
    // The session's next message may start now.
    if (run?.session_key) return (await leaveLane(tx, run.session_key, task.runId, now)) !== null || replied;
    return replied;
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

  // ── the boundary ────────────────────────────────────────────────────────────

  async recordContract(id: string, digestText: string, schema: Json, now: number): Promise<void> {
    await this.db.transaction((tx) =>
      tx.run('INSERT INTO contracts (id, digest, schema, first_used_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING', [id, digestText, toJson(schema), now]),
    );
  }

  async acquireLimits(req: LimitAcquire, now: number): Promise<LimitResult> {
    try {
      return await this.db.transaction((tx) => acquireLimits(tx, req, now));
    } catch (err) {
      if (err instanceof LimitRefused) return err.result;
      throw err;
    }
  }

  async settleReservation(settlement: Settlement, now: number): Promise<void> {
    await this.db.transaction((tx) => settleReservation(tx, settlement.reservationId, settlement, now));
  }

  async releaseExpiredReservations(now: number): Promise<number> {
    return this.db.transaction((tx) => releaseExpiredReservations(tx, now));
  }

  async budgetUsage(keys: string[]): Promise<BudgetUsage[]> {
    if (keys.length === 0) return [];
    const rows = await this.db.read.all<{
      key: string;
      spent_micros: number | string;
      reserved_micros: number | string;
      spent_tokens: number | string;
      reserved_tokens: number | string;
    }>(`SELECT * FROM budgets WHERE key IN (${keys.map(() => '?').join(', ')}) ORDER BY key`, keys);
    return rows.map((r) => ({
      key: r.key,
      spentMicros: Number(r.spent_micros),
      reservedMicros: Number(r.reserved_micros),
      spentTokens: Number(r.spent_tokens),
      reservedTokens: Number(r.reserved_tokens),
    }));
  }

  approvalFor(actionKey: string): Promise<ApprovalState | null> {
    return approvalFor(this.db.read, actionKey);
  }

  async getApproval(id: string): Promise<Approval | null> {
    const row = await this.db.read.get<ApprovalRow>('SELECT * FROM approvals WHERE id = ?', [id]);
    return row ? toApproval(row) : null;
  }

  async listApprovals(filter: { state?: ApprovalState; runId?: string; limit: number }): Promise<Approval[]> {
    const w = whereOf([
      ['state = ?', filter.state],
      ['run_id = ?', filter.runId],
    ]);
    const rows = await this.db.read.all<ApprovalRow>(`SELECT * FROM approvals ${w.sql} ORDER BY requested_at, id LIMIT ?`, [...w.params, filter.limit]);
    return rows.map(toApproval);
  }

  async decideApproval(id: string, decision: { approve: boolean; actor: string; reason?: string }, now: number): Promise<Approval> {
    const approval = await this.db.transaction(async (tx) => {
      const a = await decideApproval(tx, id, decision, now);
      await this.afterApprovalDecision(tx, a, now, decision.actor);
      return a;
    });
    this.db.signalTasksReady();
    return approval;
  }

  async expireApprovals(now: number): Promise<number> {
    const effects = await this.db.transaction(async (tx) => {
      const effects = await expireApprovals(tx, now);
      for (const e of effects) if (e.outcome === 'denied') await this.afterApprovalDecision(tx, e.approval, now, 'expiry');
      return effects;
    });
    if (effects.some((e) => e.outcome === 'denied')) this.db.signalTasksReady();
    return effects.length;
  }

  /**
   * A decided approval wakes its task: approved actions go ahead, denied ones come back
   * to the agent as refusals. A denied escalation dead-letters the task instead.
   */
  private async afterApprovalDecision(tx: SqlExecutor, a: Approval, now: number, actor: string): Promise<void> {
    if (a.kind === 'escalation' && a.state !== 'approved') {
      const row = await tx.get<TaskRow>(`SELECT * FROM tasks WHERE id = ? AND state = 'escalated'`, [a.taskId]);
      if (!row) return;
      const error = parseJson<ErrorInfo>(row.error) ?? { code: 'ESCALATION_DENIED', message: 'an operator denied the escalation', retryable: false };
      await this.finishTask(tx, toTask(row), 'dead', null, error, now, actor);
      return;
    }
    await wakeForApproval(tx, a, now, actor);
  }

  async grantStanding(grant: { agent: string; action: string; durationMs: number; actor: string; reason?: string }, now: number): Promise<StandingGrant> {
    return this.db.transaction(async (tx) => {
      const row = await tx.get<StandingGrantRow>(
        `INSERT INTO standing_grants (id, agent, action, granted_by, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
        [newId('grant'), grant.agent, grant.action, grant.actor, grant.reason ?? null, now, now + grant.durationMs],
      );
      await insertAudit(tx, now, [
        { kind: 'grant.standing', agent: grant.agent, actor: grant.actor, data: { grant: row!.id, action: grant.action, expiresAt: now + grant.durationMs, reason: grant.reason ?? null } },
      ]);
      return toStandingGrant(row!);
    });
  }

  async revokeStanding(id: string, actor: string, now: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await tx.get<StandingGrantRow>('UPDATE standing_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *', [now, id]);
      if (!row) throw new NotFoundError('active standing grant', id);
      await insertAudit(tx, now, [{ kind: 'grant.revoked', agent: row.agent, actor, data: { grant: id, action: row.action } }]);
    });
  }

  async listStandingGrants(filter: { activeAt?: number; agent?: string }): Promise<StandingGrant[]> {
    const w = whereOf([
      ['agent = ?', filter.agent],
      ['revoked_at IS NULL AND expires_at > ?', filter.activeAt],
    ]);
    const rows = await this.db.read.all<StandingGrantRow>(`SELECT * FROM standing_grants ${w.sql} ORDER BY created_at, id`, w.params);
    return rows.map(toStandingGrant);
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

/** `WHERE a = ? AND b = ?` from the conditions whose value is given. */
export function whereOf(conds: Array<[string, SqlParam | undefined]>): { sql: string; params: SqlParam[] } {
  const given = conds.filter((c): c is [string, SqlParam] => c[1] !== undefined && c[1] !== null && c[1] !== '');
  return { sql: given.length ? `WHERE ${given.map(([c]) => c).join(' AND ')}` : '', params: given.map(([, v]) => v) };
}

function isUnfinished(state: string): boolean {
  return (UNFINISHED_TASK_STATES as readonly string[]).includes(state);
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
