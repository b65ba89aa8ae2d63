import type { ApprovalState, EffectState, EnvelopeState } from '../core/states.ts';
import type { Action, ActionResult, ErrorInfo, Json, Run, RunState, SessionMessage, Task, TaskState, TurnRecord, Usage } from '../core/types.ts';
import type { Envelope } from '../core/envelope.ts';
import type { JoinSpec } from '../core/join.ts';
import type { AuditEntry, AuditStore } from './audit.ts';
import type { NewOutboxItem, OutboxStore } from './outbox.ts';
import type { ScheduleStore } from './schedules.ts';
import type { ObservedStore } from './observed.ts';
import type { TokenStore } from './tokens.ts';
import type { VerdictStore } from './verdicts.ts';
import type { BreakerStore } from './breakers.ts';
import type { McpToolStore } from './mcp-tools.ts';
import type { RunSpend, TurnUsage } from '../core/usage.ts';
import type { Brief, BriefFilter } from './briefs.ts';
import type { MemoryStore } from './memory.ts';

/** Backend differences, named — the engine branches on these, never on a dialect. */
export interface StoreCapabilities {
  /** Concurrent commits are merged into one transaction (one fsync for many callers). */
  groupCommit: boolean;
  /** Commits in other processes wake this process's workers (LISTEN/NOTIFY); otherwise poll. */
  crossProcessWakeups: boolean;
  /** Claims skip rows other claimers hold instead of serialising on one database lock. */
  skipLockedClaims: boolean;
  /** Lexical search of shared memory: SQLite FTS5 (bm25) or PostgreSQL tsvector (ts_rank); one results contract. */
  fullText: 'fts5' | 'tsvector';
  /**
   * Vector search of shared memory: SQLite with the sqlite-vec extension loaded, or
   * PostgreSQL's pgvector (whether the extension is installed is asked of the database:
   * `memory.vectorSupport()`); null: this store cannot search vectors.
   */
  vectors: 'sqlite-vec' | 'pgvector' | null;
}

/**
 * Durability levels (docs/durability.md):
 * - strict (default): every commit is fsynced before anything is acknowledged.
 * - fast: commits survive a process crash (kill -9) but the last few may be lost on
 *   power loss or an OS crash.
 */
export type Durability = 'strict' | 'fast';

/** Identifies a held lease; every worker write is fenced by it. */
export interface Lease {
  taskId: string;
  owner: string;
  leaseNo: number;
}

export type { AuditEntry, AuditEvent, AuditStore } from './audit.ts';

export interface NewRun {
  agent: string;
  input: Json;
  /** Whose spend this is, for daily ceilings (default `default`). */
  tenant?: string;
  idempotencyKey?: string | null;
  maxAttempts: number;
  actor?: string;
  /** Where the run came from when a schedule started it: `schedule:<id>` or `heartbeat:<id>`; policy and memory see it. */
  origin?: string | null;
}

export interface NewChildTask {
  /** Chosen by the engine so the parent's turn record can name the child. */
  id: string;
  agent: string;
  input: Json;
  parentAction: number;
  maxAttempts: number;
}

export interface EffectRecord {
  key: string;
  runId: string;
  taskId: string;
  turn: number;
  action: number;
  tool: string;
  inputDigest: string;
  state: EffectState;
  /** How many times the hub began executing this effect (>1 only after a crash in the window). */
  attempts: number;
  result: Json | null;
  error: ErrorInfo | null;
  startedAt: number;
  completedAt: number | null;
}

/** A turn whose actions were decided and recorded but whose results are not committed. */
export interface OpenTurn {
  turn: number;
  actions: Action[];
  /** The output the agent returned with its actions, if any. */
  output?: Json;
  usage: Usage | null;
  effects: EffectRecord[];
}

/** A leased task with everything needed to run its next turn. */
export interface ClaimedTask {
  task: Task;
  lease: Lease;
  /** The run's tenant (whose spend this is). */
  tenant: string;
  /** The run's session and its recent history (root tasks of session runs only). */
  session: { key: string; history: SessionMessage[] } | null;
  history: TurnRecord[];
  /** Results of the last committed turn's actions (tool results and children's outcomes). */
  results: ActionResult[];
  openTurn: OpenTurn | null;
  /** Root task of a run answering a channel message: where the run's reply goes (the envelope's reply target). */
  reply: { channel: string; account: string; target: Json } | null;
  /** The run's origin when a schedule or heartbeat started it (`heartbeat:<id>`), else null. */
  origin: string | null;
}

