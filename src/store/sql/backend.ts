import type { StoreCapabilities } from '../store.ts';
import type { DialectSql, Migration, SqlExecutor } from './executor.ts';

/**
 * What a database adapter provides to the shared SQL store: connections, the
 * dialect's few differing statements, its migrations and its wake-up channel.
 */
export interface SqlBackend {
  readonly capabilities: StoreCapabilities;
  readonly description: string;
  readonly sql: DialectSql;
  readonly migrations: readonly Migration[];
  /** Reads outside any transaction; they see committed data only. */
  readonly read: SqlExecutor;
  /**
   * Runs fn in a transaction. `fn` must touch only `tx` (no other awaits): backends
   * with group commit run several callers' fns inside one transaction, each in its
   * own savepoint, so one caller's failure rolls back only its own work.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Serialises migration runs across processes (advisory lock or the write lock). */
  withMigrationLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Announces, after a commit, that tasks became leasable. */
  signalTasksReady(): void;
  onTasksReady(listener: () => void): () => void;
  /** Calls `listener` after every commit made through this backend. */
  onCommitted(listener: () => void): () => void;
  /** Calls `listener` once if the database is lost under this process (absent: it cannot be). */
  onLost?(listener: (reason: string) => void): () => void;
  close(): Promise<void>;
}
