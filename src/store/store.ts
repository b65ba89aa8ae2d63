import type { Action, ActionResult, ErrorInfo, Json, Run, RunState, Task, TaskState, TurnRecord, Usage } from '../core/types.ts';

/**
 * The Store port: everything the engine, CLI and (later) gateway need from durable
 * storage. Adapters (sqlite/, postgres/) implement it; the engine never sees SQL.
 * Every write method is one atomic transaction that also appends its audit events.
 */

/** Backend differences, named — the engine branches on these, never on a dialect. */
export interface StoreCapabilities {
  /** Concurrent commits are merged into one transaction (one fsync for many callers). */
  groupCommit: boolean;
  /** Commits in other processes wake this process's workers (LISTEN/NOTIFY); otherwise poll. */
  crossProcessWakeups: boolean;
  /** Claims skip rows other claimers hold instead of serialising on one database lock. */
  skipLockedClaims: boolean;
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

export interface AuditEntry {
  kind: string;
  runId?: string | null;
  taskId?: string | null;
  agent?: string | null;
  actor?: string | null;
  digest?: string | null;
  data?: Json;
}

export interface AuditEvent extends AuditEntry {
  seq: number;
  at: number;
}

export interface NewRun {
  agent: string;
  input: Json;
  idempotencyKey?: string | null;
  maxAttempts: number;
  actor?: string;
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
  state: 'started' | 'completed' | 'failed';
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
  history: TurnRecord[];
  /** Results of the last committed turn's actions (tool results and children's outcomes). */
  results: ActionResult[];
  openTurn: OpenTurn | null;
}

/** How a turn (or a failed attempt) ends, decided by the engine and applied atomically. */
export type TurnOutcome =
  | { kind: 'continue' }
  | { kind: 'wait'; children: NewChildTask[] }
  | { kind: 'succeed'; output: Json }
  | { kind: 'retry'; error: ErrorInfo; runAt: number }
  | { kind: 'dead'; error: ErrorInfo };

export interface TurnCommit {
  lease: Lease;
  now: number;
  /** The committed turn; absent when an attempt failed before the turn completed. */
  turn?: { n: number; actions: Action[]; results: ActionResult[]; output?: Json; usage?: Usage | null };
  outcome: TurnOutcome;
  audit: AuditEntry[];
}

export interface ClaimRequest {
  workerId: string;
  limit: number;
  leaseMs: number;
  now: number;
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

export interface Store {
  readonly capabilities: StoreCapabilities;
  /** Where this store lives, safe to print (no password). */
  readonly description: string;

  migrate(): Promise<{ applied: number[]; version: number }>;
  schemaStatus(): Promise<SchemaStatus>;
  /** Throws SchemaTooNewError / SchemaOutdatedError unless the schema is exactly current. */
  assertSchemaCurrent(): Promise<void>;
  close(): Promise<void>;

  /** Calls `listener` after a commit made tasks leasable (in this process, or any when crossProcessWakeups). */
  onTasksReady(listener: () => void): () => void;

  // ── runs ──
  /** Creates a run and its root task; with an idempotency key, a repeat returns the original run. */
  createRun(run: NewRun, now: number): Promise<{ run: Run; created: boolean }>;
  getRun(id: string): Promise<Run | null>;
  listRuns(filter: RunFilter): Promise<Run[]>;
  getTask(id: string): Promise<Task | null>;
  listTasks(filter: TaskFilter): Promise<Task[]>;
  getTurns(taskId: string): Promise<TurnRecord[]>;
  listEffects(filter: { runId?: string; taskId?: string }): Promise<EffectRecord[]>;
  /** Cancels every unfinished task of the run. Returns the number of tasks cancelled. */
  cancelRun(runId: string, now: number, actor: string, reason?: string): Promise<number>;
  /** Cancels a task and its descendants; the parent (if any) receives a CANCELLED result. */
  cancelTask(taskId: string, now: number, actor: string, reason?: string): Promise<number>;
  /** Replays a failed run: its dead root task is queued again, resuming from its last committed turn. */
  retryRun(runId: string, now: number, actor: string): Promise<Run>;

  // ── workers ──
  claimTasks(req: ClaimRequest): Promise<ClaimedTask[]>;
  markRunning(lease: Lease, now: number): Promise<void>;
  /** Extends the worker's leases; returns the ids of tasks it still holds. */
  heartbeat(workerId: string, leaseUntil: number, now: number): Promise<string[]>;
  /** Hands leased tasks back (graceful shutdown): they become queued at once, no attempt used. */
  releaseLeases(leases: Lease[], now: number): Promise<void>;
  /** Requeues tasks whose lease expired; tasks reclaimed more than maxReclaims times go dead. */
  reclaimExpiredLeases(now: number, maxReclaims: number): Promise<number>;
  /** Records a turn's decided actions and starts its tool effects (state `started`). */
  recordDecision(
    lease: Lease,
    decision: { n: number; actions: Action[]; output?: Json; usage: Usage | null; effects: EffectStart[]; audit: AuditEntry[] },
    now: number,
  ): Promise<void>;
  /** Marks a recorded `started` effect as being executed again (after a crash). */
  restartEffect(key: string, now: number): Promise<EffectRecord>;
  completeEffect(key: string, outcome: { result: Json } | { error: ErrorInfo }, now: number, audit: AuditEntry[]): Promise<void>;
  /** Applies a turn's outcome atomically; throws LeaseLostError if the lease is no longer held. */
  commitTurn(commit: TurnCommit): Promise<void>;

  registerWorker(info: { id: string; pid: number; host: string }, now: number): Promise<void>;
  stopWorker(id: string, now: number): Promise<void>;
  listWorkers(opts: { aliveSince?: number }): Promise<WorkerInfo[]>;

  // ── audit ──
  appendAudit(entries: AuditEntry[], now: number): Promise<void>;
  listAudit(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]>;
  /** The newest audit sequence number (0 when empty), to tail from now on. */
  latestAuditSeq(): Promise<number>;
}

export interface EffectStart {
  key: string;
  action: number;
  tool: string;
  inputDigest: string;
}

/** Idempotency key of an effect: its place in the run. */
export function effectKey(runId: string, taskId: string, turn: number, action: number): string {
  return `${runId}/${taskId}/${turn}/${action}`;
}
