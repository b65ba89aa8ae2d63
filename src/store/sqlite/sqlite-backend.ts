import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { StoreUnavailableError } from '../../core/errors.ts';
import type { SqlBackend, WorkerIdentity, WorkerLiveness } from '../sql/backend.ts';
import { StagedWrites, claimLimit, storedParams, type DialectSql, type Migration, type SqlExecutor, type SqlParam } from '../sql/executor.ts';
import { loadMigrations } from '../sql/migrator.ts';
import type { Durability, StoreCapabilities } from '../store.ts';
import { sqliteFault } from './sqlite-errors.ts';
import { loadSqliteVec, sqliteVecInstalled } from './sqlite-vec.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'migrations', 'sqlite');
let cachedMigrations: Migration[] | null = null;

const SQLITE_SQL: DialectSql = {
  // One writer at a time in SQLite, so a plain UPDATE … WHERE id IN (subquery) is race-free.
  // INDEXED BY: without statistics the planner prefers tasks_state_idx and sorts the
  // whole queue on every claim; the partial ready index keeps a claim O(batch).
  claimTasks: (limit) => `UPDATE tasks SET state = 'running', lease_owner = ?, lease_no = lease_no + 1, lease_expires_at = ?, updated_at = ?
    WHERE id IN (
      SELECT id FROM tasks INDEXED BY tasks_ready_idx
      WHERE state IN ('queued', 'retry-scheduled') AND run_at <= ? ORDER BY run_at, id LIMIT ${claimLimit(limit)}
    ) RETURNING *`,
  leaseOutbox: `UPDATE outbox SET attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?
    WHERE id IN (
      SELECT id FROM outbox
      WHERE state = 'pending' AND next_attempt_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
      ORDER BY next_attempt_at, created_at, id LIMIT ?
    ) AND state = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
    RETURNING *`,
  // Pages left under max_page_count, counting free pages the file already has.
  headroomPages: `SELECT (SELECT max_page_count FROM pragma_max_page_count()) - (SELECT page_count FROM pragma_page_count())
    + (SELECT freelist_count FROM pragma_freelist_count()) AS pages`,
  auditSealLock: null,
};

/**
 * Runs prepared statements on one node:sqlite connection, caching them by SQL text.
 * A store fault (disk full, read-only, I/O error…) is thrown as StoreUnavailableError
 * and reported to `onFault`; any other error (a statement bug) is thrown as it is.
 */
