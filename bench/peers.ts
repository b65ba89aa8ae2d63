/**
 * Spine against the limit, in one process run: W1 (per-turn overhead p50), W2 (no-op
 * tasks/s, one worker at concurrency 8) and W3 (fan-out 100 + join p50) through
 * Spine's worker and store (the workloads of bench/workloads.ts), next to the same
 * workloads on a bare task table (bench/bare.ts) on node:sqlite and, with --db, on
 * PostgreSQL. It prints Spine/limit for each, so a change to a hot path reports a
 * ratio measured in one run, not an absolute figure that moves with the machine's load.
 *
 *   node bench/peers.ts [--db postgres://…] [--quick] [--durability strict|fast]
 *                       [--only sqlite,postgres] [--tasks N] [--json]
 *
 * --quick (2,000 W2 tasks, fewer W1/W3 runs) finishes in under a minute on 2 cores.
 * Each backend is measured in a process of its own (this script, started again with
 * --only), so that W2's peak RSS is that backend's, not what the other one left.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEAP_FLAGS } from '../bin/heap-flags.js';
import { barePostgres, bareSqlite, type BareQueue } from './bare.ts';
import { bareW1, bareW2, bareW3 } from './bare-workloads.ts';
import { badOption, BENCH_WORKER, benchArgs, durabilityOption, log, pgUrlOption, rerunWithFlags, wholeOption } from './harness.ts';
import { round } from './stats.ts';
import { w1, w2, w3, type WorkloadCtx } from './workloads.ts';

const args = benchArgs('peers', {
  db: { type: 'string', default: process.env.SPINE_BENCH_PG_URL },
  quick: { type: 'boolean', default: false },
  durability: { type: 'string', default: 'strict' },
  only: { type: 'string' },
  tasks: { type: 'string' },
  json: { type: 'boolean', default: false },
});

const durability = durabilityOption('peers', args.durability);
const db = pgUrlOption('peers', args.db);
const tasksFlag = wholeOption('peers', 'tasks', args.tasks);
const only = [...new Set((args.only ?? 'sqlite,postgres').split(',').map((s) => s.trim()))];
if (only.some((backend) => backend !== 'sqlite' && backend !== 'postgres')) badOption('peers', `--only must list sqlite and/or postgres, comma-separated (got ${JSON.stringify(args.only)})`);

// The workloads run with the heap flags `spine up` and `spine worker` run with, so the
// memory figures are those of the processes Spine ships: started without them, this
// bench starts itself again with them and waits.
rerunWithFlags(HEAP_FLAGS, fileURLToPath(import.meta.url));

const quick = args.quick;
const sizes = { w1Runs: quick ? 20 : 200, w2Tasks: tasksFlag ?? (quick ? 2_000 : 10_000), w3Reps: quick ? 5 : 20, children: 100 };
const concurrency = BENCH_WORKER.concurrency!;

interface Row {
  backend: 'sqlite' | 'postgres';
  workload: string;
  unit: string;
  spine: number;
  limit: number;
  /** Spine/limit: for a rate, the share of the limit reached; for a latency, how many times the limit's. */
  ratio: number;
  higherIsBetter: boolean;
  spineRoundTripsPerTask?: number;
  limitRoundTripsPerTask?: number;
}

type Backend = 'sqlite' | 'postgres';

/** One backend's figures: the table's rows, and W2's peak RSS (this process's, sampled while processing). */
interface Measured {
  rows: Row[];
  w2PeakRssMb: Partial<Record<Backend, number>>;
}

async function measure(backend: Backend, root: string, openBare: () => Promise<BareQueue>): Promise<Measured> {
  const ctx: WorkloadCtx = { root, durability, quick, trace: false, latencyOnly: true, tasks: sizes.w2Tasks, ...(backend === 'postgres' ? { db: db! } : {}) };
  const rows: Row[] = [];
  const row = (workload: string, unit: string, spine: number, limit: number, higherIsBetter: boolean, extra: Partial<Row> = {}) =>
    rows.push({ backend, workload, unit, spine, limit, ratio: round(spine / limit, 3), higherIsBetter, ...extra });

  log(`[${backend}] bare W1/W2/W3`);
  const bare = await openBare();
  let b1, b2, b3;
  try {
    b1 = await bareW1(bare, sizes.w1Runs);
    b2 = await bareW2(bare, sizes.w2Tasks, concurrency);
    b3 = await bareW3(bare, sizes.w3Reps, sizes.children, concurrency);
  } finally {
    await bare.close();
  }
  log(`[${backend}] Spine W1`);
  const s1 = await w1(ctx);
  log(`[${backend}] Spine W2`);
  const s2 = await w2(ctx);
  log(`[${backend}] Spine W3`);
  const s3 = await w3(ctx);

  row('W1 per-turn overhead p50', 'ms', s1.perTurnMs.p50, round(b1.perTurnMs.p50, 4), false);
  row(`W2 ${sizes.w2Tasks} no-op tasks, c=${concurrency}, end to end`, 'tasks/s', s2.endToEndPerSec, b2.endToEndPerSec, true, {
    ...(s2.roundTripsPerTask !== undefined ? { spineRoundTripsPerTask: s2.roundTripsPerTask } : {}),
    ...(b2.roundTripsPerTask !== undefined ? { limitRoundTripsPerTask: b2.roundTripsPerTask } : {}),
  });
  row('W2 processing phase alone', 'tasks/s', s2.processPerSec, b2.processPerSec, true);
  row(`W3 fan-out ${sizes.children} + join p50`, 'ms', s3.totalMs.p50, round(b3.totalMs.p50, 3), false);
  for (const [k, c] of [['W1', s1.check], ['W2', s2.check], ['W3', s3.check]] as const) {
    const bad = Object.entries(c).filter(([s]) => s !== 'succeeded');
    if (bad.length) log(`[${backend}] ${k}: runs not succeeded afterwards: ${JSON.stringify(Object.fromEntries(bad))}`);
  }
  log(`[${backend}] Spine W2 CPU ${s2.processCpuUsPerTask} µs/task while processing, peak RSS ${s2.rssPeakMb} MB`);
  return { rows, w2PeakRssMb: { [backend]: s2.rssPeakMb } };
}

