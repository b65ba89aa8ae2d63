import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import type { TestContext } from 'node:test';
import { ManualClock } from '../src/core/clock.ts';
import type { Agent, AgentFunction, ToolFunction } from '../src/core/agent.ts';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import type { ContractRegistry } from '../src/contracts/registry.ts';
import type { Json, Run } from '../src/core/types.ts';
import { DEFAULT_RETRY, type EngineLimits, type Registry, type RetryPolicy, type WorkerOptions } from '../src/engine/options.ts';
import { createRegistry, type AgentInit, type ToolInit } from '../src/engine/registry.ts';
import type { CompiledPolicy } from '../src/policy/rules.ts';
import { waitForRun } from '../src/engine/runs.ts';
import { submitRun } from './fixtures/submit-run.ts';
import { Worker } from '../src/engine/worker.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { PG_TYPES } from '../src/store/postgres/pg-backend.ts';
import { toPgPlaceholders } from '../src/store/postgres/placeholders.ts';
import type { AuditEvent, Store } from '../src/store/store.ts';

/** Which backend the store and engine suites run on: `SPINE_TEST_DB=postgres` picks PostgreSQL. */
export const TEST_DB: 'sqlite' | 'postgres' = process.env.SPINE_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';
/** The PostgreSQL server the suites use (each store gets its own schema in it). */
export const PG_TEST_URL = process.env.SPINE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** How `forge` reaches the database behind a store made by tempStore. */
type ForgeTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; schema: string };
const forgeTargets = new WeakMap<Store, ForgeTarget>();

/**
 * A fresh store; `cleanup` closes and deletes it. SQLite: a file in a temp folder.
 * With SPINE_TEST_DB=postgres: a new schema `t_<random>` in the test database (the
 * temp folder is still made, for files a test writes), dropped by `cleanup`.
 */
export async function tempStore(durability: 'strict' | 'fast' = 'fast'): Promise<{ store: Store; dir: string; url: string; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'spine-test-'));
  if (TEST_DB === 'postgres') {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const url = `${PG_TEST_URL}${PG_TEST_URL.includes('?') ? '&' : '?'}schema=${schema}&pool=4`;
    const store = openStore({ url, durability });
    forgeTargets.set(store, { kind: 'postgres', url: PG_TEST_URL, schema });
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`SPINE_TEST_DB=postgres: cannot set up a schema on ${PG_TEST_URL}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return {
      store,
      dir,
      url,
      cleanup: async () => {
        await store.close();
        await pgAdmin(PG_TEST_URL, (c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const path = join(dir, 'spine.db');
  const url = `sqlite:${path}`;
  const store = openStore({ url, durability });
  forgeTargets.set(store, { kind: 'sqlite', path });
  await store.migrate();
  return {
    store,
    dir,
    url,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` on a short-lived PostgreSQL connection (search_path set to `schema` when given). */
export async function pgAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>, schema?: string): Promise<T> {
  const client = new pg.Client({ connectionString: url, types: PG_TYPES, ...(schema ? { options: `-c search_path="${schema}"` } : {}) });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Runs raw SQL (with `?` placeholders) against the database behind a tempStore store,
 * on a separate connection as another process would: to forge state a test cannot
 * reach through the Store port (a lease expired long ago, a reservation's holder
 * gone) or to read a column the port does not show. Returns the rows (RETURNING or
 * SELECT) and the number of rows changed.
 */
export async function forge<T = Record<string, unknown>>(store: Store, sql: string, params: ReadonlyArray<string | number | null> = []): Promise<{ rows: T[]; changes: number }> {
  const target = forgeTargets.get(store);
  if (!target) throw new Error('forge() needs a store made by tempStore()');
  if (target.kind === 'sqlite') {
    const db = new DatabaseSync(target.path);
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      const stmt = db.prepare(sql);
      if (stmt.columns().length > 0) {
        const rows = stmt.all(...params) as T[];
        return { rows: rows.map((r) => ({ ...r })), changes: rows.length };
      }
      return { rows: [], changes: Number(stmt.run(...params).changes) };
    } finally {
      db.close();
    }
  }
  return pgAdmin(
    target.url,
    async (c) => {
      const res = await c.query(toPgPlaceholders(sql), [...params]);
      return { rows: res.rows as T[], changes: res.rowCount ?? 0 };
    },
    target.schema,
  );
}