class SqliteExecutor implements SqlExecutor {
  readonly dialect = 'sqlite';
  /** Set by the group committer while a batch is open (writer only). */
  staged: StagedWrites | undefined;
  private readonly db: DatabaseSync;
  private readonly cache = new Map<string, StatementSync>();
  private readonly onFault: (err: Error) => void;
  private readonly stats: SqliteStats;
  constructor(db: DatabaseSync, stats: SqliteStats, onFault: (err: Error) => void = () => {}) {
    this.db = db;
    this.stats = stats;
    this.onFault = onFault;
  }
  private stmt(sql: string): StatementSync {
    this.stats.queries++;
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
  private fail(err: unknown): never {
    // node:sqlite's answer after close(): as on PostgreSQL, a closed store is unavailable, not a bug.
    if ((err as { code?: unknown } | null)?.code === 'ERR_INVALID_STATE' && !this.db.isOpen) throw new StoreUnavailableError('SQLite: the store is closed', err);
    const fault = sqliteFault(err);
    if (!fault) throw err;
    this.onFault(fault);
    throw fault;
  }
  async run(sql: string, params: readonly SqlParam[] = []): Promise<number> {
    try {
      return Number(this.stmt(sql).run(...storedParams(params)).changes);
    } catch (err) {
      this.fail(err);
    }
  }
  async all<T>(sql: string, params: readonly SqlParam[] = []): Promise<T[]> {
    try {
      return this.stmt(sql).all(...storedParams(params)) as T[];
    } catch (err) {
      this.fail(err);
    }
  }
  async get<T>(sql: string, params: readonly SqlParam[] = []): Promise<T | undefined> {
    try {
      return this.stmt(sql).get(...storedParams(params)) as T | undefined;
    } catch (err) {
      this.fail(err);
    }
  }
  async exec(sql: string): Promise<void> {
    this.stats.queries++;
    try {
      this.db.exec(sql);
    } catch (err) {
      this.fail(err);
    }
  }
}

/** Statements run and transactions committed, for tests and the bench (statements per task). */
export interface SqliteStats {
  queries: number;
  transactions: number;
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
  /**
   * A file outside the database (the CLI's `.spine-stores` beside the config) listing
   * the store files created: a store that existed and is now missing is an error, not
   * a fresh empty store. Unset: no marker (tests, `:memory:`).
   */
  marker?: string;
  /** Create the database even though the marker says it existed (`--create`). */
  create?: boolean;
}

/** Faults a test can put on the writer connection, and take away again (`null`). */
export type SimulatedFault = 'disk-full' | 'read-only' | null;

/**
 * SQLite adapter: one writer connection fed by a group committer, one reader
 * connection. Transactions requested in the same tick share one BEGIN…COMMIT (one
 * fsync); a failing one still rolls back alone (commitBatch) — unless
 * the failure is a store fault (disk full, read-only, I/O error): then SQLite may
 * have rolled the whole transaction back already, so every caller in the batch gets
 * StoreUnavailableError, nothing of the batch is committed, and the next batch starts
 * afresh on the same connection once the fault clears.
 */
export class SqliteBackend implements SqlBackend {
  readonly capabilities: StoreCapabilities;
  /** Why sqlite-vec did not load (null when it did; undefined until first used). */
  private vectorsLoaded: string | null | undefined;
  readonly description: string;
  readonly sql = SQLITE_SQL;
  readonly migrations: readonly Migration[];
  readonly read: SqlExecutor;
  readonly liveness: WorkerLiveness = processLiveness;
  readonly stats: SqliteStats = { queries: 0, transactions: 0 };
  private readonly writer: DatabaseSync;
  private readonly reader: DatabaseSync;
  private readonly tx: SqliteExecutor;
  private readonly events = new EventEmitter();
  private readonly queue: PendingUnit[] = [];
  private readonly maxBatch: number;
  private flushScheduled = false;
  private flushing = false;
  private closed = false;
  /** The store fault a statement of the batch in flight met (a unit may have caught it; the batch still fails). */
  private fault: Error | null = null;
  private readonly normalMaxPages: number;
  private readonly path: string;
  /** The database file's device and inode when opened: a deleted or replaced file is a lost store. */
  private readonly identity: { dev: number; ino: number } | null;
  /** Why the store file can no longer be trusted (sticky: a lost store stays lost). */
  private lostReason: string | null = null;

  constructor(opts: SqliteOptions) {
    this.description = `sqlite:${opts.path} (durability ${opts.durability})`;
    this.maxBatch = opts.maxBatch ?? 256;
    this.path = opts.path;
    try {
      const fresh = opts.path !== ':memory:' && !existsSync(opts.path);
      if (fresh && opts.marker && !opts.create && markedStores(opts.marker).includes(opts.path)) {
        throw new StoreUnavailableError(
          `the store file ${opts.path} existed (${opts.marker} says so) and is missing; restore it, or pass --create to start a new, empty store`,
        );
      }
      // The store holds every message and result: only Spine's user may read it.
      if (fresh) mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
      // Extensions are allowed only to load sqlite-vec; loadSqliteVec switches loading off again.
      this.writer = new DatabaseSync(opts.path, { allowExtension: true });
      if (fresh) {
        chmodSync(opts.path, 0o600);
        if (opts.marker) markStore(opts.marker, opts.path);
      }
      configure(this.writer, opts.durability);
      this.reader = opts.path === ':memory:' ? this.writer : new DatabaseSync(opts.path, { allowExtension: true });
      if (this.reader !== this.writer) configure(this.reader, opts.durability);
    } catch (err) {
      throw sqliteFault(err) ?? err;
    }
    // Extension loading stays off until vectors are first used (enableVectors).
    this.writer.enableLoadExtension(false);
    if (this.reader !== this.writer) this.reader.enableLoadExtension(false);
    this.capabilities = { groupCommit: true, crossProcessWakeups: false, skipLockedClaims: false, fullText: 'fts5', vectors: sqliteVecInstalled() ? 'sqlite-vec' : null };
    this.identity = opts.path === ':memory:' ? null : fileIdentity(opts.path);
    this.normalMaxPages = Number((this.writer.prepare('PRAGMA max_page_count').get() as { max_page_count: number }).max_page_count);
    this.tx = new SqliteExecutor(this.writer, this.stats, (err) => (this.fault ??= err));
    this.read = new SqliteExecutor(this.reader, this.stats);
    this.migrations = cachedMigrations ??= loadMigrations(MIGRATIONS_DIR);
    this.events.setMaxListeners(0);
  }