/** Measures one backend in a child process (this script with --only and --json) and takes its figures. */
function measureApart(backend: Backend): Measured {
  const argv = [...process.execArgv, fileURLToPath(import.meta.url), '--only', backend, '--json', '--durability', durability];
  if (quick) argv.push('--quick');
  if (tasksFlag !== undefined) argv.push('--tasks', String(tasksFlag));
  if (backend === 'postgres') argv.push('--db', db!);
  const child = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 16 << 20 });
  if (child.status !== 0) throw new Error(`bench:peers: measuring ${backend} failed (exit ${child.status ?? child.signal})`);
  const { rows, w2PeakRssMb } = JSON.parse(child.stdout) as Measured;
  return { rows, w2PeakRssMb };
}

function render(rows: Row[]): string {
  const header = ['backend', 'workload', 'Spine', 'limit (bare table)', 'Spine/limit', 'statements or round trips/task Spine · bare'];
  const fmt = (v: number, unit: string) => `${v.toLocaleString('en-US', { maximumFractionDigits: unit === 'ms' ? 3 : 0 })} ${unit}`;
  const cells = rows.map((r) => [
    r.backend,
    r.workload,
    fmt(r.spine, r.unit),
    fmt(r.limit, r.unit),
    r.higherIsBetter ? `${r.ratio.toFixed(2)} of the rate` : `${r.ratio.toFixed(1)}× the time`,
    r.spineRoundTripsPerTask !== undefined ? `${r.spineRoundTripsPerTask} · ${r.limitRoundTripsPerTask ?? '?'}` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i >= 2 && i <= 4 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'spine-peers-'));
  const load0 = loadavg()[0]!;
  const t0 = performance.now();
  const backends = only.filter((b): b is Backend => {
    if (b === 'postgres' && !db) log('PostgreSQL skipped: pass --db postgres://… (or set SPINE_BENCH_PG_URL)');
    return b === 'sqlite' || (b === 'postgres' && db !== undefined);
  });
  const rows: Row[] = [];
  const w2PeakRssMb: Measured['w2PeakRssMb'] = {};
  try {
    for (const backend of backends) {
      const measured =
        backends.length > 1
          ? measureApart(backend)
          : await measure(backend, root, backend === 'sqlite' ? async () => bareSqlite(root, durability) : () => barePostgres(db!, durability, concurrency));
      rows.push(...measured.rows);
      Object.assign(w2PeakRssMb, measured.w2PeakRssMb);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const meta = {
    startedAt: new Date().toISOString(),
    durability,
    mode: quick ? 'quick' : 'full',
    sizes,
    loadAverage1m: { before: round(load0, 2), after: round(loadavg()[0]!, 2) },
    seconds: round((performance.now() - t0) / 1000, 1),
  };
  if (args.json) {
    process.stdout.write(JSON.stringify({ meta, rows, w2PeakRssMb }, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    [
      `Spine vs a bare task table (${meta.mode}, durability ${durability}; SQLite ${durability === 'strict' ? 'synchronous=FULL' : 'synchronous=NORMAL'}, PostgreSQL ${durability === 'strict' ? 'synchronous_commit=on' : 'synchronous_commit=off'}) — ${meta.startedAt}`,
      `load average (1 min) ${meta.loadAverage1m.before} before, ${meta.loadAverage1m.after} after; ${meta.seconds} s`,
      '',
      render(rows),
      '',
      `W2 peak RSS, each backend in a process of its own (target < 150 MB): ${Object.entries(w2PeakRssMb)
        .map(([b, mb]) => `${b} ${mb} MB`)
        .join(', ')}`,
      '',
      'limit: the same workload on a bare table (no turns, audit, leases or policy): PostgreSQL claims with one FOR UPDATE SKIP LOCKED statement and completes with one more (pool of 8); SQLite group-commits the claims and completions of one event-loop turn in one BEGIN IMMEDIATE transaction.',
      'statements or round trips per task (W2, processing phase): on PostgreSQL the round trips sent, BEGIN and COMMIT included; on SQLite the statements run (no network), transaction control included.',
      '',
    ].join('\n'),
  );
}

await main();
