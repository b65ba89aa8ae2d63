import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { silentLogger, type Logger } from '../../core/log.ts';
import type { SqlBackend, TransactionOptions } from '../sql/backend.ts';
import { CommitHints } from '../sql/commit-hints.ts';
import { StagedWrites, claimLimit, storedParams, type DialectSql, type Migration, type SqlExecutor, type SqlParam } from '../sql/executor.ts';
import { loadMigrations } from '../sql/migrator.ts';
import { runStream, taskStream } from '../../audit/chain.ts';
import type { Durability, StoreCapabilities } from '../store.ts';
import { parsePgUrl, quoteIdent, type PgConfig } from './pg-config.ts';
import { StoreUnavailableError, isConnectionError, isStoreFault, isTransientConflict, isUnknownStatement, mustPrepareAgain } from './pg-errors.ts';
import { BatchOutcomeUnknown, GroupCommitter } from './pg-group-commit.ts';
import { PgListener } from './pg-listener.ts';
import { PgLiveness } from './pg-liveness.ts';
import { toPgPlaceholders } from './placeholders.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'migrations', 'postgres');
let cachedMigrations: Migration[] | null = null;

const PG_SQL: DialectSql = {
  // Leases ready tasks and marks them running (see DialectSql.claimTasks), and in the
  // same round trip locks and reads their audit streams' heads (the claim's events
  // append there) and reads what their turns need of their runs (ClaimContextColumns).
  // Many claimers at once: each locks the ready rows it picks and skips rows another
  // claimer holds, so claims never block each other and never lease a row twice. The
  // pick is a MATERIALIZED CTE: as an `IN (subquery)` the planner may run the locking
  // subquery more than once per statement, ignoring its LIMIT under concurrency.
  // Numbered parameters keep the DialectSql order: owner, leaseExpiresAt, now, now.
  claimTasks: (limit) => `WITH picked AS MATERIALIZED (
      SELECT id FROM tasks WHERE state IN ('queued', 'retry-scheduled') AND run_at <= $4 ORDER BY run_at, id LIMIT ${claimLimit(limit)}
      FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
      UPDATE tasks SET state = 'running', lease_owner = $1, lease_no = lease_no + 1, lease_expires_at = $2, updated_at = $3
      FROM picked WHERE tasks.id = picked.id
      RETURNING tasks.*
    ),
    heads AS (
      UPDATE audit_heads SET stream_seq = stream_seq WHERE stream IN (SELECT '${taskStream('')}' || id FROM claimed) RETURNING stream, stream_seq, hash
    )
    SELECT c.*, h.stream_seq AS head_seq, h.hash AS head_hash,
      r.agent AS run_agent, r.tenant AS run_tenant, r.session_key AS run_session_key, r.session_seq AS run_session_seq,
      r.session_epoch AS run_session_epoch, r.kind AS run_kind, r.origin AS run_origin,
      e.channel AS run_reply_channel, e.account AS run_reply_account, e.reply_to AS run_reply_to,
      rh.stream_seq AS run_head_seq, rh.hash AS run_head_hash
    FROM claimed c LEFT JOIN heads h ON h.stream = '${taskStream('')}' || c.id
      LEFT JOIN runs r ON r.id = c.run_id LEFT JOIN envelopes e ON e.id = r.envelope_id
      LEFT JOIN audit_heads rh ON rh.stream = '${runStream('')}' || c.run_id`,
  // The same for the outbox: racing dispatchers share the due items.
  // Parameters: owner, leaseExpiresAt, now, now, limit, now.
  leaseOutbox: `WITH picked AS MATERIALIZED (
      SELECT id FROM outbox
      WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at <= $4)
      ORDER BY next_attempt_at, created_at, id LIMIT $5
      FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox SET attempts = attempts + 1, lease_owner = $1, lease_expires_at = $2
    FROM picked WHERE outbox.id = picked.id AND outbox.state = 'pending' AND (outbox.lease_expires_at IS NULL OR outbox.lease_expires_at <= $6)
    RETURNING outbox.*`,
  // No size limit of its own: a full disk fails the write itself (SQLSTATE 53100).
  headroomPages: null,
  auditSealLock: 'LOCK TABLE audit_heads IN EXCLUSIVE MODE',
};