/**
 * How a turn (or a failed attempt) ends, decided by the engine and applied atomically.
 * `defer`, `await-approval` and `escalate` leave the turn's recorded decision open:
 * the task resumes it later without asking the agent again.
 */
export type TurnOutcome =
  | { kind: 'continue' }
  | { kind: 'wait'; children: NewChildTask[]; join?: JoinSpec | null }
  | { kind: 'succeed'; output: Json }
  | { kind: 'retry'; error: ErrorInfo; runAt: number }
  | { kind: 'dead'; error: ErrorInfo }
  | { kind: 'defer'; until: number; ruleId: string; reason: string }
  | { kind: 'await-approval'; approval: NewApproval }
  | { kind: 'escalate'; error: ErrorInfo; approval: NewApproval }
  /** Its fallback agent takes the task over, with fresh attempts (its own attempts are spent, or its breaker is open). */
  | { kind: 'hand-over'; agent: string; maxAttempts: number; error: ErrorInfo; why: 'attempts-spent' | 'breaker-open' };

// ── intake and sessions ───────────────────────────────────────────────────────

export interface EnvelopeRecord extends Envelope {
  id: string;
  state: EnvelopeState;
  /** The routing decision: which binding fired and why. */
  route: Json | null;
  error: ErrorInfo | null;
  runId: string | null;
  sessionKey: string | null;
  receivedAt: number;
}

export interface SessionInfo {
  key: string;
  agent: string;
  /** The run holding the lane, if any. */
  activeRun: string | null;
  /** Runs ever queued in this session. */
  messages: number;
  /** Bumped by every reset; history only spans the current epoch. */
  epoch: number;
  forkedFrom: string | null;
  createdAt: number;
  lastActivityAt: number;
  resetAt: number | null;
}

/** Where an accepted envelope goes: a run in a session lane, or the unroutable error state. */
export type AcceptRoute =
  | {
      ok: true;
      agent: string;
      /** `router`: the run's output names the agent that then gets the envelope. */
      kind: 'work' | 'router';
      decision: Json;
      /** `resetBefore`: a session last active before this moment starts a new epoch (its reset policy). */
      session: { key: string; agent: string; resetBefore: number };
      /** The run's input, as intake made it from the envelope (the store stores it, never derives it). */
      input: Json;
      maxAttempts: number;
      tenant?: string;
      /** Set by the door that knows it (the scheduler), never taken from the envelope. */
      origin?: string | null;
    }
  | { ok: false; decision: Json; error: ErrorInfo };

export interface AcceptResult {
  envelope: EnvelopeRecord;
  /** False when the idempotency key was seen before: nothing new was stored. */
  created: boolean;
  run: Run | null;
}

// ── the boundary's shared state ───────────────────────────────────────────────

/** Spend moved from reserved to spent: the actual amounts of a reserved crossing. */
export interface Settlement {
  reservationId: string;
  micros: number;
  tokens: number;
}

export interface BucketTake {
  ruleId: string;
  key: string;
  capacity: number;
  refillPerMs: number;
  onExceeded: 'wait' | 'fail';
}

export interface BudgetReserve {
  ruleId: string;
  key: string;
  maxMicros: number | null;
  maxTokens: number | null;
}

export interface LimitAcquire {
  takes: BucketTake[];
  budgets: BudgetReserve[];
  micros: number;
  tokens: number;
  reservationId: string;
  runId: string;
  taskId: string;
  /** An unsettled reservation is released after this (its holder died). */
  expiresAt: number;
  /**
   * The worker whose lease on the task the spend is reserved under. Reserving is
   * refused (LeaseLostError) once that lease is gone: its reclaim has already released
   * the task's reservations, and one taken after it would be left behind until expiry.
   */
  holder?: string;
  /** Audit events committed in the same transaction when everything was taken (a mesh call's `mesh.call`). */
  audit?: AuditEntry[];
}

export type LimitResult =
  | { ok: true; reservationId: string | null }
  | { ok: false; kind: 'rate'; ruleId: string; key: string; retryAt: number; onExceeded: 'wait' | 'fail' }
  | { ok: false; kind: 'cost'; ruleId: string; key: string };

export interface BudgetUsage {
  key: string;
  spentMicros: number;
  reservedMicros: number;
  spentTokens: number;
  reservedTokens: number;
}

export type { ApprovalState };

/** What policy needs to know about an action's newest approval. */
export interface ApprovalDecision {
  state: ApprovalState;
  decidedBy: string | null;
  reason: string | null;
}

