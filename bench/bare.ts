/**
 * The limit Spine is measured against in bench/peers.ts: a bare task table, with no
 * turns, audit, leases or policy, on node:sqlite and on PostgreSQL, driven through
 * the same three workloads as Spine's W1–W3. What a hand-written queue does, the
 * way the fastest peers do it: PostgreSQL claims with one `FOR UPDATE SKIP LOCKED`
 * statement and completes with one more; SQLite claims and completes in one short
 * `BEGIN IMMEDIATE` transaction each. A waiting worker wakes on an in-process signal
 * (what LISTEN/NOTIFY or a local queue gives the peers), never on a poll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Durability } from '../src/store/store.ts';
import { parsePgUrl } from '../src/store/postgres/pg-config.ts';

interface Claimed {
  id: number;
  parent: number | null;
  step: number;
  input: string;
}

/** One task table; every method is one transaction (one round trip on PostgreSQL). */
export interface BareQueue {
  readonly name: string;
  /** Inserts queued tasks in one transaction, returns their ids. */
  insert(inputs: readonly string[], parent?: number): Promise<number[]>;
  claim(): Promise<Claimed | null>;
  /** One durable step of a running task (W1's turn). */
  step(id: number): Promise<void>;
  /** Marks a task succeeded; for a child, counts it off its parent and queues the parent after the last one. */
  complete(id: number, parent: number | null): Promise<void>;
  /** Inserts `n` children under a running task and parks it until they are done. */
  fanOut(id: number, n: number): Promise<void>;
  /** Round trips sent so far (PostgreSQL), statements run (SQLite). */
  roundTrips(): number | null;
  close(): Promise<void>;
}

