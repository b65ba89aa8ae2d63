import type { ConflictStrategy, FactTrust, ScopeMatch } from '../core/memory.ts';
import type { ErrorInfo, Json } from '../core/types.ts';
import type { AuditEntry } from './audit.ts';

/**
 * Shared memory as rows: facts `(tenant, scope, key)`, each an append-only chain of
 * versions; a merge queue of conflicting writes. Read grants are applied inside the
 * queries (a reader passes its resolved grants; a fact outside them is never read),
 * and every query is confined to one tenant.
 */

/** Who wrote a version: the agent, run, task and turn (null for an operator's write). */
export interface WrittenBy {
  agent: string | null;
  run: string | null;
  task: string | null;
  turn: number | null;
  /** Who acted when no agent did (an operator, `spine memory put`). */
  actor: string;
}

export interface FactVersion {
  id: string;
  tenant: string;
  scope: string;
  key: string;
  version: number;
  /** The version this one replaced (null for the first). */
  supersedes: number | null;
  value: Json;
  text: string | null;
  validFrom: number;
  /** When a newer version (or a tombstone) replaced it; null while current. */
  validTo: number | null;
  writtenBy: WrittenBy;
  /** Ids of effects, envelopes or other fact versions it was derived from. */
  sources: string[];
  trust: FactTrust;
  expiresAt: number | null;
  tombstone: boolean;
}

/** A memory write's place in the effects ledger (the fields of store.ts's EffectStart; declared here so this port stays a leaf). */
export interface MemoryEffect {
  key: string;
  runId: string;
  taskId: string;
  turn: number;
  action: number;
  tool: string;
  inputDigest: string;
}

/** What the ledger recorded for a memory write. */
export interface MemoryLedgerEntry {
  key: string;
  state: 'started' | 'completed' | 'failed';
  result: Json | null;
  error: ErrorInfo | null;
}

export interface FactWrite {
  tenant: string;
  scope: string;
  key: string;
  value: Json;
  text?: string | null;
  /** Compare-and-set: the version the writer read (0: the fact must not exist yet). */
  expectedVersion?: number;
  expiresAt?: number | null;
  sources?: string[];
  trust: FactTrust;
  writtenBy: WrittenBy;
  /** How a lost compare-and-set is resolved (the scope's policy). */
  onConflict: ConflictStrategy;
  /** Queue the new version for the embedder (vector search is configured and it has text). */
  embed?: boolean;
}

export const CONFLICT_STATES = ['open', 'rejected', 'resolved'] as const;
export type ConflictState = (typeof CONFLICT_STATES)[number];

/** A compare-and-set that lost its race, in the durable merge queue. */
export interface MemoryConflict {
  id: string;
  tenant: string;
  scope: string;
  key: string;
  /** The version the writer expected, and the one it met. */
  expectedVersion: number;
  currentVersion: number;
  /** What the writer wanted to write. */
  proposed: Json;
  proposedText: string | null;
  strategy: ConflictStrategy;
  state: ConflictState;
  /** The version a resolution produced. */
  resolvedVersion: number | null;
  resolvedBy: string | null;
  writtenBy: WrittenBy;
  createdAt: number;
  resolvedAt: number | null;
  /** `human`: the approval whose options are the candidates. */
  approvalId: string | null;
  /** `agent`: the run of the merge agent's task. */
  mergeRun: string | null;
}

/** A version waiting for its embedding. */
export interface EmbedItem {
  id: string;
  tenant: string;
  text: string;
}

/** How an open conflict (strategy `agent` or `human`) ends. */
export type ConflictResolution =
  /** Write this value (a candidate, the merge agent's result, an operator's own) with compare-and-set on `expectedVersion`. */
  | { kind: 'write'; value: Json; text: string | null; expectedVersion: number; trust: FactTrust; writtenBy: WrittenBy; embed: boolean; actor: string; how: string }
  /** The current version stands (a person picked it): resolved, nothing new is written. */
  | { kind: 'keep'; actor: string; how: string }
  /** Nothing is written (the approval was denied, the merge agent failed). */
  | { kind: 'reject'; actor: string; how: string };

/** The approval a `human` conflict opens (the rest of it comes from the conflict). */
export interface ConflictApproval {
  /** The options, what the approval shows. */
  action: Json;
  reason: string;
  approvers: string;
}