export interface NewApproval {
  runId: string;
  taskId: string;
  agent: string;
  /** The action's place in the run (its effect key); a decision applies to exactly that action. */
  actionKey: string;
  action: Json;
  kind: 'approval' | 'escalation';
  ruleId: string | null;
  reason: string;
  approvers: string;
  expiresAt: number | null;
  onExpiry: Json | null;
  supersedes?: string | null;
}

export interface Approval extends NewApproval {
  id: string;
  state: ApprovalState;
  requestedAt: number;
  decidedBy: string | null;
  decidedAt: number | null;
  decisionReason: string | null;
  supersedes: string | null;
}

export interface StandingGrant {
  id: string;
  agent: string;
  /** Action pattern, e.g. `tool:email.*`. */
  action: string;
  grantedBy: string;
  reason: string | null;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface TurnCommit {
  lease: Lease;
  now: number;
  /** Reservations to settle in the same transaction (the turn's own spend). */
  settle?: Settlement[];
  /** The committed turn; absent when an attempt failed before the turn completed. */
  turn?: { n: number; actions: Action[]; results: ActionResult[]; output?: Json; usage?: Usage | null };
  outcome: TurnOutcome;
  audit: AuditEntry[];
  /** Outbound messages the boundary let through with this turn (a run's reply): queued in the same transaction. */
  outbox?: NewOutboxItem[];
}

export interface ClaimRequest {
  workerId: string;
  limit: number;
  leaseMs: number;
  now: number;
  /** Most session messages to hand a root task's turn (default 20). */
  historyLimit?: number;
}

export interface RunFilter {
  state?: RunState;
  agent?: string;
  /** Only runs with an id before this one (cursor for newest-first paging). */
  before?: string;
  limit: number;
}

export interface TaskFilter {
  runId?: string;
  state?: TaskState;
  limit: number;
}

export interface WorkerInfo {
  id: string;
  pid: number;
  host: string;
  startedAt: number;
  heartbeatAt: number;
  stoppedAt: number | null;
}

export interface SchemaStatus {
  current: number;
  known: number;
}

/** Counts for `spine doctor`: the queue, leases held past expiry, approvals and the outbox. */
export interface StoreHealth {
  tasksByState: Record<string, number>;
  runsByState: Record<string, number>;
  /** Tasks still held (leased/running) after their lease expired: their worker died and no reaper has run. */
  stuckLeases: { count: number; oldestExpiredAt: number | null; taskIds: string[] };
  /** The due time of the oldest task that is ready but not yet leased (queue lag). */
  oldestReadyAt: number | null;
  pendingApprovals: number;
  outbox: { pending: number; dead: number; oldestDueAt: number | null };
  /** Workers registered, not stopped, that heartbeated since `aliveSince`. */
  workersAlive: number;
}

/** Runs: all work caused by one submission. */
export interface RunStore {
  /** Creates a run and its root task outside intake (tests, benches); with an idempotency key, a repeat returns the original run. */
  create(run: NewRun, now: number): Promise<{ run: Run; created: boolean }>;
  get(id: string): Promise<Run | null>;
  list(filter: RunFilter): Promise<Run[]>;
  /** Cancels every unfinished task of the run. Returns the number of tasks cancelled. */
  cancel(runId: string, now: number, actor: string, reason?: string): Promise<number>;
  /** Replays a failed run: its dead root task is queued again, resuming from its last committed turn. */
  retry(runId: string, now: number, actor: string): Promise<Run>;
}

/** Tasks with their claims, leases, turns and effects ledger. */
export interface TaskStore {
  get(id: string): Promise<Task | null>;
  list(filter: TaskFilter): Promise<Task[]>;
  turns(taskId: string): Promise<TurnRecord[]>;
  /** Each turn's reported usage (tokens, cost) of a run or a task, in turn order; turns that reported none are left out. */
  usage(filter: { runId: string } | { taskId: string }): Promise<TurnUsage[]>;
  effects(filter: { runId?: string; taskId?: string }): Promise<EffectRecord[]>;
  /** Cancels a task and its descendants; the parent (if any) receives a CANCELLED result. */
  cancel(taskId: string, now: number, actor: string, reason?: string): Promise<number>;
  /** When the earliest queued or retry-scheduled task comes due (null: none), so idle workers sleep exactly that long. */
  nextDueAt(): Promise<number | null>;
  /** Leases up to `limit` ready tasks and marks them running (`task.leased` + `task.running`). */
  claim(req: ClaimRequest): Promise<ClaimedTask[]>;
  /**
   * Extends the worker's leases — only on `taskIds` when given (the tasks it is still running, so a
   * task whose runner crashed is left to expire and be reclaimed) — and returns the ids it still holds.
   */
  heartbeat(workerId: string, leaseUntil: number, now: number, taskIds?: readonly string[]): Promise<string[]>;
  /** Hands leased tasks back (graceful shutdown): they become queued at once, no attempt used. */
  release(leases: Lease[], now: number): Promise<void>;
  /** Requeues tasks whose lease expired; tasks reclaimed more than maxReclaims times go dead. */
  reclaimExpired(now: number, maxReclaims: number): Promise<number>;
  /** Decides every join whose deadline has passed: lanes still running are cancelled as expired (LANE_EXPIRED). */
  expireJoins(now: number): Promise<number>;
  /** Records a turn's decided actions, so a resumed task replays them instead of asking the agent again. */
  recordDecision(lease: Lease, decision: { n: number; actions: Action[]; output?: Json; usage: Usage | null; audit: AuditEntry[] }, now: number): Promise<void>;
  /**
   * Records that an effect is about to run (state `started`, attempts + 1) and returns
   * the ledger record. A record already `completed` or `failed` comes back unchanged:
   * the caller replays it instead of running the effect. attempts > 1 means an earlier
   * execution may have happened (the process died before recording its outcome).
   */
  beginEffect(start: EffectStart, now: number): Promise<EffectRecord>;
  /**
   * Records an effect's outcome and settles its cost reservation in the same transaction.
   * Returns the ledger's record: if another holder recorded it first, that outcome stands.
   */
  completeEffect(key: string, outcome: { result: Json } | { error: ErrorInfo }, now: number, audit: AuditEntry[], settle?: Settlement): Promise<EffectRecord>;
}

export interface WorkerStore {
  /** Records the worker and starts witnessing its life (see `sweepLost`). */
  register(info: { id: string; pid: number; host: string }, now: number): Promise<void>;
  stop(id: string, now: number): Promise<void>;
  /**
   * Finds workers that died without stopping — their process is gone (same host) or
   * their PostgreSQL session ended — marks them stopped, audits `worker.lost`, and ends
   * their leases now so `tasks.reclaimExpired` takes their tasks at once, still fenced
   * by lease number. `live` lists the workers still running, oldest first.
   */
  sweepLost(selfId: string, now: number): Promise<{ lost: string[]; live: string[] }>;
  /**
   * Resolves true as soon as worker `peerId` dies (false when aborted or the watch
   * broke), where the database can tell without being polled; null where it cannot,
   * and `sweepLost` must run often instead.
   */
  readonly watchPeer: ((peerId: string, signal: AbortSignal) => Promise<boolean>) | null;
  list(opts: { aliveSince?: number }): Promise<WorkerInfo[]>;
}

export interface EnvelopeStore {
  get(id: string): Promise<EnvelopeRecord | null>;
  list(filter: { state?: EnvelopeRecord['state']; before?: string; limit: number }): Promise<EnvelopeRecord[]>;
  /** Envelopes whose routing agent has finished, with that run: ready for `completeRouting`. */
  routingDue(limit: number): Promise<Array<{ envelope: EnvelopeRecord; router: Run }>>;
  /** Puts an envelope whose routing cannot complete into the unroutable error state (only from `routing`). */
  failRouting(envelopeId: string, error: ErrorInfo, now: number): Promise<boolean>;
  /** Hands a routed envelope to the chosen agent (only once, whoever calls it). */
  completeRouting(envelopeId: string, route: Extract<AcceptRoute, { ok: true }>, now: number): Promise<Run | null>;
}

export interface SessionStore {
  list(filter: { agent?: string; limit: number }): Promise<SessionInfo[]>;
  get(key: string): Promise<SessionInfo | null>;
  messages(key: string, limit: number): Promise<SessionMessage[]>;
  /** Starts the session afresh: later turns see no earlier history. */
  reset(key: string, actor: string, now: number): Promise<boolean>;
  /** A new session seeded with the history of `key`. */
  fork(key: string, newKey: string, historyLimit: number, actor: string, now: number): Promise<SessionInfo>;
}

export interface ContractStore {
  /** Records a contract the first time it is used (idempotent). */
  record(id: string, digest: string, schema: Json, now: number): Promise<void>;
}

/** Rate buckets and spend budgets, shared by every worker. */
export interface LimitStore {
  /** Takes rate tokens and reserves spend atomically: all of it, or nothing. */
  acquire(req: LimitAcquire, now: number): Promise<LimitResult>;
  settle(settlement: Settlement, now: number): Promise<void>;
  releaseExpired(now: number): Promise<number>;
  usage(keys: string[]): Promise<BudgetUsage[]>;
  /** What a run's crossings hold reserved now and have settled, summed over its reservations. */
  runSpend(runId: string): Promise<RunSpend>;
  /** The ceiling an operator raised this budget to (approving an escalation with a raise), if any. */
  raisedCeiling(key: string): Promise<number | null>;
}

/** Approving an escalation can raise the ceiling of the budget that stopped it (a run's, so far). */
export interface CeilingRaise {
  budgetKey: string;
  ruleId: string;
  maxMicros: number;
}

export interface Decision {
  approve: boolean;
  actor: string;
  reason?: string;
  /** Only with approve, only for an escalation. */
  raise?: CeilingRaise;
}

export interface ApprovalStore {
  /** The newest approval for an action (its effect key), if any: its state, who decided and why. */
  decisionFor(actionKey: string): Promise<ApprovalDecision | null>;
  get(id: string): Promise<Approval | null>;
  list(filter: { state?: ApprovalState; runId?: string; limit: number }): Promise<Approval[]>;
  /** Records who decided; wakes the waiting task wherever it is. */
  decide(id: string, decision: Decision, now: number): Promise<Approval>;
  /** Applies the escalation of every expired approval (deny, reroute or notify). */
  expire(now: number): Promise<number>;
}

/** Standing grants: an operator's "this agent may do this without asking, for N days". Policy decides what they cover. */
export interface GrantStore {
  grant(grant: { agent: string; action: string; durationMs: number; actor: string; reason?: string }, now: number): Promise<StandingGrant>;
  revoke(id: string, actor: string, now: number): Promise<void>;
  list(filter: { activeAt?: number; agent?: string }): Promise<StandingGrant[]>;
}

// ── health (validation/stuck.ts, validation/probes.ts; store/sql/health-watch-sql.ts) ──

/**
 * What the health sweeps keep (docs/health.md): stuck-work findings, one per
 * (kind, subject), and each health probe's latest result with the short lease that
 * lets one worker run it. What counts as stuck and what to do about it is
 * validation's decision (validation/stuck.ts, validation/probes.ts).
 */
export interface StuckFinding {
  kind: string;
  /** The stuck task, approval or run. */
  subject: string;
  runId: string;
  since: number;
  detail: string;
  action: string;
  approvalId: string | null;
  foundAt: number;
}

/** A task the sweep saw as possibly stuck, by what the tables say (no model involved). */
export interface StuckCandidate {
  id: string;
  runId: string;
  agent: string;
  since: number;
}

export interface StuckStore {
  /** Leased tasks past their lease expiry, and waiting tasks past their join deadline, oldest first. */
  candidates(now: number, limit: number): Promise<{ leaseExpired: StuckCandidate[]; joinOverdue: StuckCandidate[] }>;
  /**
   * Records a finding once: with its audit events and, when it escalates, the operator's
   * approval, in one transaction. False when (kind, subject) was recorded before.
   */
  record(f: Omit<StuckFinding, 'approvalId' | 'foundAt'>, audit: AuditEntry[], approval: NewApproval | null, now: number): Promise<boolean>;
  list(limit: number): Promise<StuckFinding[]>;
}

export interface ProbeResult {
  key: string;
  ok: boolean | null;
  checkedAt: number | null;
  ms: number | null;
  detail: string | null;
  dueAt: number;
}

export interface ProbeStore {
  /** Takes the probe's lease when it is due and nobody holds it: true when this worker runs it now. */
  claim(key: string, owner: string, now: number, leaseMs: number): Promise<boolean>;
  /** Records the result, releases the lease, and schedules the next run. */
  finish(key: string, owner: string, result: { ok: boolean; ms: number; detail: string }, now: number, nextDueAt: number): Promise<void>;
  list(): Promise<ProbeResult[]>;
}

// ── briefs (store/briefs.ts, store/sql/briefs-sql.ts) ──────────────────────────

/**
 * One step of a brief's synthesis, committed atomically with the parent task's lease:
 * the brief as it now stands and what it waits on. A judge task or an approval is
 * created in the same transaction as the brief that records it as pending, so a hub
 * that dies anywhere and resumes never asks a judge twice or opens a second approval.
 */
export interface BriefStep {
  lease: Lease;
  brief: Brief;
  /** Judge tasks to dispatch: the parent waits for them as children. */
  judges?: NewChildTask[];
  /** Approvals to open: the parent waits for them. */
  approvals?: NewApproval[];
  /** The parent waits for approvals already open. */
  park?: boolean;
  /** The finished brief's outbound message, which the boundary let through: queued in the same commit. */
  outbox?: NewOutboxItem[];
  audit: AuditEntry[];
}

/** Briefs: the synthesised results of joins, with provenance and conflicts. */
export interface BriefStore {
  get(id: string): Promise<Brief | null>;
  /** The brief of a task's joined turn, if synthesis began. */
  forTurn(taskId: string, turn: number): Promise<Brief | null>;
  list(filter: BriefFilter): Promise<Brief[]>;
  /** Saves a step; throws LeaseLostError if the parent's lease is no longer held (nothing is written). */
  save(step: BriefStep, now: number): Promise<void>;
}

/**
 * The Store port: one sub-port per aggregate, plus the two units of work that span
 * aggregates (accepting an envelope, committing a turn). Adapters (sql/ over
 * sqlite/ and postgres/) implement it; nothing else sees SQL. Every write is one
 * atomic transaction that also appends its audit events.
 */
export interface Store {
  readonly capabilities: StoreCapabilities;
  /** Where this store lives, safe to print (no password). */
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
  /** Gateway API tokens (hashed). */
  readonly tokens: TokenStore;
  /** Outbound messages, committed before they are sent. */
  readonly outbox: OutboxStore;
  /** Schedules' next fire times. */
  readonly schedules: ScheduleStore;
  /** The live view's read (metrics gauges, dashboard). */
  readonly observed: ObservedStore;
  /** Gate verdicts as records (validation). */
  readonly verdicts: VerdictStore;
  /** Circuit breakers shared by every worker (validation). */
  readonly breakers: BreakerStore;
  /** Stuck-work findings, once per subject (validation/stuck.ts). */
  readonly stuck: StuckStore;
  /** Health probes' latest results and leases (validation/probes.ts). */
  readonly probes: ProbeStore;
  /** The MCP servers' tools, as last listed by a process that connected to them. */
  readonly mcpTools: McpToolStore;
  /** Briefs: the synthesised results of joins. */
  readonly briefs: BriefStore;
  /** Shared memory: facts, their versions, the merge queue (store/memory.ts). */
  readonly memory: MemoryStore;