/** BIGINT (ms times, counters) and NUMERIC (SUMs) come back as JS numbers, not strings. */
const toNumber = (value: string): number => Number(value);
export const PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 || oid === 1700) return toNumber;
    return pg.types.getTypeParser(oid, format) as unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** Key class of Spine's advisory locks (the second key is the schema's hash). */
const MIGRATION_LOCK_CLASS = 0x5350494e; // "SPIN"
/** Conflicts (deadlock, serialization) are retried this often before giving up. */
const MAX_CONFLICT_RETRIES = 10;
/** Connection failures before COMMIT are retried with backoff for about three seconds. */
const CONNECTION_BACKOFF_MS = [50, 100, 200, 400, 800, 1_600];

export interface PgOptions {
  url: string;
  /** Overrides the URL's `schema=`. */
  schema?: string;
  /** Overrides the URL's `pool=` (connections for commands; LISTEN uses one more). */
  poolSize?: number;
  /**
   * strict (default): the server's own synchronous_commit (on: a commit is acknowledged
   * once its WAL is flushed). fast: synchronous_commit=off for this store's sessions — a
   * commit survives this process dying, but the last few may be lost if the database
   * server or its machine crashes (the same promise as SQLite's fast).
   */
  durability?: Durability;
  /**
   * Group commit of the hot path's units (TransactionOptions.shared): most shared
   * transactions in flight at once, each carrying the units asked for meanwhile (1:
   * two of this process's batches can never wait on each other's locks). Default 0,
   * every unit in its own transaction: with it on, the SIGKILL chaos suites fell far
   * behind on a loaded machine (622 of 1,000 runs unfinished after 300 s) while W2
   * throughput did not move, so it stays opt-in until that is understood.
   */
  commitPipelines?: number;
  /** Waits between tries after a connection failure (default about 3 s in all). */
  reconnectBackoffMs?: readonly number[];
  log?: Logger;
}

/** Round trips sent, for tests and the bench (an idle worker must not busy-poll). */
export interface PgStats {
  queries: number;
  transactions: number;
  notifies: number;
  retries: number;
}

type QueryFn = (config: pg.QueryConfig<SqlParam[]> | string) => Promise<pg.QueryResult<Record<string, unknown>>>;

/** Named prepared statements, one name per SQL text; a new generation re-prepares after a schema change. */
class StatementNames {
  private readonly names = new Map<string, string>();
  private generation = 0;
  private next = 0;
  name(text: string): string | undefined {
    let n = this.names.get(text);
    if (n === undefined) {
      if (this.names.size >= 2_000) return undefined;
      n = `spine_${this.generation}_${this.next++}`;
      this.names.set(text, n);
    }
    return n;
  }
  /** Forget every name: statements prepared before a migration are prepared again under new names. */
  reset(): void {
    this.names.clear();
    this.generation++;
  }
}

/**
 * A first statement with more parameters is not sent with its BEGIN: the server reads
 * literals dearer than it binds parameters. Sending the claim's 192-parameter audit
 * statement with its COMMIT that way cost 8% more server CPU per task (W2) than the
 * round trip it saved; the claim itself has 4.
 */
const FUSED_PARAMS = 16;

/** `EXECUTE name(…)` of a prepared statement, each parameter the literal of the text the extended protocol would bind. */
function executeText(name: string, values: readonly SqlParam[]): string {
  const literal = (v: SqlParam): string => (v === null ? 'NULL' : pg.escapeLiteral(String(v)));
  return values.length === 0 ? `EXECUTE ${name}` : `EXECUTE ${name}(${values.map(literal).join(', ')})`;
}

