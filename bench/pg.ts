/**
 * PostgreSQL scale-out bench: W2 (no-op tasks) processed by 1, 2 and 4 worker
 * PROCESSES on one database, and the round trips 4 idle workers make.
 *
 *   node bench/pg.ts [--db postgres://…] [--tasks 10000] [--workers 1,2,4] [--concurrency 16]
 *                    [--pool 8] [--idle-seconds 10] [--quick] [--activity] [--json]
 *
 * --quick: 2,000 tasks and 3 idle seconds, unless --tasks / --idle-seconds say otherwise
 * (`npm run bench -- --db postgres://… --quick` passes it here).
 *
 * --activity: while the workers process, samples pg_stat_activity every ~2 ms and
 * prints what the workers' server connections were doing: running a statement, or
 * `idle in transaction` (the server waiting for the worker's next statement), and
 * after which statement. The sampling costs the server CPU: read the rates of such a
 * run as lower than a plain run's.
 *
 * Each worker count gets a fresh schema. The tasks are queued first (submit phase),
 * then the worker processes, already connected and idle, are told to start; the
 * processing rate is tasks / (last task finished − start). CPU is read from /proc
 * for the workers and for the PostgreSQL server processes, to show whether the
 * database or the workers are the limit. Measurement only: targets are reported,
 * never fatal.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import { silentLogger } from '../src/core/log.ts';
import { createRegistry } from '../src/engine/registry.ts';
import { parsePgUrl } from '../src/store/postgres/pg-config.ts';
import { Worker } from '../src/engine/worker.ts';
import { PgBackend, type PgStats } from '../src/store/postgres/pg-backend.ts';
import { SqlStore } from '../src/store/sql/sql-store.ts';
import { benchArgs, durabilityOption, wholeOption } from './harness.ts';

const args = benchArgs('pg', {
  db: { type: 'string', default: process.env.SPINE_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  tasks: { type: 'string' },
  workers: { type: 'string', default: '1,2,4' },
  concurrency: { type: 'string', default: '16' },
  pool: { type: 'string', default: '8' },
  durability: { type: 'string', default: 'strict' },
  'poll-ms': { type: 'string' },
  'idle-seconds': { type: 'string' },
  quick: { type: 'boolean', default: false },
  activity: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  // internal: this process is one worker
  child: { type: 'string' },
});

const durability = durabilityOption('pg', args.durability);
const concurrency = wholeOption('pg', 'concurrency', args.concurrency);
const pool = wholeOption('pg', 'pool', args.pool);
const pollMs = wholeOption('pg', 'poll-ms', args['poll-ms']);
const tasksOption = wholeOption('pg', 'tasks', args.tasks);
const idleSeconds = wholeOption('pg', 'idle-seconds', args['idle-seconds']);
const workerCounts = args.workers.split(',').map((n) => wholeOption('pg', 'workers', n.trim()));

const CLK_TCK = 100;
const log = (msg: string) => process.stderr.write(`bench:pg ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function urlFor(schema: string, pool: number): string {
  const u = new URL(args.db);
  u.searchParams.set('schema', schema);
  u.searchParams.set('pool', String(pool));
  return u.toString();
}

// ── child: one worker process ──────────────────────────────────────────────────

type ToChild = { go: true } | { stop: true } | { stats: true };
type FromChild = { ready: true } | { stats: PgStats; cpuMs: number } | { stopped: true; stats: PgStats; cpuMs: number };

async function child(url: string): Promise<void> {
  const backend = new PgBackend({ url, durability });
  const store = new SqlStore(backend);
  const registry = createRegistry({ agents: { noop: { agent: new FunctionAgent(() => ({ output: null })), timeoutMs: 30_000 } } });
  const options = {
    concurrency,
    leaseMs: 30_000,
    ...(pollMs !== undefined ? { pollMs } : {}),
  };
  let worker: Worker | null = null;
  const send = (m: FromChild) => process.send!(m);
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1_000;
  };
  process.on('message', (m: ToChild) => {
    void (async () => {
      if ('go' in m) {
        worker = new Worker({ store, registry, options, log: silentLogger });
        await worker.start();
      } else if ('stats' in m) {
        send({ stats: { ...backend.stats }, cpuMs: cpuMs() });
      } else if ('stop' in m) {
        await worker?.stop();
        const stats = { ...backend.stats };
        await store.close();
        send({ stopped: true, stats, cpuMs: cpuMs() });
        process.exit(0);
      }
    })();
  });
  // Connect (and prepare) before the clock starts.
  await store.schemaStatus();
  send({ ready: true });
}

// ── parent ─────────────────────────────────────────────────────────────────────

interface Child {
  proc: ChildProcess;
  next<T extends FromChild>(pred: (m: FromChild) => m is T): Promise<T>;
}

function spawnWorker(url: string): Child {
  const proc = fork(fileURLToPath(import.meta.url), [`--child=${url}`, `--concurrency=${concurrency}`, `--durability=${durability}`, ...(pollMs !== undefined ? [`--poll-ms=${pollMs}`] : [])], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting: Array<{ pred: (m: FromChild) => boolean; resolve: (m: FromChild) => void }> = [];
  proc.on('message', (m: FromChild) => {
    const i = waiting.findIndex((w) => w.pred(m));
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(m);
  });
  return {
    proc,
    next: <T extends FromChild>(pred: (m: FromChild) => m is T) =>
      new Promise<T>((resolve) => waiting.push({ pred, resolve: resolve as (m: FromChild) => void })),
  };
}

/** CPU ms used so far by every PostgreSQL server process (all backends, checkpointer, WAL writer …). */
function postgresCpuMs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = /\(([^)]*)\)/.exec(stat)?.[1] ?? '';
      if (!name.startsWith('postgres')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process went away
    }
  }
  return (ticks * 1_000) / CLK_TCK;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>, schema?: string): Promise<T> {
  const c = new pg.Client({ connectionString: parsePgUrl(args.db).connectionString, ...(schema ? { options: `-c search_path="${schema}"` } : {}) });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

interface W2Row {
  workers: number;
  tasks: number;
  submitPerSec: number;
  processMs: number;
  tasksPerSec: number;
  workerCpuPct: number;
  workerCpuUsPerTask: number;
  postgresCpuPct: number;
  postgresCpuUsPerTask: number;
  roundTripsPerTask: number;
  /** --activity: samples of the workers' server connections, by state and statement, most first. */
  activity?: Array<{ state: string; statement: string; samples: number }>;
}

/**
 * Samples, until `stop` is aborted, every connection to the database but the
 * sampler's own that is not idle: its state (with what it waits on, if anything) and
 * the first words of its statement (the last one, when idle in a transaction).
 * Resolves to the samples by state and statement, most first.
 */
async function sampleActivity(stop: AbortSignal): Promise<NonNullable<W2Row['activity']>> {
  const seen = new Map<string, { state: string; statement: string; samples: number }>();
  await admin(async (c) => {
    while (!stop.aborted) {
      const { rows } = await c.query<{ state: string; statement: string }>(
        `SELECT state || COALESCE(' (' || wait_event_type || ': ' || wait_event || ')', '') AS state,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS statement
         FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database() AND state <> 'idle'`,
      );
      for (const r of rows) {
        const key = `${r.state}\t${r.statement}`;
        const had = seen.get(key);
        if (had) had.samples++;
        else seen.set(key, { ...r, samples: 1 });
      }
      await sleep(2);
    }
  });
  return [...seen.values()].sort((a, b) => b.samples - a.samples);
}

async function w2(workers: number, tasks: number): Promise<W2Row> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const url = urlFor(schema, pool);
  const backend = new PgBackend({ url, poolSize: 16, durability });
  const store = new SqlStore(backend);
  try {
    await store.migrate();
    log(`W2 ×${workers}: queueing ${tasks} no-op runs in ${schema}`);
    const t0 = performance.now();
    for (let i = 0; i < tasks; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, tasks - i) }, () => store.runs.create({ agent: 'noop', input: null, maxAttempts: 3 }, Date.now())));
    }
    const submitMs = performance.now() - t0;
    await admin((c) => c.query('ANALYZE'), schema);

    const children = Array.from({ length: workers }, () => spawnWorker(url));
    await Promise.all(children.map((c) => c.next((m): m is { ready: true } => 'ready' in m)));
    const pg0 = postgresCpuMs();
    const statsBefore = await Promise.all(children.map((c) => (c.proc.send({ stats: true }), c.next((m): m is { stats: PgStats; cpuMs: number } => 'stats' in m && !('stopped' in m)))));
    log(`W2 ×${workers}: go`);
    const sampling = new AbortController();
    const activity = args.activity ? sampleActivity(sampling.signal) : null;
    const start = Date.now();
    for (const c of children) c.proc.send({ go: true } satisfies ToChild);
    // The end is the last run's own finished_at (the workers' clock is this machine's):
    // the poll can be rare and cheap, and its own cost stays out of the server's CPU.
    let lastDone = start;
    for (;;) {
      await sleep(100);
      const row = await backend.read.get<{ n: number }>(`SELECT COUNT(*) AS n FROM runs WHERE state = 'succeeded'`);
      if (row && row.n >= tasks) {
        const last = await backend.read.get<{ last: number }>(`SELECT MAX(finished_at) AS last FROM runs`);
        lastDone = last?.last ?? Date.now();
        break;
      }
    }
    const pgMs = postgresCpuMs() - pg0;
    sampling.abort();
    const sampled = activity ? await activity : null;
    const processMs = lastDone - start;
    const stopped = await Promise.all(children.map((c) => (c.proc.send({ stop: true }), c.next((m): m is { stopped: true; stats: PgStats; cpuMs: number } => 'stopped' in m))));
    const workerCpuMs = stopped.reduce((s, m, i) => s + m.cpuMs - statsBefore[i]!.cpuMs, 0);
    const roundTrips = stopped.reduce((s, m, i) => s + m.stats.queries - statsBefore[i]!.stats.queries, 0);
    return {
      workers,
      tasks,
      submitPerSec: Math.round((tasks / submitMs) * 1_000),
      processMs: Math.round(processMs),
      tasksPerSec: Math.round((tasks / processMs) * 1_000),
      workerCpuPct: Math.round((workerCpuMs / processMs) * 100),
      workerCpuUsPerTask: Math.round((workerCpuMs * 1_000) / tasks),
      postgresCpuPct: Math.round((pgMs / processMs) * 100),
      postgresCpuUsPerTask: Math.round((pgMs * 1_000) / tasks),
      roundTripsPerTask: Math.round((roundTrips / tasks) * 10) / 10,
      ...(sampled ? { activity: sampled } : {}),
    };
  } finally {
    await store.close();
    await admin((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  }
}

async function idle(workers: number, seconds: number): Promise<{ workers: number; seconds: number; roundTripsPerSec: number; transactionsPerSec: number }> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const url = urlFor(schema, pool);
  const store = new SqlStore(new PgBackend({ url }));
  try {
    await store.migrate();
    const children = Array.from({ length: workers }, () => spawnWorker(url));
    await Promise.all(children.map((c) => c.next((m): m is { ready: true } => 'ready' in m)));
    for (const c of children) c.proc.send({ go: true } satisfies ToChild);
    await sleep(1_000);
    const ask = () => Promise.all(children.map((c) => (c.proc.send({ stats: true }), c.next((m): m is { stats: PgStats; cpuMs: number } => 'stats' in m && !('stopped' in m)))));
    log(`idle: ${workers} workers, measuring ${seconds} s`);
    const before = await ask();
    await sleep(seconds * 1_000);
    const after = await ask();
    const sum = (k: keyof PgStats) => after.reduce((s, m, i) => s + m.stats[k] - before[i]!.stats[k], 0);
    await Promise.all(children.map((c) => (c.proc.send({ stop: true }), c.next((m): m is { stopped: true; stats: PgStats; cpuMs: number } => 'stopped' in m))));
    return { workers, seconds, roundTripsPerSec: Math.round((sum('queries') / seconds) * 10) / 10, transactionsPerSec: Math.round((sum('transactions') / seconds) * 10) / 10 };
  } finally {
    await store.close();
    await admin((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  }
}

async function main(): Promise<void> {
  const tasks = tasksOption ?? (args.quick ? 2_000 : 10_000);
  const rows: W2Row[] = [];
  for (const n of workerCounts) rows.push(await w2(n, tasks));
  const idleResult = await idle(4, idleSeconds ?? (args.quick ? 3 : 10));
  const base = rows.find((r) => r.workers === 1)?.tasksPerSec;
  const result = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?' },
    settings: { concurrency, pool, durability, pollMs: pollMs ?? 'default' },
    w2: rows.map((r) => ({ ...r, scaling: base ? Math.round((r.tasksPerSec / base) * 100) / 100 : null })),
    idle: idleResult,
    targets: {
      'W2 with 4 workers ≥ 4000 tasks/s': rows.find((r) => r.workers === 4)?.tasksPerSec ?? null,
      '4 idle workers < 5 queries/s': idleResult.roundTripsPerSec,
    },
  };
  if (args.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`PostgreSQL W2: ${tasks} no-op tasks, worker concurrency ${concurrency}, pool ${pool}, durability ${durability}; ${result.machine.cpus} CPUs (${result.machine.model})`);
  console.log('workers  tasks/s  scaling  worker CPU  µs/task  postgres CPU  µs/task  round trips/task');
  for (const r of result.w2) {
    console.log(
      `${String(r.workers).padStart(7)}  ${String(r.tasksPerSec).padStart(7)}  ${String(r.scaling).padStart(7)}  ${`${r.workerCpuPct}%`.padStart(10)}  ${String(r.workerCpuUsPerTask).padStart(7)}  ${`${r.postgresCpuPct}%`.padStart(12)}  ${String(r.postgresCpuUsPerTask).padStart(7)}  ${String(r.roundTripsPerTask).padStart(16)}`,
    );
  }
  console.log(`idle: ${idleResult.workers} workers make ${idleResult.roundTripsPerSec} round trips/s (${idleResult.transactionsPerSec} transactions/s) together`);
  for (const r of result.w2) {
    if (!r.activity) continue;
    const total = r.activity.reduce((sum, a) => sum + a.samples, 0);
    console.log(`\n${r.workers} worker(s): the workers' server connections while processing (${total} samples of those not idle)`);
    for (const a of r.activity.slice(0, 12)) console.log(`${String(a.samples).padStart(7)}  ${a.state.padEnd(44)}  ${a.statement}`);
  }
}

if (args.child) await child(args.child);
else await main();