export interface AgentDef extends Omit<AgentInit, 'agent' | 'retry'> {
  fn?: AgentFunction;
  /** An agent adapter other than a function (e.g. a CommandAgent). */
  agent?: Agent;
  retry?: Partial<RetryPolicy>;
}

/**
 * A registry from in-process functions, with fast retries by default. Unless an
 * agent says otherwise, it is granted every tool: these suites test the engine; the
 * boundary's own suite tests grants.
 */
export function registry(
  agents: Record<string, AgentFunction | AgentDef>,
  tools: Record<string, ToolFunction | ToolInit> = {},
  opts: { limits?: Partial<EngineLimits>; retry?: Partial<RetryPolicy>; contracts?: ContractRegistry; policy?: CompiledPolicy } = {},
): Registry {
  const retry: RetryPolicy = { ...DEFAULT_RETRY, initialMs: 5, maxMs: 20, ...opts.retry };
  const inits: Record<string, AgentInit> = {};
  for (const [name, def] of Object.entries(agents)) {
    const d: AgentDef = typeof def === 'function' ? { fn: def } : def;
    const agent = d.agent ?? new FunctionAgent(d.fn ?? (() => ({ output: null })));
    inits[name] = { timeoutMs: 5_000, grants: { tools: { allow: ['*'], deny: [] }, handoffs: null }, ...d, agent, retry: { ...retry, ...d.retry } };
  }
  const toolInits = Object.fromEntries(Object.entries(tools).map(([name, t]) => [name, typeof t === 'function' ? { run: t } : t]));
  return createRegistry({
    agents: inits,
    tools: toolInits,
    retry,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.contracts ? { contracts: opts.contracts } : {}),
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
}

export const FAST_WORKER: Partial<WorkerOptions> = { concurrency: 8, leaseMs: 2_000, heartbeatMs: 500, pollMs: 20, drainMs: 1_000 };

/**
 * A temp store and a worker on a ManualClock, not started: the test drives it with
 * runOnce, and leases, backoffs, buckets and deadlines move by moving the clock, never
 * by waiting. Both are stopped and deleted when the test ends.
 */
export async function clocked(t: TestContext, reg: Registry, clock = new ManualClock(Date.now())): Promise<{ store: Store; worker: Worker; clock: ManualClock }> {
  const { store, cleanup } = await tempStore();
  const worker = new Worker({ store, registry: reg, clock, options: FAST_WORKER });
  t.after(async () => {
    await worker.stop();
    await cleanup();
  });
  return { store, worker, clock };
}

/** Starts a worker; returns it with a stop function. */
export async function startWorker(store: Store, reg: Registry, options: Partial<WorkerOptions> = {}): Promise<Worker> {
  const w = new Worker({ store, registry: reg, options: { ...FAST_WORKER, ...options } });
  await w.start();
  return w;
}

export function finished(store: Store, runId: string, timeoutMs = 30_000): Promise<Run> {
  return waitForRun(store, runId, { pollMs: 10, timeoutMs });
}

// ── added for the engine, recovery and command-agent suites ─────────────────────

/** A temp store with a started worker; both are stopped and deleted when the test ends. */
export async function harness(t: TestContext, reg: Registry, options: Partial<WorkerOptions> = {}): Promise<{ store: Store; worker: Worker; dir: string }> {
  const { store, dir, cleanup } = await tempStore();
  let worker: Worker | null = null;
  t.after(async () => {
    await worker?.stop();
    await cleanup();
  });
  worker = await startWorker(store, reg, options);
  return { store, worker, dir };
}

/** Submits a run through the same path the CLI and gateway use. */
export async function submit(store: Store, reg: Registry, agent: string, input: Json = null): Promise<Run> {
  const { run } = await submitRun(store, reg, { agent, input, actor: 'test' }, Date.now());
  return run;
}

/** Every audit event of a run, oldest first. */
export function auditOf(store: Store, runId: string): Promise<AuditEvent[]> {
  return store.audit.list({ runId, limit: 10_000 });
}

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. For states reached in another task, not for timing. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A promise with its resolve function exposed, to hold an agent inside its turn until the test lets go. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}