  /** Loads sqlite-vec into both connections on first use: the writer packs vectors (vec_f32), the reader compares them. */
  enableVectors(): string | null {
    if (this.vectorsLoaded === undefined) {
      const writer = loadSqliteVec(this.writer);
      const reader = this.reader === this.writer ? null : loadSqliteVec(this.reader);
      this.vectorsLoaded = writer ?? reader;
    }
    return this.vectorsLoaded;
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('SQLite: the store is closed'));
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
      while (this.queue.length > 0) await this.commitBatch(this.queue.splice(0, this.maxBatch));
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Commits a batch of units, each failing alone. The first try runs them back to back
   * with no savepoint: a statement journal per unit was the group commit's biggest cost,
   * and units rarely fail. When one does, the transaction is rolled back, that unit is
   * answered with its error (it met exactly the state a savepoint would have shown
   * it), and the rest run again, each in a savepoint — so a batch is replayed at most
   * once. Units may run more than once anyway (SqlBackend.transaction).
   */
  private async commitBatch(batch: PendingUnit[]): Promise<void> {
    const failed = await this.runBatch(batch, false);
    if (failed === null) return;
    const rest = failed.index === null ? batch : batch.filter((_, i) => i !== failed.index);
    if (failed.index !== null) batch[failed.index]!.reject(failed.err);
    await this.runBatch(rest, true);
  }

  /**
   * Runs `units` in one BEGIN IMMEDIATE … COMMIT and settles them. Optimistic
   * (`isolated` false): the first unit to throw, or a failing flush of the staged
   * writes (index null), rolls everything back, and is returned with nothing settled.
   * Isolated: each unit in a savepoint with its staged writes flushed inside it. A
   * store fault fails every unit either way: SQLite may have ended the transaction.
   */
  private async runBatch(units: PendingUnit[], isolated: boolean): Promise<{ index: number | null; err: unknown } | null> {
    if (units.length === 0) return null;
    const done: Array<() => void> = [];
    this.fault = null;
    const lostBefore = this.checkFile();
    if (lostBefore) {
      for (const unit of units) unit.reject(lostBefore);
      return null;
    }
    const staged = new StagedWrites();
    this.tx.staged = staged;
    try {
      this.control('BEGIN IMMEDIATE');
      for (const [index, unit] of units.entries()) {
        if (isolated) this.control('SAVEPOINT unit');
        try {
          const value = await unit.fn(this.tx);
          if (isolated) await staged.flush(this.tx);
          this.assertIntact();
          if (isolated) this.control('RELEASE unit');
          done.push(() => unit.resolve(value));
        } catch (err) {
          this.assertIntact();
          staged.clear();
          if (!isolated) {
            this.control('ROLLBACK');
            return { index, err };
          }
          this.control('ROLLBACK TO unit');
          this.control('RELEASE unit');
          done.push(() => unit.reject(err));
        }
      }
      if (!isolated) {
        try {
          await staged.flush(this.tx);
          this.assertIntact();
        } catch (err) {
          this.assertIntact();
          this.control('ROLLBACK');
          return { index: null, err };
        }
      }
      this.control('COMMIT');
      this.stats.transactions++;
      // A commit into a file deleted meanwhile is not durable: it is not acknowledged.
      const lostAfter = this.checkFile();
      if (lostAfter) {
        for (const unit of units) unit.reject(lostAfter);
        return null;
      }
      this.events.emit('committed');
    } catch (err) {
      if (this.writer.isTransaction) {
        try {
          this.control('ROLLBACK');
        } catch {
          // Already rolled back by SQLite itself (e.g. after SQLITE_FULL).
        }
      }
      const failure = sqliteFault(err) ?? err;
      for (const unit of units) unit.reject(failure);
      return null;
    } finally {
      this.tx.staged = undefined;
    }
    for (const settle of done) settle();
    return null;
  }