export type WriteOutcome =
  | { kind: 'written'; fact: FactVersion; conflict: MemoryConflict | null }
  /** The value and text equal the current version's: nothing was appended. */
  | { kind: 'unchanged'; fact: FactVersion }
  /** A lost compare-and-set the scope's strategy did not apply (reject, agent, human). */
  | { kind: 'conflict'; conflict: MemoryConflict; current: FactVersion | null }
  /** The write's effect key was already recorded: its first outcome, from the ledger. */
  | { kind: 'replayed'; effect: MemoryLedgerEntry };

export interface FactQuery {
  tenant: string;
  /** The reader's resolved read grants; an empty list reads nothing. */
  grants: readonly ScopeMatch[];
  /** What was true at this time (default: now). */
  asOf?: number;
}

export interface SearchHit {
  fact: FactVersion;
  score: number;
}

export interface ForgetSelector {
  tenant: string;
  run?: string;
  agent?: string;
  /** A source id (effect, envelope or fact version). */
  source?: string;
}

export interface MemoryStore {
  /**
   * Appends a version (or records a conflict) in one transaction with `audit`. With
   * `effect`, the write is an effect of a run: done once under its key, and a repeat
   * returns the first outcome from the effects ledger.
   */
  write(w: FactWrite, now: number, opts?: { effect?: MemoryEffect; audit?: AuditEntry[] }): Promise<WriteOutcome>;
  /** The current live version (or the one valid at `asOf`), if the reader may see it. */
  get(q: FactQuery & { scope: string; key: string }, now: number): Promise<FactVersion | null>;
  /** Every version of a fact, oldest first (tombstones included). */
  history(q: FactQuery & { scope: string; key: string }): Promise<FactVersion[]>;
  /** Lexical search over live facts the reader may see, best first; `scopes` narrows to these trees. */
  search(q: FactQuery & { query: string; k: number; scopes?: readonly string[] }, now: number): Promise<SearchHit[]>;
  /** The merge queue. */
  conflicts(filter: { tenant?: string; state?: ConflictState; strategy?: ConflictStrategy; limit?: number }): Promise<MemoryConflict[]>;
  conflict(id: string): Promise<MemoryConflict | null>;
  /** Records the merge run an open conflict waits on (once: a second call changes nothing). */
  attachConflict(id: string, link: { mergeRun: string }): Promise<MemoryConflict>;
  /** Opens the approval of a `human` conflict and records it on the conflict, in one transaction (once). */
  openConflictApproval(id: string, a: ConflictApproval, now: number): Promise<MemoryConflict>;
  /**
   * Ends an open conflict in one transaction with its audit: the resolved value written
   * as a new version (compare-and-set: when the fact moved meanwhile, the result is a
   * `conflict` outcome and the conflict stays open), or rejected.
   */
  resolveConflict(id: string, r: ConflictResolution, now: number): Promise<{ conflict: MemoryConflict; outcome: WriteOutcome | null }>;
  /** Null when vectors can be stored and searched here; otherwise what is missing and how to fix it. */
  vectorSupport(): Promise<string | null>;
  /** Nearest live facts to `vector` (cosine) of `dims` dimensions, under the reader's grants; score = 1 - cosine distance. */
  searchVector(q: FactQuery & { vector: readonly number[]; k: number; scopes?: readonly string[] }, now: number): Promise<SearchHit[]>;
  /** The next versions waiting for an embedding, oldest first (queue rows of versions no longer live are dropped). */
  embedQueue(limit: number, now: number): Promise<EmbedItem[]>;
  /** Stores embeddings and takes their versions off the queue. */
  saveEmbeddings(rows: ReadonlyArray<{ id: string; tenant: string; vector: readonly number[] }>, now: number): Promise<void>;
  /** Backfill: queues every live version with text that has no embedding of `dims` dimensions; returns how many. */
  queueUnembedded(dims: number, now: number): Promise<number>;
  /**
   * Tombstones the live facts a run, agent or source wrote and, transitively, every
   * live fact derived from them. `dryRun` returns the same list and writes nothing.
   */
  forget(sel: ForgetSelector, opts: { dryRun: boolean; actor: string }, now: number): Promise<FactVersion[]>;
  /** Tombstones up to `limit` facts whose time ran out; returns how many. */
  sweepExpired(now: number, limit: number): Promise<number>;
}
