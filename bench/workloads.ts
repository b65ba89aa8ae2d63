/**
 * The three engine workloads. Each opens its own temp store, runs one worker in this
 * process, measures, checks the runs really finished, and deletes the store.
 */
import type { Json, TurnInput } from '../src/core/types.ts';
import { submitRun } from '../test/fixtures/submit-run.ts';
import type { Durability } from '../src/store/store.ts';
import { BENCH_WORKER, FinishWaiters, log, makeRegistry, openBenchStore, startWorker, trackStore, type StoreTrace } from './harness.ts';
import { mb, round, summarize, type Summary } from './stats.ts';

export interface WorkloadCtx {
  root: string;
  durability: Durability;
  quick: boolean;
  trace: boolean;
  /** A `postgres://` URL: run on a fresh schema there instead of a temp SQLite file. */
  db?: string;
  /** W1: skip the batch throughput half (bench/peers.ts measures only the per-turn gap). */
  latencyOnly?: boolean;
  /** W2: the number of tasks (default 10,000, or 1,000 with quick). */
  tasks?: number;
}

const TURNS = 10;

function roundSummary(s: Summary): Summary {
  return { n: s.n, mean: round(s.mean), p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), max: round(s.max) };
}

function roundTrace(trace: StoreTrace | null): StoreTrace | undefined {
  if (!trace) return undefined;
  return Object.fromEntries(
    Object.entries(trace).map(([k, v]) => [k, { ...v, totalMs: round(v.totalMs, 1), meanMs: round(v.totalMs / v.calls) }]),
  );
}

/** A no-op agent that asks for another turn until turn 10, then returns its output. */
function stepAgent(record?: Map<string, number[]>) {
  return (input: TurnInput): unknown => {
    if (record) {
      const at = performance.now();
      let calls = record.get(input.task.id);
      if (!calls) record.set(input.task.id, (calls = []));
      calls.push(at);
    }
    return input.task.turn < TURNS ? { actions: [] } : { output: null };
  };
}

// ── W1: 10 sequential no-op turns per run ──────────────────────────────────────

export interface W1Result {
  durability: Durability;
  /** Gaps between consecutive turn calls of one task, one run at a time. */
  perTurnMs: Summary;
  /** Submit → final commit of a single 10-turn run, one run at a time. */
  runLatencyMs: Summary;
  latencyRuns: number;
  /** A batch of runs submitted together, worker concurrency 8. */
  batchRuns: number;
  batchMs: number;
  runsPerSec: number;
  turnsPerSec: number;
  check: Record<string, number>;
  trace?: StoreTrace;
}

export async function w1(ctx: WorkloadCtx): Promise<W1Result> {
  const warmup = ctx.quick ? 5 : 30;
  const runs = ctx.quick ? 40 : 400;
  const batch = ctx.quick ? 100 : 1000;

  // Latency: one run at a time so no turn queues behind another run's.
  const calls = new Map<string, number[]>();
  const gaps: number[] = [];
  const runLatency: number[] = [];
  const db = await openBenchStore(ctx.root, 'w1', ctx.durability, ctx.db);
  const tracked = trackStore(db.store, { trace: ctx.trace });
  const registry = makeRegistry({ steps: stepAgent(calls) });
  const waiters = new FinishWaiters();
  tracked.onFinish = (id, kind, at) => waiters.finished(id, kind, at);
  let check: Record<string, number>;
  const worker = await startWorker(tracked.store, registry);
  try {
    log(`[${ctx.durability}] W1 latency: ${warmup} warm-up + ${runs} runs, one at a time`);
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      const { run } = await submitRun(tracked.store, registry, { agent: 'steps', input: null }, Date.now());
      const { at } = await waiters.wait(run.rootTaskId);
      const times = calls.get(run.rootTaskId) ?? [];
      calls.delete(run.rootTaskId);
      if (i < warmup) continue;
      runLatency.push(at - t0);
      for (let k = 1; k < times.length; k++) gaps.push(times[k]! - times[k - 1]!);
    }
  } finally {
    await worker.stop();
    check = await db.states();
    await db.cleanup();
  }
  const trace = roundTrace(tracked.trace);
  const latency = {
    durability: ctx.durability,
    perTurnMs: roundSummary(summarize(gaps)),
    runLatencyMs: roundSummary(summarize(runLatency)),
    latencyRuns: runs,
  };
  if (ctx.latencyOnly) return { ...latency, batchRuns: 0, batchMs: Number.NaN, runsPerSec: Number.NaN, turnsPerSec: Number.NaN, check, ...(trace ? { trace } : {}) };

  // Throughput: a batch submitted at once into a running worker.
  const tdb = await openBenchStore(ctx.root, 'w1-batch', ctx.durability, ctx.db);
  const ttracked = trackStore(tdb.store);
  const tregistry = makeRegistry({ steps: stepAgent() });
  let done = 0;
  let lastAt = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  ttracked.onFinish = (_id, _kind, at) => {
    lastAt = at;
    if (++done === batch) allDone();
  };
  let batchMs: number;
  const tworker = await startWorker(ttracked.store, tregistry);
  try {
    log(`[${ctx.durability}] W1 throughput: ${batch} runs of ${TURNS} turns submitted together`);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: batch }, () => submitRun(ttracked.store, tregistry, { agent: 'steps', input: null }, Date.now())));
    await finished;
    batchMs = lastAt - t0;
  } finally {
    await tworker.stop();
    check = mergeCounts(check, await tdb.states());
    await tdb.cleanup();
  }

  return {
    ...latency,
    batchRuns: batch,
    batchMs: round(batchMs, 1),
    runsPerSec: round((batch / batchMs) * 1000, 0),
    turnsPerSec: round(((batch * TURNS) / batchMs) * 1000, 0),
    check,
    ...(trace ? { trace } : {}),
  };
}

function mergeCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

// ── W2: 10,000 independent single-turn tasks ───────────────────────────────────

export interface W2Result {
  durability: Durability;
  tasks: number;
  concurrency: number;
  submitMs: number;
  processMs: number;
  endToEndMs: number;
  submitPerSec: number;
  processPerSec: number;
  endToEndPerSec: number;
  /** CPU time (user + system) of this process per task, in µs: robust to a busy machine where wall time is not. */
  submitCpuUsPerTask: number;
  processCpuUsPerTask: number;
  /** CPU busy share of one core during processing (100 = the process never waited). */
  processCpuPct: number;
  /** Round trips sent (PostgreSQL) or statements run (SQLite) while processing, per task (the worker's and the bench's). */
  roundTripsPerTask?: number;
  rssBeforeMb: number;
  rssQueuedMb: number;
  heapQueuedMb: number;
  rssPeakMb: number;
  /** process.resourceUsage().maxRSS at the end: the lifetime peak of this process. */
  maxRssMb: number;
  check: Record<string, number>;
  trace?: StoreTrace;
}

export async function w2(ctx: WorkloadCtx): Promise<W2Result> {
  const tasks = ctx.tasks ?? (ctx.quick ? 1_000 : 10_000);
  const db = await openBenchStore(ctx.root, 'w2', ctx.durability, ctx.db);
  const tracked = trackStore(db.store, { trace: ctx.trace });
  const registry = makeRegistry({ noop: () => ({ output: null }) });
  let done = 0;
  let lastAt = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  tracked.onFinish = (_id, _kind, at) => {
    lastAt = at;
    if (++done === tasks) allDone();
  };

  const rssBefore = process.memoryUsage().rss;
  log(`[${ctx.durability}] W2: submitting ${tasks} runs concurrently`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: tasks }, () => submitRun(tracked.store, registry, { agent: 'noop', input: null }, Date.now())));
  const t1 = performance.now();
  const cpu1 = process.cpuUsage();
  const queued = process.memoryUsage();

  let peak = queued.rss;
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  }, 20);
  log(`[${ctx.durability}] W2: processing with one worker at concurrency ${BENCH_WORKER.concurrency}`);
  let check: Record<string, number>;
  const trips1 = db.roundTrips();
  const worker = await startWorker(tracked.store, registry);
  let cpu2!: NodeJS.CpuUsage;
  let trips2!: number | null;
  try {
    await finished;
    cpu2 = process.cpuUsage();
    trips2 = db.roundTrips();
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage.rss());
    await worker.stop();
    check = await db.states();
    await db.cleanup();
  }
  const t2 = lastAt;
  const trace = roundTrace(tracked.trace);
  return {
    durability: ctx.durability,
    tasks,
    concurrency: BENCH_WORKER.concurrency!,
    submitMs: round(t1 - t0, 1),
    processMs: round(t2 - t1, 1),
    endToEndMs: round(t2 - t0, 1),
    submitPerSec: round((tasks / (t1 - t0)) * 1000, 0),
    processPerSec: round((tasks / (t2 - t1)) * 1000, 0),
    endToEndPerSec: round((tasks / (t2 - t0)) * 1000, 0),
    submitCpuUsPerTask: round(cpuUs(cpu0, cpu1) / tasks, 1),
    processCpuUsPerTask: round(cpuUs(cpu1, cpu2) / tasks, 1),
    processCpuPct: round((cpuUs(cpu1, cpu2) / 1000 / (t2 - t1)) * 100, 0),
    ...(trips1 !== null && trips2 !== null ? { roundTripsPerTask: round((trips2 - trips1) / tasks, 2) } : {}),
    rssBeforeMb: mb(rssBefore),
    rssQueuedMb: mb(queued.rss),
    heapQueuedMb: mb(queued.heapUsed),
    rssPeakMb: mb(peak),
    maxRssMb: mb(process.resourceUsage().maxRSS * 1024),
    check,
    ...(trace ? { trace } : {}),
  };
}

