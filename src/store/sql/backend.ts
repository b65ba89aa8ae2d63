import type { StoreCapabilities } from '../store.ts';
import type { CommitHints } from './commit-hints.ts';
import type { DialectSql, Migration, SqlExecutor, SqlParam } from './executor.ts';

/**
 * What a database adapter provides to the shared SQL store: connections, the
 * dialect's few differing statements, its migrations and its wake-up channel.
 */
export interface SqlBackend {
  readonly capabilities: StoreCapabilities;
  readonly description: string;
  readonly sql: DialectSql;
  readonly migrations: readonly Migration[];
  /** Loads the vector extension into this process's connections (SQLite; once): why it failed, or null. Absent: ask the database. */
  enableVectors?(): string | null;
  /** Reads outside any transaction; they see committed data only. */
  readonly read: SqlExecutor;
  /**
   * Runs fn in a transaction. `fn` must touch only `tx` (no other awaits): backends
   * with group commit run several callers' fns inside one transaction, and one
   * caller's failure still rolls back only its own work: SQLite rolls the batch back
   * and replays the others once, each in a savepoint; PostgreSQL rolls the shared
   * transaction back and runs each fn again alone — so fn may run more than once.
   * Audit rows fn appends are staged and written just before COMMIT (tx.staged).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /**
   * Where a transaction costs round trips (PostgreSQL): what this process knows of the
   * rows a turn's commit touches (commit-hints.ts), and a way to run one statement as a
   * transaction of its own, so a common turn commits in one round trip
   * (commit-statement-sql.ts). `build` is called once a connection is free, so callers
   * queued for the pool hold no statement yet. It resolves to the statement's rows, or
   * to null if the statement was refused or never sent (no connection came): nothing
   * was written, and the caller does the same work as a transaction. A failure that
   * leaves the outcome unknown (the connection broke) or a store fault is a
   * StoreUnavailableError. Absent on SQLite, where a transaction is no round trip.
   */
  readonly hints?: CommitHints;
  commitStatement?<T>(build: () => { sql: string; params: readonly SqlParam[] }): Promise<T[] | null>;
  /** Serialises migration runs across processes (advisory lock or the write lock). */
  withMigrationLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Announces, after a commit, that tasks became leasable. */
  signalTasksReady(): void;
  onTasksReady(listener: () => void): () => void;
  /** What the database itself can witness of worker processes' lives. */
  readonly liveness: WorkerLiveness;
  /** Calls `listener` after every commit made through this backend. */
  onCommitted(listener: () => void): () => void;
  /** Calls `listener` once if the database is lost under this process (absent: it cannot be). */
  onLost?(listener: (reason: string) => void): () => void;
  close(): Promise<void>;
}

export interface TransactionOptions {
  /**
   * The hot path's units (a turn's commit, a claim): they may share one transaction
   * with other such units of this process (PostgreSQL's group commit). A backend that
   * groups every unit anyway (SQLite, one writer) ignores it. Units that wait on locks
   * others hold for long (intake, reapers) are not marked: merged into one
   * transaction, unrelated lock sets could wait on each other.
   */
  shared?: boolean;
  /**
   * Acknowledged before it is durable (PostgreSQL: `synchronous_commit = off` for this
   * transaction alone): a crash of the database may lose it, and only it and what came
   * after it, since any later durable commit flushes it too. Only for a unit whose loss
   * is safe by construction: a claim, whose lease fencing refuses every later write of a
   * lease that was lost, and whose holder commits durably (an effect's attempt) before
   * a tool runs. A unit that shares a transaction with others is durable.
   */
  lossy?: boolean;
}

/** The options of a hot-path unit (see TransactionOptions.shared). */
export const SHARED: TransactionOptions = { shared: true };
/** A claim's: hot-path, and safe to lose in a database crash (TransactionOptions.lossy). */
export const CLAIM: TransactionOptions = { shared: true, lossy: true };

/** A worker row, as the liveness check sees it. */
export interface WorkerIdentity {
  id: string;
  pid: number;
  host: string;
}

/**
 * Detecting a dead worker in about a second instead of a lease's length. `hold`
 * keeps a witness of the worker's life for as long as its process lives (PostgreSQL:
 * a session advisory lock, released by the server when the connection dies); `dead`
 * names, of the given workers, those certainly dead. A worker the backend cannot
 * judge (another host, say) is not named: its tasks wait out their lease as before.
 * A false "dead" costs a repeated turn, never a double commit: reclaimed tasks are
 * still fenced by lease number.
 */
export interface WorkerLiveness {
  hold(workerId: string): Promise<void>;
  release(workerId: string): Promise<void>;
  dead(workers: readonly WorkerIdentity[]): Promise<string[]>;
  /**
   * Where the database can tell of a death without being asked (PostgreSQL: a query
   * blocked on the peer's lock returns when its session ends): resolves true once
   * `peerId` is gone, false if aborted or the watch broke. Null: poll with `dead`.
   */
  readonly watch: ((peerId: string, signal: AbortSignal) => Promise<boolean>) | null;
}
