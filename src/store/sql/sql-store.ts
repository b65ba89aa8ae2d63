import { LeaseLostError, StoreUnavailableError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Json, Run, Task } from '../../core/types.ts';
import type { Envelope } from '../../core/envelope.ts';
import type { AuditEntry } from '../audit.ts';
import type { OutboxStore } from '../outbox.ts';
import type { ScheduleStore } from '../schedules.ts';
import type { ObservedStore } from '../observed.ts';
import type {
  AcceptResult,
  BriefStore,
  AcceptRoute,
  ApprovalStore,
  AuditStore,
  ContractStore,
  EnvelopeStore,
  GrantStore,
  LimitStore,
  RunStore,
  SchemaStatus,
  SessionStore,
  Store,
  StoreCapabilities,
  StoreHealth,
  TaskStore,
  TurnCommit,
  WorkerStore,
  ProbeStore,
  StuckStore,
} from '../store.ts';
import type { TokenStore } from '../tokens.ts';
import type { VerdictStore } from '../verdicts.ts';
import type { BreakerStore } from '../breakers.ts';
import { sqlBreakerStore } from './breakers-sql.ts';
import { sqlProbeStore, sqlStuckStore } from './health-watch-sql.ts';
import { sqlVerdictStore } from './verdicts-sql.ts';
import type { McpToolStore } from '../mcp-tools.ts';
import { sqlBriefStore } from './briefs-sql.ts';
import type { MemoryStore } from '../memory.ts';
import { sqlMemoryStore } from './memory-sql.ts';
import { insertApproval, sqlApprovalStore } from './approvals-sql.ts';
import { insertAudit, sqlAuditStore } from './audit-sql.ts';
import { runStream } from '../../audit/chain.ts';
import { SHARED, type SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { sqlContractStore } from './contracts-sql.ts';
import { envelopeByKey, insertEnvelope, sqlEnvelopeStore } from './envelopes-sql.ts';
import { sqlGrantStore } from './grants-sql.ts';
import { storeHealth, writeProbe } from './health-sql.ts';
import { settleReservation, sqlLimitStore } from './limits-sql.ts';
import { assertSchemaCurrent, migrate, schemaStatus } from './migrator.ts';
import { insertOutbox, sqlOutboxStore } from './outbox-sql.ts';
import { toTask } from './rows.ts';
import { finishRun, finishRunAfterFence, insertRun, sqlRunStore } from './runs-sql.ts';
import { sqlScheduleStore } from './schedule-sql.ts';
import { sqlSessionStore } from './sessions-sql.ts';
import {
  continueInFence,
  countFailedAttempt,
  deferTask,
  escalateTask,
  fence,
  type FenceExtras,
  finishTask,
  handOverTask,
  propagateFinish,
  scheduleRetry,
  sqlTaskStore,
  succeedInFence,
  waitForApproval,
  waitForChildren,
} from './tasks-sql.ts';
import { sqlTokenStore } from './token-sql.ts';
import { sqlMcpToolStore } from './mcp-tools-sql.ts';
import { commitTurnAfterFence, commitTurnRow } from './turns-sql.ts';
import { commitBatcher, commitUnit, type CommitUnit, type UnitOutcome } from './commit-statement-sql.ts';
import type { StatementBackend } from './statement-batcher.ts';
import { sqlWorkerStore } from './workers-sql.ts';
import { sqlObservedStore } from './observed-sql.ts';

/**
 * The Store port over a SqlBackend, in portable SQL: one sub-port per aggregate (each
 * in its own *-sql.ts file, with the statements it runs as functions of the open
 * transaction), and the two units of work that span aggregates — accepting an
 * envelope, committing a turn — composed here from those functions, each one
 * transaction. SQLite and PostgreSQL share this behaviour and one conformance suite;
 * they differ only in what SqlBackend names.
 *
 * Each sub-port is a plain object of functions over the backend (no `this`), so a
 * wrapper or a test may spread one and replace a single function.
 */
export class SqlStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly description: string;
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
  readonly tokens: TokenStore;
  readonly mcpTools: McpToolStore;
  readonly outbox: OutboxStore;
  readonly schedules: ScheduleStore;
  readonly observed: ObservedStore;
  readonly verdicts: VerdictStore;
  readonly breakers: BreakerStore;
  readonly stuck: StuckStore;
  readonly probes: ProbeStore;
  readonly briefs: BriefStore;
  readonly memory: MemoryStore;
  /** The database adapter (for tools and tests that look below the port). */
  readonly backend: SqlBackend;
  /** Commits of common turns, several to a statement (PostgreSQL; null where a transaction is no round trip). */
  private readonly commits: ((unit: CommitUnit) => Promise<UnitOutcome>) | null;

  constructor(backend: SqlBackend) {
    this.backend = backend;
    this.commits = backend.commitStatement && backend.hints ? commitBatcher(backend as StatementBackend, backend.hints) : null;
    this.capabilities = backend.capabilities;
    this.description = backend.description;
    this.runs = sqlRunStore(backend);
    this.tasks = sqlTaskStore(backend);
    this.workers = sqlWorkerStore(backend);
    this.envelopes = sqlEnvelopeStore(backend);
    this.sessions = sqlSessionStore(backend);
    this.contracts = sqlContractStore(backend);
    this.limits = sqlLimitStore(backend);
    this.approvals = sqlApprovalStore(backend);
    this.grants = sqlGrantStore(backend);
    this.audit = sqlAuditStore(backend);
    this.tokens = sqlTokenStore(backend);
    this.mcpTools = sqlMcpToolStore(backend);
    this.outbox = sqlOutboxStore(backend);
    this.schedules = sqlScheduleStore(backend);
    this.observed = sqlObservedStore(backend);
    this.verdicts = sqlVerdictStore(backend);
    this.breakers = sqlBreakerStore(backend);
    this.stuck = sqlStuckStore(backend);
    this.probes = sqlProbeStore(backend);
    this.briefs = sqlBriefStore(backend);
    this.memory = sqlMemoryStore(backend);
  }

  migrate(): Promise<{ applied: number[]; version: number }> {
    return migrate(this.backend, Date.now());
  }
  schemaStatus(): Promise<SchemaStatus> {
    return schemaStatus(this.backend);
  }
  assertSchemaCurrent(): Promise<void> {
    return assertSchemaCurrent(this.backend);
  }
  health(now: number, aliveSince: number): Promise<StoreHealth> {
    return storeHealth(this.backend.read, now, aliveSince);
  }
  close(): Promise<void> {
    return this.backend.close();
  }
  onTasksReady(listener: () => void): () => void {
    return this.backend.onTasksReady(listener);
  }
  onCommitted(listener: () => void): () => void {
    return this.backend.onCommitted(listener);
  }
  onLost(listener: (reason: string) => void): () => void {
    return this.backend.onLost?.(listener) ?? (() => {});
  }

  async checkWritable(now: number): Promise<void> {
    const headroom = this.backend.sql.headroomPages;
    await this.backend.transaction(async (tx) => {
      await writeProbe(tx, now);
      // A database at its own size limit still rewrites the probe's page; what it cannot take is new work.
      const room = headroom === null ? null : await tx.get<{ pages: number | string }>(headroom);
      if (room && Number(room.pages) <= 0) throw new StoreUnavailableError('database or disk is full (the database reached its maximum size)');
    });
  }

  async acceptEnvelope(req: { envelope: Envelope; envelopeId: string; route: AcceptRoute; actor: string }, now: number): Promise<AcceptResult> {
    const result = await this.backend.transaction(async (tx): Promise<AcceptResult> => {
      const { envelope: e, route } = req;
      // The run's id is chosen up front, so the envelope row is written once, complete.
      const runId = route.ok ? newId('run') : null;
      const envelope = await insertEnvelope(tx, { envelope: e, envelopeId: req.envelopeId, route, runId }, now);
      if (!envelope) return { ...(await envelopeByKey(tx, e.idempotencyKey)), created: false };
      // One audit INSERT for the envelope, its routing decision and its run. A routed
      // envelope's events open its run's chain stream, so intake has no shared stream to queue on.
      const stream = runId ? runStream(runId) : undefined;
      const audit: AuditEntry[] = [
        {
          kind: 'envelope.received',
          actor: req.actor,
          ...(stream ? { stream } : {}),
          data: { envelope: req.envelopeId, channel: e.channel, account: e.account, peer: e.peer.id, idempotencyKey: e.idempotencyKey },
        },
        {
          kind: route.ok ? 'route.decided' : 'route.unroutable',
          ...(stream ? { stream } : {}),
          agent: route.ok ? route.agent : null,
          actor: req.actor,
          data: { envelope: req.envelopeId, decision: route.decision, ...(route.ok ? {} : { error: route.error as unknown as Json }) },
        },
      ];
      let run: Run | null = null;
      if (route.ok) {
        run = await insertRun(
          tx,
          {
            runId: runId!,
            agent: route.agent,
            input: route.input,
            maxAttempts: route.maxAttempts,
            actor: req.actor,
            envelopeId: req.envelopeId,
            session: route.session,
            kind: route.kind,
            ...(route.tenant ? { tenant: route.tenant } : {}),
            ...(route.origin ? { origin: route.origin } : {}),
          },
          now,
          audit,
        );
      }
      await insertAudit(tx, now, audit);
      return { envelope, created: true, run };
    });
    if (result.created && result.run) this.backend.signalTasksReady();
    return result;
  }

  async commitTurn(c: TurnCommit): Promise<void> {
    if (await this.commitInOneStatement(c)) return;
    const woke = await this.backend.transaction(async (tx) => {
      const { now, outcome, lease } = c;
      // The common cases — a turn that finishes its task, or one that keeps it going — fence and move in one statement.
      const n = c.turn ? c.turn.n : null;
      const also = outcome.kind === 'succeed' ? succeedInFence(outcome.output, n, now) : outcome.kind === 'continue' ? continueInFence(n) : undefined;
      // PostgreSQL does more in the fence's round trip: the turn's row, the run's end when
      // its root task succeeds, and the lock on the audit heads the commit appends to.
      const extras: FenceExtras | undefined =
        tx.dialect === 'postgres'
          ? {
              heads: { run: outcome.kind === 'succeed' || outcome.kind === 'dead' },
              ...(c.turn ? { then: commitTurnAfterFence(c.turn, now) } : {}),
              ...(outcome.kind === 'succeed' ? { finishRun: finishRunAfterFence('succeeded', outcome.output, now) } : {}),
            }
          : undefined;
      const row = await fence(tx, lease, now, also, extras);
      const task = toTask(row);
      if (c.turn && !extras?.then) await commitTurnRow(tx, task.id, c.turn, now);
      for (const settlement of c.settle ?? []) await settleReservation(tx, settlement, now);
      const turns = c.turn ? c.turn.n : task.turns;
      const audit: AuditEntry[] = [...c.audit];
      const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: lease.owner };
      let woke = false;
      // Outbound messages the boundary let through with this turn: queued in its commit (the dispatcher is woken).
      for (const item of c.outbox ?? []) woke = (await insertOutbox(tx, item, now)).created || woke;
      switch (outcome.kind) {
        case 'continue':
          break; // done by the fence
        case 'wait':
          await waitForChildren(tx, task, turns, outcome.children, lease.owner, now, audit, outcome.join ?? null);
          audit.push({ ...base, kind: 'task.waiting', data: { children: outcome.children.length, ...(outcome.join ? { join: outcome.join as unknown as Json } : {}) } });
          woke = outcome.children.length > 0;
          break;
        case 'succeed':
          audit.push({ ...base, kind: 'task.succeeded' });
          await auditBeforeParentLock(tx, task, now, audit);
          // A root task's run was finished by the fence on PostgreSQL (finishRunAfterFence).
          woke = row.finished_run
            ? await finishRun(tx, { runId: task.runId, agent: task.agent, state: 'succeeded', output: outcome.output, error: null }, now, lease.owner, audit, row.finished_run)
            : await propagateFinish(tx, task, 'succeeded', outcome.output, null, now, lease.owner, audit);
          break;
        case 'retry':
          await scheduleRetry(tx, task.id, turns, outcome.error, outcome.runAt, now);
          audit.push(
            { ...base, kind: 'task.failed', data: { error: outcome.error as unknown as Json, attempt: task.attempt + 1 } },
            { ...base, kind: 'task.retry-scheduled', data: { runAt: outcome.runAt, attempt: task.attempt + 1 } },
          );
          break;
        case 'defer':
          await deferTask(tx, task.id, turns, outcome.until, now);
          audit.push({ ...base, kind: 'task.deferred', data: { until: outcome.until, ruleId: outcome.ruleId, reason: outcome.reason } });
          break;
        case 'await-approval':
          await waitForApproval(tx, task.id, turns, now);
          // The turn's own events come before the approval's.
          await insertAudit(tx, now, audit.splice(0));
          await insertApproval(tx, outcome.approval, now, lease.owner);
          audit.push({ ...base, kind: 'task.waiting', data: { for: 'approval' } });
          break;
        case 'escalate':
          await escalateTask(tx, task.id, turns, outcome.error, now);
          await insertAudit(tx, now, audit.splice(0));
          await insertApproval(tx, outcome.approval, now, lease.owner);
          break;
        case 'hand-over':
          await handOverTask(tx, task.id, outcome.agent, outcome.maxAttempts, turns, outcome.error, now);
          audit.push({ ...base, kind: 'task.handed-over', data: { from: task.agent, to: outcome.agent, why: outcome.why, error: outcome.error as unknown as Json } });
          woke = true;
          break;
        case 'dead':
          await countFailedAttempt(tx, task.id, turns);
          audit.push({ ...base, kind: 'task.failed', data: { error: outcome.error as unknown as Json, attempt: task.attempt + 1 } });
          await auditBeforeParentLock(tx, task, now, audit);
          woke = await finishTask(tx, task, 'dead', null, outcome.error, now, lease.owner, audit);
          break;
      }
      await insertAudit(tx, now, audit);
      return woke;
    }, SHARED);
    if (woke) this.backend.signalTasksReady();
  }

  /**
   * A common turn's commit in one statement shared with the other commits of this
   * process meanwhile, where the backend offers it and knows enough
   * (commit-statement-sql.ts). True if done; false if the commit must run as a
   * transaction: not such a turn, a hint missing, or the statement refused because a
   * hint was stale (then forgotten). A lost lease is thrown as LeaseLostError, as the
   * transaction would; a store failure as it is.
   */
  private async commitInOneStatement(c: TurnCommit): Promise<boolean> {
    const { hints } = this.backend;
    if (!hints || !this.commits) return false;
    const unit = commitUnit(c, hints);
    if (!unit) return false;
    const outcome = await this.commits(unit);
    if (outcome === 'lost') throw new LeaseLostError(c.lease.taskId);
    return outcome === 'committed';
  }
}

/**
 * PostgreSQL: a child's own events are written before its parent's row is locked (the
 * join's count), so siblings finishing together wait on that lock for the COMMIT alone,
 * not for the audit's statements too (W3, a fan-out of 100). The join's own events, if
 * any, follow at the end as usual. SQLite has one writer and no row locks to shorten.
 */
async function auditBeforeParentLock(tx: SqlExecutor, task: Task, now: number, audit: AuditEntry[]): Promise<void> {
  if (!task.parentId || tx.dialect !== 'postgres') return;
  await insertAudit(tx, now, audit.splice(0));
  await tx.staged?.flush(tx);
}