  /** Transaction control on the writer, counted with the statements. */
  private control(sql: string): void {
    this.stats.queries++;
    this.writer.exec(sql);
  }

  /**
   * Whether the database file is still the one opened (same device and inode, still
   * linked). If not, every write fails from now on with StoreUnavailableError saying
   * why, and `onLost` listeners hear it once (the runtime drains and exits non-zero).
   */
  private checkFile(): StoreUnavailableError | null {
    if (this.identity && this.lostReason === null) {
      const now = fileIdentity(this.path);
      if (now === null) this.lostReason = `the store file ${this.path} was deleted while open`;
      else if (now.dev !== this.identity.dev || now.ino !== this.identity.ino) this.lostReason = `the store file ${this.path} was replaced while open`;
      if (this.lostReason !== null) this.events.emit('lost', this.lostReason);
    }
    return this.lostReason === null ? null : new StoreUnavailableError(`${this.lostReason}; nothing more is acknowledged (restart once the file is restored)`);
  }

  /** Calls `listener` once if the database file is deleted or replaced under this process. */
  onLost(listener: (reason: string) => void): () => void {
    this.events.once('lost', listener);
    return () => this.events.off('lost', listener);
  }

  /** Throws (failing the whole batch) if a store fault happened or SQLite ended the transaction under us. */
  private assertIntact(): void {
    if (this.fault) throw this.fault;
    if (!this.writer.isTransaction) throw new Error('SQLite ended the transaction during a unit of work');
  }

  /**
   * For tests: makes the writer connection fail as a full disk does (no new page may be
   * allocated: `max_page_count` is held at the current size) or as a read-only database
   * does (`query_only`); `null` clears both. Reads are unaffected.
   */
  simulateFault(fault: SimulatedFault): void {
    this.writer.exec(`PRAGMA max_page_count = ${fault === 'disk-full' ? 1 : this.normalMaxPages}`);
    this.writer.exec(`PRAGMA query_only = ${fault === 'read-only' ? 'ON' : 'OFF'}`);
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

/**
 * SQLite's workers share its host: a worker whose process is gone is dead. A
 * process id the OS has given to someone else since reads as alive, and that
 * worker's tasks wait out their lease.
 */
const processLiveness: WorkerLiveness = {
  watch: null,
  async hold() {},
  async release() {},
  async dead(workers: readonly WorkerIdentity[]): Promise<string[]> {
    const here = hostname();
    return workers.filter((w) => w.host === here && w.pid !== process.pid && !processExists(w.pid)).map((w) => w.id);
  },
};

function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as { code?: string }).code !== 'ESRCH';
  }
}

function configure(db: DatabaseSync, durability: Durability): void {
  // busy_timeout first: switching to WAL takes a lock, and another process's write
  // must make this one wait, not fail. temp_store = MEMORY keeps each unit's
  // savepoint (statement) journal off disk: it was ~64 writes and a third of the CPU
  // per task in the kernel (bench W2: 181 → 140 µs CPU per task).
  db.exec('PRAGMA busy_timeout = 5000');
  db.exec(`PRAGMA journal_mode = WAL;
    PRAGMA synchronous = ${durability === 'strict' ? 'FULL' : 'NORMAL'};
    PRAGMA foreign_keys = ON;
    PRAGMA temp_store = MEMORY;`);
}

function fileIdentity(path: string): { dev: number; ino: number } | null {
  try {
    const st = statSync(path);
    return st.nlink < 1 ? null : { dev: st.dev, ino: st.ino };
  } catch {
    return null;
  }
}

/** The store files a marker lists (one absolute path a line). */
function markedStores(marker: string): string[] {
  try {
    return readFileSync(marker, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function markStore(marker: string, path: string): void {
  const known = markedStores(marker);
  if (known.includes(path)) return;
  try {
    mkdirSync(dirname(marker), { recursive: true, mode: 0o700 });
    writeFileSync(marker, [...known, path].join('\n') + '\n', { mode: 0o600 });
  } catch {
    // A folder we cannot write to: the store works, without the missing-file guard.
  }
}