  migrate(): Promise<{ applied: number[]; version: number }>;
  schemaStatus(): Promise<SchemaStatus>;
  /** Throws SchemaTooNewError / SchemaOutdatedError unless the schema is exactly current. */
  assertSchemaCurrent(): Promise<void>;
  /** Throws StoreUnavailableError unless a write can be committed now (readiness: disk full, read-only, gone). */
  checkWritable(now: number): Promise<void>;
  /** Queue depth, stuck leases, approvals and outbox backlog (read-only; for `spine doctor`). */
  health(now: number, aliveSince: number): Promise<StoreHealth>;
  close(): Promise<void>;

  /** Calls `listener` after a commit made tasks leasable (in this process, or any when crossProcessWakeups). */
  onTasksReady(listener: () => void): () => void;
  /** Calls `listener` after every commit in this process (e.g. to push new audit events to live streams at once). */
  onCommitted(listener: () => void): () => void;
  /**
   * Calls `listener` once if the store is lost under this process (SQLite: its file
   * deleted or replaced). From then on every write fails with STORE_UNAVAILABLE.
   */
  onLost(listener: (reason: string) => void): () => void;

  /**
   * Stores an envelope and, in the same transaction, its run in the session's lane
   * (or its unroutable error). A repeated idempotency key returns the original.
   */
  acceptEnvelope(req: { envelope: Envelope; envelopeId: string; route: AcceptRoute; actor: string }, now: number): Promise<AcceptResult>;
  /** Applies a turn's outcome atomically; throws LeaseLostError if the lease is no longer held. */
  commitTurn(commit: TurnCommit): Promise<void>;
}

export interface EffectStart {
  key: string;
  runId: string;
  taskId: string;
  turn: number;
  action: number;
  tool: string;
  inputDigest: string;
}

/** Idempotency key of an effect: its place in the run. */
export function effectKey(runId: string, taskId: string, turn: number, action: number): string {
  return `${runId}/${taskId}/${turn}/${action}`;
}