class PgExecutor implements SqlExecutor {
  readonly dialect = 'postgres';
  /** A transaction's writes held back to its COMMIT (none outside a transaction). */
  readonly staged: StagedWrites | undefined;
  private readonly query: QueryFn;
  private readonly names: StatementNames;
  /** The statement names prepared on this executor's connection (none known: a pool's executor). */
  private readonly prepared: Set<string> | undefined;
  /**
   * The transaction's BEGIN, until it is sent. It goes in one round trip with the first
   * statement where that statement is prepared on the connection already (and has few
   * parameters): a simple query of the BEGIN and an EXECUTE of the statement, its
   * parameters written as the literals of the text the extended protocol would have
   * bound. Otherwise the BEGIN goes alone first, as it always did.
   */
  private begin: string | null;
  constructor(query: QueryFn, names: StatementNames, opts: { staged?: StagedWrites; prepared?: Set<string>; begin?: string } = {}) {
    this.query = query;
    this.names = names;
    this.staged = opts.staged;
    this.prepared = opts.prepared;
    this.begin = opts.begin ?? null;
  }
  /** Whether anything was sent: a transaction that sent nothing has nothing to commit. */
  get started(): boolean {
    return this.begin === null;
  }
  private config(sql: string, params: readonly SqlParam[]): pg.QueryConfig<SqlParam[]> {
    const text = toPgPlaceholders(sql);
    const name = this.names.name(text);
    return name === undefined ? { text, values: storedParams(params) } : { name, text, values: storedParams(params) };
  }
  private async send(sql: string, params: readonly SqlParam[]): Promise<pg.QueryResult<Record<string, unknown>>> {
    const config = this.config(sql, params);
    const begin = this.begin;
    this.begin = null;
    if (begin !== null && config.name !== undefined && this.prepared?.has(config.name) && (config.values?.length ?? 0) <= FUSED_PARAMS) {
      // A simple query answers each of its statements; the statement's answer is the last.
      const answers = (await this.query(`${begin}; ${executeText(config.name, config.values ?? [])}`)) as unknown as Array<pg.QueryResult<Record<string, unknown>>>;
      return answers[answers.length - 1]!;
    }
    if (begin !== null) await this.query(begin);
    const result = await this.query(config);
    if (config.name !== undefined) this.prepared?.add(config.name);
    return result;
  }
  async run(sql: string, params: readonly SqlParam[] = []): Promise<number> {
    return (await this.send(sql, params)).rowCount ?? 0;
  }
  async all<T>(sql: string, params: readonly SqlParam[] = []): Promise<T[]> {
    return (await this.send(sql, params)).rows as T[];
  }
  async get<T>(sql: string, params: readonly SqlParam[] = []): Promise<T | undefined> {
    return (await this.send(sql, params)).rows[0] as T | undefined;
  }
  async exec(sql: string): Promise<void> {
    // No parameters: the simple protocol, which runs a script of several statements (the BEGIN among them if not sent yet).
    const begin = this.begin;
    this.begin = null;
    await this.query(begin === null ? sql : `${begin}; ${sql}`);
  }
}