export function bareSqlite(root: string, durability: Durability): BareQueue {
  const dir = mkdtempSync(join(root, `bare-${durability}-`));
  const db = new DatabaseSync(join(dir, 'bare.db'));
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${durability === 'strict' ? 'FULL' : 'NORMAL'}; PRAGMA busy_timeout = 5000;
    CREATE TABLE tasks (id INTEGER PRIMARY KEY, parent INTEGER, state TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
      pending INTEGER NOT NULL DEFAULT 0, input TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE INDEX tasks_queued ON tasks (id) WHERE state = 'queued';`);
  // Statements run, to set beside Spine's statements per task (SQLite has no round trips).
  let statements = 0;
  const prepare = (sql: string) => {
    const stmt = db.prepare(sql);
    return {
      get: (...p: Array<string | number | null>) => (statements++, stmt.get(...p)),
      run: (...p: Array<string | number | null>) => (statements++, stmt.run(...p)),
    };
  };
  const exec = (sql: string) => (statements++, db.exec(sql));
  const ins = prepare(`INSERT INTO tasks (parent, state, input, updated_at) VALUES (?, 'queued', ?, ?) RETURNING id`);
  const claim = prepare(
    `UPDATE tasks SET state = 'running', updated_at = ? WHERE id = (SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1) RETURNING id, parent, step, input`,
  );
  const step = prepare(`UPDATE tasks SET step = step + 1, updated_at = ? WHERE id = ?`);
  const done = prepare(`UPDATE tasks SET state = 'succeeded', updated_at = ? WHERE id = ?`);
  const countOff = prepare(`UPDATE tasks SET pending = pending - 1, state = CASE WHEN pending = 1 THEN 'queued' ELSE state END, updated_at = ? WHERE id = ?`);
  const park = prepare(`UPDATE tasks SET state = 'waiting', step = step + 1, pending = ?, updated_at = ? WHERE id = ?`);
  // Group commit, as Spine's SQLite backend does it: the transactions asked for in one
  // turn of the event loop share one BEGIN IMMEDIATE … COMMIT (and one fsync).
  let pending: Array<{ fn: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  const flush = () => {
    const units = pending;
    pending = [];
    const results: unknown[] = [];
    exec('BEGIN IMMEDIATE');
    try {
      for (const u of units) results.push(u.fn());
      exec('COMMIT');
    } catch (err) {
      exec('ROLLBACK');
      for (const u of units) u.reject(err);
      return;
    }
    units.forEach((u, i) => u.resolve(results[i]));
  };
  const tx = <T>(fn: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (pending.push({ fn, resolve: resolve as (v: unknown) => void, reject }) === 1) setImmediate(flush);
    });
  const insertAll = (inputs: readonly string[], parent: number | null) => inputs.map((i) => Number((ins.get(parent, i, Date.now()) as { id: number }).id));
  return {
    name: 'bare node:sqlite',
    insert: async (inputs, parent) => tx(() => insertAll(inputs, parent ?? null)),
    claim: async () => {
      const row = await tx(() => claim.get(Date.now()) as Claimed | undefined);
      return row ? { id: Number(row.id), parent: row.parent === null ? null : Number(row.parent), step: Number(row.step), input: row.input } : null;
    },
    step: async (id) => void (await tx(() => step.run(Date.now(), id))),
    complete: async (id, parent) =>
      tx(() => {
        done.run(Date.now(), id);
        if (parent !== null) countOff.run(Date.now(), parent);
      }),
    fanOut: async (id, n) => {
      await tx(() => {
        insertAll(Array.from({ length: n }, () => 'leaf'), id);
        park.run(n, Date.now(), id);
      });
    },
    roundTrips: () => statements,
    close: async () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bare table in a fresh schema of the database at `url`, with a pool of `poolSize` connections. */
export async function barePostgres(url: string, durability: Durability, poolSize = 8): Promise<BareQueue> {
  const schema = `bare_${randomBytes(4).toString('hex')}`;
  const { connectionString } = parsePgUrl(url);
  const options = [`-c search_path=${schema}`, durability === 'fast' ? '-c synchronous_commit=off' : ''].join(' ');
  const admin = new pg.Client({ connectionString });
  admin.on('error', () => {});
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.tasks (id bigserial PRIMARY KEY, parent bigint, state text NOT NULL, step int NOT NULL DEFAULT 0,
    pending int NOT NULL DEFAULT 0, input text NOT NULL, updated_at bigint NOT NULL);
    CREATE INDEX tasks_queued ON ${schema}.tasks (id) WHERE state = 'queued'`);
  const pool = new pg.Pool({ connectionString, options, max: poolSize });
  pool.on('error', () => {});
  let trips = 0;
  const q = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> => {
    trips++;
    return (await pool.query<R>({ name, text, values })).rows;
  };
  const toClaimed = (r: { id: string; parent: string | null; step: number; input: string }): Claimed => ({
    id: Number(r.id),
    parent: r.parent === null ? null : Number(r.parent),
    step: r.step,
    input: r.input,
  });
  return {
    name: 'bare PostgreSQL',
    insert: async (inputs, parent) =>
      (
        await q<{ id: string }>(
          'bare_insert',
          `INSERT INTO tasks (parent, state, input, updated_at) SELECT $1, 'queued', i, $3 FROM unnest($2::text[]) AS i RETURNING id`,
          [parent ?? null, inputs, Date.now()],
        )
      ).map((r) => Number(r.id)),
    claim: async () => {
      const [row] = await q<{ id: string; parent: string | null; step: number; input: string }>(
        'bare_claim',
        `UPDATE tasks SET state = 'running', updated_at = $1 WHERE id = (SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, parent, step, input`,
        [Date.now()],
      );
      return row ? toClaimed(row) : null;
    },
    step: async (id) => void (await q('bare_step', `UPDATE tasks SET step = step + 1, updated_at = $1 WHERE id = $2`, [Date.now(), id])),
    complete: async (id, parent) => {
      if (parent === null) await q('bare_done', `UPDATE tasks SET state = 'succeeded', updated_at = $1 WHERE id = $2`, [Date.now(), id]);
      // One statement: the child done and counted off its parent, atomically.
      else
        await q(
          'bare_done_child',
          `WITH d AS (UPDATE tasks SET state = 'succeeded', updated_at = $1 WHERE id = $2 RETURNING parent)
           UPDATE tasks p SET pending = p.pending - 1, state = CASE WHEN p.pending = 1 THEN 'queued' ELSE p.state END, updated_at = $1 FROM d WHERE p.id = d.parent`,
          [Date.now(), id],
        );
    },
    fanOut: async (id, n) =>
      void (await q(
        'bare_fan_out',
        `WITH c AS (INSERT INTO tasks (parent, state, input, updated_at) SELECT $1, 'queued', 'leaf', $3 FROM generate_series(1, $2))
         UPDATE tasks SET state = 'waiting', step = step + 1, pending = $2, updated_at = $3 WHERE id = $1`,
        [id, n, Date.now()],
      )),
    roundTrips: () => trips,
    close: async () => {
      await pool.end();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

/**
 * `concurrency` workers claiming from a bare queue until stopped. A worker that finds
 * nothing waits for `wake()` (called after an insert or when a parent is queued again).
 */
export function bareWorkers(queue: BareQueue, concurrency: number, handle: (task: Claimed) => Promise<void>) {
  let stopped = false;
  let waiters: Array<() => void> = [];
  // Bumped by every wake: a worker whose empty claim raced a wake claims again instead of sleeping.
  let generation = 0;
  const wake = () => {
    generation++;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const loop = async () => {
    while (!stopped) {
      const seen = generation;
      const task = await queue.claim();
      if (!task) {
        if (seen === generation && !stopped) await new Promise<void>((r) => waiters.push(r));
        continue;
      }
      await handle(task);
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    wake,
    stop: async () => {
      stopped = true;
      wake();
      await Promise.all(loops);
    },
  };
}
