import { redactSecrets } from '../../core/redact.ts';

/**
 * The one seam between the shared SQL store and a database driver. Statements use
 * `?` placeholders; adapters translate them if their driver wants another form.
 */
export type SqlParam = string | number | null;

export interface SqlExecutor {
  /** The database's SQL, for the few statements only one of them can run (a data-modifying WITH on PostgreSQL). */
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs a statement; resolves to the number of rows changed. */
  run(sql: string, params?: readonly SqlParam[]): Promise<number>;
  all<T>(sql: string, params?: readonly SqlParam[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlParam[]): Promise<T | undefined>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * A transaction's writes held back until just before its COMMIT (absent outside a
   * transaction): the units that share a transaction stage their audit rows here, and
   * the backend writes them all at once (StagedWrites).
   */
  readonly staged?: StagedWrites;
}

/** Writes the items staged for one flush function, in the order they were staged. */
export type StagedFlush<T> = (tx: SqlExecutor, items: T[]) => Promise<void>;

/**
 * Writes a transaction defers to its end. The audit append is three statements (lock
 * the stream heads, insert the events, move the heads) however many events it
 * carries, so the group-committed units of one transaction append theirs together
 * instead of three statements each. The backend flushes before COMMIT, and drops
 * what a failed unit staged (`clear` in a savepoint's rollback).
 */
export class StagedWrites {
  /**
   * The stream heads this transaction holds locked, as of its last read or write, so a
   * later append need not lock and read them again (PostgreSQL, where a failing unit
   * fails the whole transaction). Null where one unit can roll back alone (SQLite's
   * savepoints): a head it moved would be left ahead of the database.
   */
  readonly heads: Map<string, { n: number; hash: string }> | null;
  private items: Array<{ flush: StagedFlush<unknown>; item: unknown }> = [];

  constructor(opts: { keepHeads?: boolean } = {}) {
    this.heads = opts.keepHeads ? new Map() : null;
  }

  add<T>(flush: StagedFlush<T>, item: T): void {
    this.items.push({ flush: flush as StagedFlush<unknown>, item });
  }

  clear(): void {
    this.items = [];
  }

  /** Writes everything staged, one call per flush function (in first-staged order), and empties the stage. */
  async flush(tx: SqlExecutor): Promise<void> {
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    const groups = new Map<StagedFlush<unknown>, unknown[]>();
    for (const { flush, item } of items) {
      const group = groups.get(flush);
      if (group) group.push(item);
      else groups.set(flush, [item]);
    }
    for (const [flush, group] of groups) await flush(tx, group);
  }
}

/**
 * What a claim statement may return beside each task row: its stream's head, locked
 * for the claim's events, and its run's context for the turns (run_* columns).
 */
export interface ClaimContextColumns {
  head_seq: number | string | null;
  head_hash: string | null;
  run_agent: string | null;
  run_tenant: string | null;
  run_session_key: string | null;
  run_session_seq: number | string | null;
  run_session_epoch: number | string | null;
  run_kind: string | null;
  run_origin: string | null;
  run_reply_channel: string | null;
  run_reply_account: string | null;
  run_reply_to: string | null;
  run_head_seq: number | string | null;
  run_head_hash: string | null;
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Most tasks one claim takes, whatever it is asked for. */
const MOST_CLAIMED = 10_000;

/**
 * A claim's limit as written into its statement's text: a plain whole number from 1 to
 * MOST_CLAIMED (not NaN, Infinity or 1e+21, which String would write and SQL refuse).
 */
export function claimLimit(limit: number): string {
  return String(Number.isNaN(limit) ? 1 : Math.min(MOST_CLAIMED, Math.max(1, Math.trunc(limit))));
}

/** SQL that differs between backends, named by what it does. */
export interface DialectSql {
  /**
   * Leases up to `limit` ready tasks for a worker and marks them running (a worker
   * claims only what it starts at once). Parameters, in order: owner,
   * leaseExpiresAt, now, now. Returns the leased task rows; where a round trip is
   * worth saving (PostgreSQL), each with the ClaimContextColumns too. The limit is
   * written into the text (a whole number, see claimLimit): PostgreSQL plans a LIMIT
   * it cannot see for a tenth of the table, so with it a parameter every claim was
   * planned anew; with it in the text, each limit's statement is planned once.
   */
  claimTasks(limit: number): string;
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
  /**
   * Makes the caller's transaction wait until every transaction that may still append
   * audit events has ended, and holds new ones off until it ends (null: writers are
   * serialised anyway, so what is visible is already a safe horizon). No parameters.
   */
  auditSealLock: string | null;
}

/**
 * Parameters as they may be stored: every registered secret masked (core/redact.ts).
 * Both backends' executors pass every statement's parameters through this, so no
 * secret reaches the store whichever aggregate writes it.
 */
export function storedParams(params: readonly SqlParam[]): SqlParam[] {
  return params.map((p) => (typeof p === 'string' ? withoutNul(redactSecrets(p)) : p));
}

/** `\u0000` as JSON text writes it, not preceded by an escaping backslash. */
const JSON_NUL = /(?<!\\)((?:\\\\)*)\\u0000/g;

/**
 * PostgreSQL cannot store U+0000 in text or jsonb; SQLite can. NUL is refused at the
 * door (400 INPUT_LIMIT), but an agent's output or a tool's result may still carry
 * one: it is stored as U+FFFD on both backends alike, rather than failing the commit
 * on one of them (a poison turn).
 */
function withoutNul(text: string): string {
  if (text.includes('\u0000')) text = text.replaceAll('\u0000', '\uFFFD');
  return text.includes('\\u0000') ? text.replace(JSON_NUL, '$1\\ufffd') : text;
}
