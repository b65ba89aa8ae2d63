/**
 * Bench plumbing: temp stores, a registry of in-process function agents, a worker
 * with the bench's options, and a store wrapper that reports when a task's final
 * commit is durable (so the bench needs no polling to see a run finish).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { AgentFunction } from '../src/core/agent.ts';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import { silentLogger } from '../src/core/log.ts';
import type { Registry, WorkerOptions } from '../src/engine/options.ts';
import { createRegistry, type AgentInit } from '../src/engine/registry.ts';
import { Worker } from '../src/engine/worker.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { Durability, Store, TurnCommit } from '../src/store/store.ts';
import type { SqlExecutor } from '../src/store/sql/executor.ts';
import { parsePgUrl } from '../src/store/postgres/pg-config.ts';

/**
 * Runs the bench `script` again with the V8 `flags` of the command it measures
 * (bin/heap-flags.js) unless this process has them already, and exits as it did: a
 * bench's figures are those of the process Spine ships.
 */
export function rerunWithFlags(flags: readonly string[], script: string): void {
  if (flags.every((flag) => process.execArgv.includes(flag))) return;
  const again = spawnSync(process.execPath, [...process.execArgv, ...flags, script, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

/** What a bench says of a bad option: `bench:<name>: <message>`, exit code 2. */
export function badOption(name: string, message: string): never {
  process.stderr.write(`bench:${name}: ${message}\n`);
  process.exit(2);
}

/** A bench's options (node:util parseArgs, strict; `--no-x` turns a flag off): an unknown or malformed one is a badOption. */
export function benchArgs<const O extends ParseArgsOptionsConfig>(name: string, options: O): ReturnType<typeof parseArgs<{ options: O; strict: true; allowNegative: true }>>['values'] {
  try {
    return parseArgs({ options, strict: true, allowNegative: true }).values;
  } catch (err) {
    badOption(name, err instanceof Error ? err.message : String(err));
  }
}

/**
 * A whole-number option's value, at least `min` (1 unless told), as Number() reads it
 * (so `1e6` is a million); anything else is a badOption naming the option and what it
 * got. An option not given stays undefined (the caller's default then applies).
 */
export function wholeOption(name: string, option: string, value: string, min?: number): number;
export function wholeOption(name: string, option: string, value: string | undefined, min?: number): number | undefined;
export function wholeOption(name: string, option: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/\S/.test(value) || !Number.isSafeInteger(n) || n < min) {
    badOption(name, `--${option} must be ${min === 1 ? 'a positive whole number' : `a whole number of at least ${min}`} (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** A bench's --durability: strict or fast; anything else is a badOption. */
export function durabilityOption(name: string, value: string): Durability {
  if (value !== 'strict' && value !== 'fast') badOption(name, `--durability must be strict or fast (got ${JSON.stringify(value)})`);
  return value;
}

/** A bench's --db where only PostgreSQL is measured apart (SQLite always is): a postgres://… URL, or not given. */
export function pgUrlOption(name: string, value: string | undefined): string | undefined {
  if (value !== undefined && value !== '' && !value.startsWith('postgres')) badOption(name, `--db must be a postgres://… URL; SQLite is always measured (got ${JSON.stringify(value)})`);
  return value || undefined;
}

/** The worker options every workload uses. */
export const BENCH_WORKER: Partial<WorkerOptions> = { concurrency: 8, pollMs: 50, leaseMs: 30_000 };

export interface BenchStore {
  store: Store;
  /** Runs by state, read through the store (call before closing it): a sanity check after a workload. */
  states(): Promise<Record<string, number>>;
  /** Statements sent to the database so far: round trips on PostgreSQL, statements run on SQLite. */
  roundTrips(): number | null;
  /** Closes the store and deletes its folder (or its PostgreSQL schema). */
  cleanup(): Promise<void>;
}

/**
 * A fresh store for one workload: a temp SQLite file under `root`, or, given a
 * `postgres://` URL, a fresh schema in that database (dropped by cleanup).
 */
export async function openBenchStore(root: string, name: string, durability: Durability, db?: string): Promise<BenchStore> {
  const pgUrl = db?.startsWith('postgres') ? db : null;
  const dir = pgUrl ? null : mkdtempSync(join(root, `${name}-${durability}-`));
  const schema = pgUrl ? `bench_${name.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}` : null;
  const url = pgUrl ? withSchema(pgUrl, schema!) : `sqlite:${join(dir!, 'spine.db')}`;
  const store = openStore({ url, durability });
  await store.migrate();
  const backend = (store as { backend?: { read?: SqlExecutor; stats?: { queries: number } } }).backend;
  let closed = false;
  return {
    store,
    states: async () => {
      const rows = (await backend?.read?.all<{ state: string; n: number | string }>('SELECT state, count(*) AS n FROM runs GROUP BY state')) ?? [];
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    },
    roundTrips: () => backend?.stats?.queries ?? null,
    cleanup: async () => {
      if (!closed) {
        closed = true;
        await store.close();
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (pgUrl && schema) await dropSchema(pgUrl, schema);
    },
  };
}

function withSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('schema', schema);
  return u.toString();
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: parsePgUrl(url).connectionString });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** In-process function agents with the defaults (no tools, handoffs to any agent, no contracts, empty policy). */
export function makeRegistry(agents: Record<string, AgentFunction>): Registry {
  const inits: Record<string, AgentInit> = {};
  for (const [name, fn] of Object.entries(agents)) inits[name] = { agent: new FunctionAgent(fn), timeoutMs: 30_000 };
  return createRegistry({ agents: inits });
}

export async function startWorker(store: Store, registry: Registry): Promise<Worker> {
  const worker = new Worker({ store, registry, options: BENCH_WORKER, log: silentLogger });
  await worker.start();
  return worker;
}

export type FinishKind = 'succeed' | 'dead';

/** Per-method call counts and time (ms, call → promise settled), only when tracing. */
export type StoreTrace = Record<string, { calls: number; totalMs: number; items?: number }>;

export interface TrackedStore {
  /** Hand this to the worker and to submitRun. */
  readonly store: Store;
  /** Called once a task's final commit (succeeded or dead) is durable. */
  onFinish: ((taskId: string, kind: FinishKind, at: number) => void) | null;
  /** Filled when created with trace: true. */
  readonly trace: StoreTrace | null;
}

/**
 * Wraps a store so the bench learns, without polling, when a task's final commit
 * resolved. With trace, also times every store method (small overhead; diagnostics only).
 */
export function trackStore(inner: Store, opts: { trace?: boolean } = {}): TrackedStore {
  const trace: StoreTrace | null = opts.trace ? {} : null;
  const tracked: TrackedStore = { store: inner, onFinish: null, trace };
  const bound = new Map<PropertyKey, unknown>();

  type AnyFn = (...args: never[]) => unknown;

  const commitTurn = async (c: TurnCommit): Promise<void> => {
    await inner.commitTurn(c);
    const kind = c.outcome.kind;
    if ((kind === 'succeed' || kind === 'dead') && tracked.onFinish) tracked.onFinish(c.lease.taskId, kind, performance.now());
  };

  /** Times a store method (call → settled) and, for tasks.claim, counts the tasks claimed. */
  const traced = (name: string, fn: AnyFn): AnyFn => {
    if (!trace || name === 'onTasksReady') return fn;
    return async (...args: never[]): Promise<unknown> => {
      const entry = (trace[name] ??= { calls: 0, totalMs: 0 });
      const t0 = performance.now();
      try {
        const value = await fn(...args);
        if (name === 'tasks.claim' && Array.isArray(value)) entry.items = (entry.items ?? 0) + value.length;
        return value;
      } finally {
        entry.calls++;
        entry.totalMs += performance.now() - t0;
      }
    };
  };

  const proxy = new Proxy(inner, {
    get(target, prop) {
      const cached = bound.get(prop);
      if (cached !== undefined) return cached;
      const value = Reflect.get(target, prop, target) as unknown;
      if (trace && typeof prop === 'string' && typeof value === 'object' && value !== null) {
        // A sub-port (store.tasks, store.runs, …): a plain object of functions, timed as `tasks.claim` etc.
        const sub = Object.fromEntries(Object.entries(value).map(([k, f]) => [k, typeof f === 'function' ? traced(`${prop}.${k}`, f as AnyFn) : f]));
        bound.set(prop, sub);
        return sub;
      }
      if (typeof value !== 'function') return value;
      const fn: AnyFn = prop === 'commitTurn' ? commitTurn : (value as AnyFn).bind(target);
      const wrapped = typeof prop === 'string' ? traced(prop, fn) : fn;
      bound.set(prop, wrapped);
      return wrapped;
    },
  });

  return Object.assign(tracked, { store: proxy });
}

/** Resolves per-task waits; a finish reported before anyone waits is kept until asked for. */
export class FinishWaiters {
  private readonly waiting = new Map<string, (v: { kind: FinishKind; at: number }) => void>();
  private readonly early = new Map<string, { kind: FinishKind; at: number }>();

  finished(taskId: string, kind: FinishKind, at: number): void {
    const w = this.waiting.get(taskId);
    if (w) {
      this.waiting.delete(taskId);
      w({ kind, at });
    } else this.early.set(taskId, { kind, at });
  }

  wait(taskId: string): Promise<{ kind: FinishKind; at: number }> {
    const got = this.early.get(taskId);
    if (got) {
      this.early.delete(taskId);
      return Promise.resolve(got);
    }
    return new Promise((resolve) => this.waiting.set(taskId, resolve));
  }
}

export function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}
