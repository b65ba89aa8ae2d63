import { redactSecrets } from '../../core/redact.ts';

/**
 * The one seam between the shared SQL store and a database driver. Statements use
 * `?` placeholders; adapters translate them if their driver wants another form.
 */
export type SqlParam = string | number | null;

export interface SqlExecutor {
  /** Runs a statement; resolves to the number of rows changed. */
  run(sql: string, params?: readonly SqlParam[]): Promise<number>;
  all<T>(sql: string, params?: readonly SqlParam[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlParam[]): Promise<T | undefined>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** SQL that differs between backends, named by what it does. */
export interface DialectSql {
  /**
   * Leases up to `limit` ready tasks for a worker and marks them running (a worker
   * claims only what it starts at once). Parameters, in order: owner,
   * leaseExpiresAt, now, now, limit. Returns the leased task rows.
   */
  claimTasks: string;
  /**
   * Leases up to `limit` due outbox items. Parameters, in order: owner,
   * leaseExpiresAt, now, now, limit, now. Returns the leased outbox rows.
   */
  leaseOutbox: string;
  /**
   * How many more pages the database may take before a write that needs one fails
   * (null: the backend has no such limit of its own, its writes fail when the disk does).
   * No parameters; returns one row `{ pages }`. A write probe alone cannot see this
   * limit: it rewrites a page it already has.
   */
  headroomPages: string | null;
}

/**
 * Parameters as they may be stored: every registered secret masked (core/redact.ts).
 * Both backends' executors pass every statement's parameters through this, so no
 * secret reaches the store whichever aggregate writes it.
 */
export function storedParams(params: readonly SqlParam[]): SqlParam[] {
  return params.map((p) => (typeof p === 'string' ? redactSecrets(p) : p));
}
