import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { SqlBackend } from '../sql/backend.ts';
import type { DialectSql, Migration, SqlExecutor, SqlParam } from '../sql/executor.ts';
import { loadMigrations } from '../sql/migrator.ts';
import type { Durability, StoreCapabilities } from '../store.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'migrations', 'sqlite');
let cachedMigrations: Migration[] | null = null;

const SQLITE_SQL: DialectSql = {
  // One writer at a time in SQLite, so a plain UPDATE … WHERE id IN (subquery) is race-free.
  // INDEXED BY: without statistics the planner prefers tasks_state_idx and sorts the
  // whole queue on every claim; the partial ready index keeps a claim O(batch).
  claimTasks: `UPDATE tasks SET state = 'running', lease_owner = ?, lease_no = lease_no + 1, lease_expires_at = ?, updated_at = ?
    WHERE id IN (
      SELECT id FROM tasks INDEXED BY tasks_ready_idx
      WHERE state IN ('queued', 'retry-scheduled') AND run_at <= ? ORDER BY run_at, id LIMIT ?
    ) RETURNING *`,
  leaseOutbox: `UPDATE outbox SET attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?
    WHERE id IN (
      SELECT id FROM outbox
      WHERE state = 'pending' AND next_attempt_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
      ORDER BY next_attempt_at, created_at, id LIMIT ?
    ) AND state = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
    RETURNING *`,
};

/** Runs prepared statements on one node:sqlite connection, caching them by SQL text. */
class SqliteExecutor implements SqlExecutor {
  private readonly db: DatabaseSync;
  private readonly cache = new Map<string, StatementSync>();
  constructor(db: DatabaseSync) {
    this.db = db;
  }
  private stmt(sql: string): StatementSync {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
  async run(sql: string, params: readonly SqlParam[] = []): Promise<number> {
    return Number(this.stmt(sql).run(...params).changes);
  }
  async all<T>(sql: string, params: readonly SqlParam[] = []): Promise<T[]> {
    return this.stmt(sql).all(...params) as T[];
  }
  async get<T>(sql: string, params: readonly SqlParam[] = []): Promise<T | undefined> {
    return this.stmt(sql).get(...params) as T | undefined;
  }
  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
  }
}

interface PendingUnit {
  fn: (tx: SqlExecutor) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export interface SqliteOptions {
  path: string;
  durability: Durability;
  /** Most units merged into one transaction. */
  maxBatch?: number;
}

/**
 * SQLite adapter: one writer connection fed by a group committer, one reader
 * connection. Transactions requested in the same tick share one BEGIN…COMMIT (one
 * fsync); each runs in its own savepoint so a failing one rolls back alone.
 */
export class SqliteBackend implements SqlBackend {
  readonly capabilities: StoreCapabilities = { groupCommit: true, crossProcessWakeups: false, skipLockedClaims: false };
  readonly description: string;
  readonly sql = SQLITE_SQL;
  readonly migrations: readonly Migration[];
  readonly read: SqlExecutor;
  private readonly writer: DatabaseSync;
  private readonly reader: DatabaseSync;
  private readonly tx: SqliteExecutor;
  private readonly events = new EventEmitter();
  private readonly queue: PendingUnit[] = [];
  private readonly maxBatch: number;
  private flushScheduled = false;
  private flushing = false;
  private closed = false;

  constructor(opts: SqliteOptions) {
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.description = `sqlite:${opts.path} (durability ${opts.durability})`;
    this.maxBatch = opts.maxBatch ?? 256;
    this.writer = new DatabaseSync(opts.path);
    configure(this.writer, opts.durability);
    this.reader = opts.path === ':memory:' ? this.writer : new DatabaseSync(opts.path);
    if (this.reader !== this.writer) configure(this.reader, opts.durability);
    this.tx = new SqliteExecutor(this.writer);
    this.read = new SqliteExecutor(this.reader);
    this.migrations = cachedMigrations ??= loadMigrations(MIGRATIONS_DIR);
    this.events.setMaxListeners(0);
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled && !this.flushing) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        const done: Array<() => void> = [];
        try {
          this.writer.exec('BEGIN IMMEDIATE');
          for (const unit of batch) {
            this.writer.exec('SAVEPOINT unit');
            try {
              const value = await unit.fn(this.tx);
              this.writer.exec('RELEASE unit');
              done.push(() => unit.resolve(value));
            } catch (err) {
              this.writer.exec('ROLLBACK TO unit');
              this.writer.exec('RELEASE unit');
              done.push(() => unit.reject(err));
            }
          }
          this.writer.exec('COMMIT');
          this.events.emit('committed');
        } catch (err) {
          if (this.writer.isTransaction) this.writer.exec('ROLLBACK');
          for (const unit of batch) unit.reject(err);
          continue;
        }
        for (const settle of done) settle();
      }
    } finally {
      this.flushing = false;
    }
  }

  async withMigrationLock<T>(fn: () => Promise<T>): Promise<T> {
    // Each migration runs in a BEGIN IMMEDIATE transaction, which already excludes other writers.
    return fn();
  }

  signalTasksReady(): void {
    this.events.emit('ready');
  }

  onTasksReady(listener: () => void): () => void {
    this.events.on('ready', listener);
    return () => this.events.off('ready', listener);
  }

  onCommitted(listener: () => void): () => void {
    this.events.on('committed', listener);
    return () => this.events.off('committed', listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued commits finish before closing.
    while (this.queue.length > 0 || this.flushing || this.flushScheduled) await new Promise((r) => setImmediate(r));
    this.closed = true;
    if (this.reader !== this.writer) this.reader.close();
    this.writer.close();
  }
}

function configure(db: DatabaseSync, durability: Durability): void {
  db.exec(`PRAGMA journal_mode = WAL;
    PRAGMA synchronous = ${durability === 'strict' ? 'FULL' : 'NORMAL'};
    PRAGMA busy_timeout = 5000;
    PRAGMA foreign_keys = ON;`);
}