/** Several W2 runs (each in its own process): the median run by end-to-end rate, plus the worst memory. */
export interface W2Summary extends W2Result {
  runs: number;
  endToEndPerSecAll: number[];
  rssQueuedWorstMb: number;
  rssPeakWorstMb: number;
}

export function aggregateW2(runs: W2Result[]): W2Summary {
  const sorted = [...runs].sort((a, b) => a.endToEndPerSec - b.endToEndPerSec);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return {
    ...median,
    runs: runs.length,
    endToEndPerSecAll: runs.map((r) => r.endToEndPerSec),
    rssQueuedWorstMb: Math.max(...runs.map((r) => r.rssQueuedMb)),
    rssPeakWorstMb: Math.max(...runs.map((r) => r.rssPeakMb)),
    check: runs.reduce<Record<string, number>>((acc, r) => mergeCounts(acc, r.check), {}),
  };
}

function cpuUs(a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number {
  return b.user - a.user + (b.system - a.system);
}

// ── W3: fan out to 100 children and join ───────────────────────────────────────

export interface W3Result {
  durability: Durability;
  children: number;
  reps: number;
  /** Submit → the parent's final commit (run succeeded). */
  totalMs: Summary;
  /** Submit → the parent's first turn (claim latency). */
  toFirstTurnMs: Summary;
  /** Parent turn 1 → parent turn 2: fan-out commit, 100 children, join. */
  fanOutJoinMs: Summary;
  /** Parent turn 2 → run succeeded: the final commit. */
  finalCommitMs: Summary;
  badJoins: number;
  check: Record<string, number>;
  trace?: StoreTrace;
}

export async function w3(ctx: WorkloadCtx): Promise<W3Result> {
  const children = 100;
  const warmup = ctx.quick ? 1 : 3;
  const reps = ctx.quick ? 5 : 20;
  const turnAt = new Map<string, number[]>();
  let badJoins = 0;
  const registry = makeRegistry({
    fan: (input: TurnInput) => {
      const at = performance.now();
      let times = turnAt.get(input.task.id);
      if (!times) turnAt.set(input.task.id, (times = []));
      times.push(at);
      if (input.task.turn === 1) {
        return { actions: Array.from({ length: children }, (_, i) => ({ type: 'handoff', agent: 'leaf', input: i })) };
      }
      const ok = input.results.filter((r) => r.ok).length;
      if (ok !== children) badJoins++;
      return { output: { joined: ok } satisfies Json };
    },
    leaf: () => ({ output: null }),
  });
  const db = await openBenchStore(ctx.root, 'w3', ctx.durability, ctx.db);
  const tracked = trackStore(db.store, { trace: ctx.trace });
  const waiters = new FinishWaiters();
  tracked.onFinish = (id, kind, at) => waiters.finished(id, kind, at);
  const total: number[] = [];
  const first: number[] = [];
  const fanJoin: number[] = [];
  const final: number[] = [];
  let check: Record<string, number>;
  const worker = await startWorker(tracked.store, registry);
  try {
    log(`[${ctx.durability}] W3: ${warmup} warm-up + ${reps} runs fanning out to ${children} children`);
    for (let i = 0; i < warmup + reps; i++) {
      const t0 = performance.now();
      const { run } = await submitRun(tracked.store, registry, { agent: 'fan', input: null }, Date.now());
      const { at } = await waiters.wait(run.rootTaskId);
      const [a, b] = turnAt.get(run.rootTaskId) ?? [];
      turnAt.delete(run.rootTaskId);
      if (i < warmup) continue;
      total.push(at - t0);
      if (a !== undefined && b !== undefined) {
        first.push(a - t0);
        fanJoin.push(b - a);
        final.push(at - b);
      }
    }
  } finally {
    await worker.stop();
    check = await db.states();
    await db.cleanup();
  }
  const trace = roundTrace(tracked.trace);
  return {
    durability: ctx.durability,
    children,
    reps,
    totalMs: roundSummary(summarize(total)),
    toFirstTurnMs: roundSummary(summarize(first)),
    fanOutJoinMs: roundSummary(summarize(fanJoin)),
    finalCommitMs: roundSummary(summarize(final)),
    badJoins,
    check,
    ...(trace ? { trace } : {}),
  };
}