/** A transaction attempt that failed: the cause, and what the retry logic needs to know of it. */
class AttemptFailed extends Error {
  readonly err: unknown;
  readonly lostConnection: boolean;
  /** COMMIT had been sent: with a lost connection, the outcome is unknown. */
  readonly committing: boolean;
  constructor(err: unknown, lostConnection: boolean, committing: boolean) {
    super('a PostgreSQL transaction attempt failed', { cause: err });
    this.err = err;
    this.lostConnection = lostConnection;
    this.committing = committing;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A transaction whose COMMIT does not wait for its WAL flush (TransactionOptions.lossy): one round trip, as a simple query may hold several statements. */
const LOSSY_BEGIN = 'BEGIN; SET LOCAL synchronous_commit = off';

/**
 * PostgreSQL adapter: a connection pool, each transaction on a pooled connection of
 * its own, and an opt-in group committer (pg-group-commit.ts, `commitPipelines`): with
 * it, the hot path's transactions (turn commits, claims) asked for while a batch is in
 * flight share the next BEGIN…COMMIT on one connection. Claims use SKIP LOCKED;
 * LISTEN/NOTIFY wakes workers in every process.
 *
 * Transactions are re-run (fn is called again) after a deadlock or serialization
 * failure, and after the connection broke before COMMIT was sent: in both cases the
 * database rolled the first try back. `fn` must therefore only touch `tx` — as the
 * SqlBackend contract already asks. A connection lost *during* COMMIT leaves the
 * outcome unknown and fails with a retryable StoreUnavailableError.
 */
export class PgBackend implements SqlBackend {
  readonly capabilities: StoreCapabilities;
  readonly description: string;
  readonly sql = PG_SQL;
  readonly migrations: readonly Migration[];
  readonly read: SqlExecutor;
  readonly config: PgConfig;
  readonly stats: PgStats = { queries: 0, transactions: 0, notifies: 0, retries: 0 };
  readonly hints = new CommitHints();
  /** The statement names prepared on each pooled connection (PgExecutor sends a BEGIN with an EXECUTE of one). */
  private readonly preparedNames = new WeakMap<pg.PoolClient, Set<string>>();
  /** Off for good once an EXECUTE by name finds no statement (a pooler renames them): every BEGIN then goes alone. */
  private executeByName = true;
  private readonly pool: pg.Pool;
  private readonly clientConfig: pg.ClientConfig;
  private readonly names = new StatementNames();
  private readonly events = new EventEmitter();
  private readonly log: Logger;
  private readonly backoff: readonly number[];
  private readonly listener: PgListener;
  readonly liveness: PgLiveness;
  private readonly channel: string;
  /** Tags this backend's own NOTIFYs, which its in-process listeners already heard. */
  private readonly instanceId = randomBytes(8).toString('hex');
  private readonly committer: GroupCommitter | null;
  private notifyPending = false;
  private notifying: Promise<void> | null = null;
  private closed = false;

  constructor(opts: PgOptions) {
    this.config = parsePgUrl(opts.url, { ...(opts.schema ? { schema: opts.schema } : {}), ...(opts.poolSize ? { poolSize: opts.poolSize } : {}) });
    this.log = opts.log ?? silentLogger;
    this.backoff = opts.reconnectBackoffMs ?? CONNECTION_BACKOFF_MS;
    const schema = this.config.schema;
    const options = [
      this.config.serverOptions,
      schema ? `-c search_path=${quoteIdent(schema)}` : null,
      opts.durability === 'fast' ? '-c synchronous_commit=off' : null,
    ]
      .filter(Boolean)
      .join(' ');
    this.clientConfig = {
      connectionString: this.config.connectionString,
      application_name: 'spine',
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
      types: PG_TYPES,
      ...(options ? { options } : {}),
    };
    this.pool = new pg.Pool({ ...this.clientConfig, max: this.config.poolSize, idleTimeoutMillis: 30_000 });
    // An idle pooled connection that breaks (terminated, server restart) is dropped; the next query opens a new one.
    this.pool.on('error', (err) => this.log.warn('PostgreSQL connection lost; it will be replaced', { error: err.message }));
    // Every pooled connection keeps an error listener for its whole life: an 'error' event
    // in the instant between the pool handing it out and its user listening (or a second
    // one during a query) must not become an uncaught exception. The statement in flight
    // fails, the connection is marked unusable, and the pool drops it on release.
    this.pool.on('connect', (client) => {
      client.on('error', () => {});
    });
    this.description = `${this.config.safeUrl} (pool ${this.config.poolSize}${opts.durability === 'fast' ? ', durability fast' : ''})`;
    this.migrations = cachedMigrations ??= loadMigrations(MIGRATIONS_DIR);
    this.read = new PgExecutor((q) => this.readQuery(q), this.names);
    this.channel = `spine_ready_${schema ?? 'public'}`.slice(0, 63);
    this.listener = new PgListener({
      clientConfig: this.clientConfig,
      channel: this.channel,
      onNotify: (payload) => {
        if (payload !== this.instanceId) this.events.emit('ready');
      },
      onReconnected: () => this.events.emit('ready'),
      log: this.log,
    });
    this.liveness = new PgLiveness({
      clientConfig: this.clientConfig,
      query: async (text, values) => (await this.readQuery({ text, values: values as SqlParam[] })).rows,
      log: this.log,
    });
    this.events.setMaxListeners(0);
    const pipelines = opts.commitPipelines ?? 0;
    this.committer =
      pipelines > 0
        ? new GroupCommitter({
            runBatch: (fns) => this.runBatch(fns),
            runAlone: (fn) => this.runAlone(fn, true),
            unknownOutcome: (err) =>
              new StoreUnavailableError(`PostgreSQL: the connection broke during COMMIT; the transaction may or may not have committed (${errorText(err.failure)})`, err.failure),
            maxBatch: 64,
            maxInFlight: pipelines,
          })
        : null;
    this.capabilities = { groupCommit: this.committer !== null, crossProcessWakeups: true, skipLockedClaims: true, fullText: 'tsvector', vectors: 'pgvector' };
  }

  /** The schema this store lives in (null: the connection's default search_path). */
  get schema(): string | null {
    return this.config.schema;
  }

  /** Whether the LISTEN connection is up (doctor). */
  get listening(): boolean {
    return this.listener.listening;
  }

  private async readQuery(q: pg.QueryConfig<SqlParam[]> | string): Promise<pg.QueryResult<Record<string, unknown>>> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new StoreUnavailableError('PostgreSQL: the store is closed');
      this.stats.queries++;
      try {
        return await this.pool.query<Record<string, unknown>>(q);
      } catch (err) {
        if (mustPrepareAgain(err) && attempt === 0) {
          this.names.reset();
          q = typeof q === 'string' ? q : { text: q.text, values: q.values ?? [] };
          continue;
        }
        if (isStoreFault(err)) throw new StoreUnavailableError(`PostgreSQL: ${errorText(err)}`, err);
        if (!isConnectionError(err)) throw err;
        const wait = this.backoff[attempt];
        if (wait === undefined || this.closed) throw new StoreUnavailableError(`PostgreSQL: cannot reach the database (${errorText(err)})`, err);
        this.stats.retries++;
        await sleep(wait);
      }
    }
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, opts?: TransactionOptions): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('PostgreSQL: the store is closed'));
    return opts?.shared && this.committer ? this.committer.submit(fn) : this.runAlone(fn, opts?.shared === true, opts?.lossy === true);
  }

  /**
   * Several units in one transaction, in order, on one connection. Any failure rolls
   * the lot back and is thrown (the committer then runs each unit alone), except a
   * connection lost during COMMIT: BatchOutcomeUnknown.
   */
  private async runBatch(fns: ReadonlyArray<(tx: SqlExecutor) => Promise<unknown>>): Promise<unknown[]> {
    if (this.closed) throw new StoreUnavailableError('PostgreSQL: the store is closed');
    const client = await this.pool.connect();
    try {
      return await this.attempt(client, true, async (tx) => {
        const values: unknown[] = [];
        for (const fn of fns) values.push(await fn(tx));
        return values;
      });
    } catch (failed) {
      const { err, lostConnection, committing } = failed as AttemptFailed;
      if (committing && lostConnection) throw new BatchOutcomeUnknown(err);
      if (mustPrepareAgain(err)) this.names.reset();
      throw err;
    }
  }

  private preparedOn(client: pg.PoolClient): Set<string> {
    let names = this.preparedNames.get(client);
    if (names === undefined) {
      names = new Set();
      this.preparedNames.set(client, names);
    }
    return names;
  }

  /**
   * One transaction on a checked-out connection: `begin` (BEGIN, or LOSSY_BEGIN; sent
   * with the first statement where it can be, PgExecutor), `work`, COMMIT (none if
   * nothing was sent); or, `begin` null, `work`'s one statement as a transaction of its own
   * (no BEGIN, no COMMIT, nothing staged: from its first byte it may commit). The
   * connection is always released, destroyed if it broke. A failure is thrown as
   * AttemptFailed, saying whether the connection was lost and whether the commit had
   * been sent.
   */
  private async attempt<T>(client: pg.PoolClient, hot: boolean, work: (tx: SqlExecutor) => Promise<T>, begin: string | null = 'BEGIN'): Promise<T> {
    const lone = begin === null;
    // A checked-out connection that breaks between statements must not crash the process:
    // the next statement on it fails instead.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    let committing = lone;
    const query: QueryFn = (q) => {
      this.stats.queries++;
      return client.query<Record<string, unknown>>(q);
    };
    try {
      const tx = new PgExecutor(query, this.names, {
        ...(this.executeByName ? { prepared: this.preparedOn(client) } : {}),
        ...(begin === null ? {} : { staged: new StagedWrites({ keepHeads: true }), begin }),
      });
      const value = await work(tx);
      if (!lone) {
        await tx.staged?.flush(tx);
        committing = true;
        if (tx.started) await query('COMMIT');
      }
      client.off('error', onError);
      client.release();
      // The heads it moved are where it left them, as far as this process knows; a
      // hot-path unit's (a claim's, a turn's) next commit may build on them (CommitHints).
      if (tx.staged?.heads) {
        if (hot) this.hints.learnHeads(tx.staged.heads);
        else this.hints.refreshHeads(tx.staged.heads);
      }
      this.stats.transactions++;
      this.events.emit('committed');
      return value;
    } catch (err) {
      // Not found by its name: a pooler renames them, so no more EXECUTE by name (the caller prepares again: mustPrepareAgain).
      if (isUnknownStatement(err) && this.executeByName) {
        this.executeByName = false;
        this.log.warn('PostgreSQL: a prepared statement was not found by its name (a pooler that renames them?); each BEGIN now goes in a round trip of its own');
      }
      const lostConnection = broken !== undefined || isConnectionError(err);
      let destroy = lostConnection;
      if (!lostConnection && !lone) {
        try {
          await client.query('ROLLBACK');
        } catch {
          destroy = true;
        }
      }
      client.off('error', onError);
      // A broken connection is destroyed, not returned to the pool.
      client.release(destroy ? (broken ?? new Error('connection unusable after a failed transaction')) : undefined);
      throw new AttemptFailed(err, lostConnection, committing);
    }
  }

  async commitStatement<T>(build: () => { sql: string; params: readonly SqlParam[] }): Promise<T[] | null> {
    if (this.closed) throw new StoreUnavailableError('PostgreSQL: the store is closed');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch {
      // Nothing was sent: the caller's transaction waits for the database as transactions do.
      return null;
    }
    try {
      return await this.attempt(
        client,
        true,
        (tx) => {
          const { sql, params } = build();
          return tx.all<T>(sql, params);
        },
        null,
      );
    } catch (failed) {
      const { err, lostConnection } = failed as AttemptFailed;
      if (lostConnection) throw new StoreUnavailableError(`PostgreSQL: the connection broke during a commit; it may or may not have committed (${errorText(err)})`, err);
      if (isStoreFault(err)) throw new StoreUnavailableError(`PostgreSQL: ${errorText(err)}`, err);
      if (mustPrepareAgain(err)) this.names.reset();
      return null;
    }
  }

  private async runAlone<T>(fn: (tx: SqlExecutor) => Promise<T>, hot: boolean, lossy = false): Promise<T> {
    let conflicts = 0;
    let connectionFailures = 0;
    for (;;) {
      if (this.closed) throw new StoreUnavailableError('PostgreSQL: the store is closed');
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        const wait = this.backoff[connectionFailures++];
        if (wait === undefined || this.closed || !isConnectionError(err)) throw new StoreUnavailableError(`PostgreSQL: cannot reach the database (${errorText(err)})`, err);
        this.stats.retries++;
        await sleep(wait);
        continue;
      }
      try {
        return await this.attempt(client, hot, fn, lossy ? LOSSY_BEGIN : 'BEGIN');
      } catch (failed) {
        const { err, lostConnection, committing } = failed as AttemptFailed;
        if (committing && lostConnection) {
          throw new StoreUnavailableError(`PostgreSQL: the connection broke during COMMIT; the transaction may or may not have committed (${errorText(err)})`, err);
        }
        if (isTransientConflict(err) && conflicts < MAX_CONFLICT_RETRIES) {
          conflicts++;
          this.stats.retries++;
          await sleep(Math.random() * 5 * conflicts);
          continue;
        }
        if (mustPrepareAgain(err) && conflicts < MAX_CONFLICT_RETRIES) {
          conflicts++;
          this.names.reset();
          continue;
        }
        if (lostConnection) {
          const wait = this.backoff[connectionFailures++];
          if (wait !== undefined && !this.closed) {
            this.stats.retries++;
            await sleep(wait);
            continue;
          }
          throw new StoreUnavailableError(`PostgreSQL: lost the connection to the database (${errorText(err)})`, err);
        }
        if (isStoreFault(err)) throw new StoreUnavailableError(`PostgreSQL: ${errorText(err)}`, err);
        throw err;
      }
    }
  }

  /**
   * Holds a session advisory lock (per schema) on a dedicated connection while `fn`
   * runs, so two processes running `spine migrate` at once apply each migration once.
   * Creates the schema first if the URL names one that does not exist yet.
   */
  async withMigrationLock<T>(fn: () => Promise<T>): Promise<T> {
    const client = new pg.Client(this.clientConfig);
    client.on('error', (err) => this.log.warn('PostgreSQL migration lock connection lost', { error: err.message }));
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => {});
      throw new StoreUnavailableError(`PostgreSQL: cannot reach the database (${errorText(err)})`, err);
    }
    const key = this.schema ?? 'public';
    try {
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, key]);
      // Only when missing: CREATE SCHEMA needs the CREATE privilege on the database even with IF NOT EXISTS.
      if (this.schema && (await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema])).rowCount === 0) {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
      }
      const result = await fn();
      // Statements prepared before the migration may describe old columns.
      this.names.reset();
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, key]).catch(() => {});
      await client.end().catch(() => {});
    }
  }

  signalTasksReady(): void {
    // This process's workers hear it at once; other processes through NOTIFY.
    this.events.emit('ready');
    if (this.closed) return;
    this.notifyPending = true;
    this.notifying ??= this.flushNotifies();
  }

  /** At most one NOTIFY in flight; signals meanwhile collapse into one more. */
  private async flushNotifies(): Promise<void> {
    try {
      while (this.notifyPending && !this.closed) {
        this.notifyPending = false;
        try {
          this.stats.queries++;
          this.stats.notifies++;
          await this.pool.query('SELECT pg_notify($1, $2)', [this.channel, this.instanceId]);
        } catch (err) {
          // Other processes still find the work by their fallback poll.
          this.log.warn('PostgreSQL NOTIFY failed', { error: errorText(err) });
        }
      }
    } finally {
      this.notifying = null;
    }
  }

  onTasksReady(listener: () => void): () => void {
    this.events.on('ready', listener);
    this.listener.start();
    return () => this.events.off('ready', listener);
  }

  onCommitted(listener: () => void): () => void {
    this.events.on('committed', listener);
    return () => this.events.off('committed', listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let a pending NOTIFY go out: another process may be waiting for it.
    await this.notifying;
    this.closed = true;
    await this.listener.stop();
    await this.liveness.close();
    await this.pool.end();
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || (err as { code?: string }).code || err.name;
  return String(err);
}
