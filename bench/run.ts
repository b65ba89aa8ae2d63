/**
 * Spine benchmark: per-turn overhead (W1), no-op task throughput and memory (W2),
 * fan-out/join latency (W3) and the raw node:sqlite limit, each on `strict` and
 * `fast` durability. Measurement only: a missed target is reported, never fatal.
 *
 *   node bench/run.ts [--quick] [--json] [--only w1,w2,w3,raw] [--durability strict|fast]
 *                     [--inline] [--trace]
 *
 * Each (workload, durability) runs in a fresh child process so memory figures and
 * JIT/GC state belong to that workload alone (--inline runs them in this process,
 * handy with --cpu-prof). Progress goes to stderr; the table (or JSON) to stdout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Durability } from '../src/store/store.ts';
import { HEAP_FLAGS } from '../bin/heap-flags.js';
import { badOption, benchArgs, log } from './harness.ts';
import { rawSqlite } from './raw-sqlite.ts';
import { DURABILITIES, figures, renderNotes, renderTable, type Results } from './report.ts';
import { aggregateW2, w1, w2, w3, type W2Result, type WorkloadCtx } from './workloads.ts';

const WORKLOADS = ['raw', 'w1', 'w2', 'w3'] as const;
/** W2 is one long run whose rate and memory vary from run to run: repeat it and report the median run and the worst memory. */
const W2_RUNS = 3;
type WorkloadName = (typeof WORKLOADS)[number];

// `npm run bench -- --db postgres://…` measures the PostgreSQL backend: W2 with 1, 2
// and 4 worker processes (bench/pg.ts); everything else here is the embedded SQLite store.
const dbAt = process.argv.findIndex((a) => a === '--db' || a.startsWith('--db='));
if (dbAt >= 0) {
  const a = process.argv[dbAt]!;
  const url = a.includes('=') ? a.slice(a.indexOf('=') + 1) : process.argv[dbAt + 1];
  if (url?.startsWith('postgres')) {
    const rest = process.argv.slice(2).filter((_, i) => i + 2 !== dbAt && (a.includes('=') || i + 2 !== dbAt + 1));
    const pg = spawnSync(process.execPath, [fileURLToPath(new URL('./pg.ts', import.meta.url)), '--db', url, ...rest], { stdio: 'inherit' });
    process.exit(pg.status ?? 1);
  }
  badOption('run', `--db takes a postgres://… URL, measured by bench/pg.ts; the default bench is the embedded SQLite store (got ${url === undefined ? 'nothing' : JSON.stringify(url)})`);
}

const args = benchArgs('run', {
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  only: { type: 'string' },
  durability: { type: 'string' },
  inline: { type: 'boolean', default: false },
  trace: { type: 'boolean', default: false },
  // internal: run one workload in this (child) process and print its result as JSON
  child: { type: 'string' },
  dir: { type: 'string' },
});

/** The items of a comma-separated --`option` (all of them if not given); one not in `all` is a badOption. */
function pickList<T extends string>(option: string, value: string | undefined, all: readonly T[]): T[] {
  if (!value) return [...all];
  const picked = value.split(',').map((s) => s.trim().toLowerCase());
  const bad = picked.filter((p) => !all.includes(p as T));
  if (bad.length) badOption('run', `--${option}: unknown ${bad.map((b) => JSON.stringify(b)).join(', ')} (expected ${all.join(', ')}, comma-separated)`);
  return all.filter((a) => picked.includes(a));
}

async function runWorkload(name: WorkloadName, ctx: WorkloadCtx): Promise<unknown> {
  switch (name) {
    case 'raw':
      return rawSqlite(ctx);
    case 'w1':
      return w1(ctx);
    case 'w2':
      return w2(ctx);
    case 'w3':
      return w3(ctx);
  }
}

/** Runs one workload in a fresh Node process (same binary and flags) and parses its JSON result. */
function runInChild(name: WorkloadName, ctx: WorkloadCtx): Promise<unknown> {
  const script = fileURLToPath(import.meta.url);
  const childArgs = [
    ...process.execArgv,
    // The flags the launcher gives `spine up` and `spine worker` (bin/heap-flags.js).
    ...HEAP_FLAGS.filter((flag) => !process.execArgv.includes(flag)),
    script,
    `--child=${name}`,
    `--durability=${ctx.durability}`,
    `--dir=${ctx.root}`,
    ...(ctx.quick ? ['--quick'] : []),
    ...(ctx.trace ? ['--trace'] : []),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    // A workload that never finishes (an engine bug) must not hang the bench.
    const limitMs = ctx.quick ? 60_000 : 180_000;
    let timedOut = false;
    const watchdog = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limitMs);
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      if (timedOut) return reject(new Error(`no result after ${limitMs / 1000} s; killed`));
      if (code !== 0) return reject(new Error(`child exited with ${signal ?? `code ${code}`}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? ''));
      } catch {
        reject(new Error(`child printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}

/**
 * Flushes dirty pages (`sync`) before each workload, so one workload's writes do not
 * slow the next one's fsyncs (ext4 ordered mode ties an fsync to other files' data).
 */
/** The commit measured, and whether src/ had uncommitted changes (figures move with the code). */
function sourceVersion(): string {
  const git = (...a: string[]) => spawnSync('git', a, { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) });
  const head = git('rev-parse', '--short', 'HEAD');
  if (head.status !== 0) return 'unknown';
  const dirty = git('status', '--porcelain', '--', 'src').stdout.trim();
  return `${head.stdout.trim()}${dirty ? ' + uncommitted changes in src/' : ''}`;
}

function settleDisk(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

async function child(name: WorkloadName, durability: Durability): Promise<void> {
  const root = args.dir ?? tmpdir();
  const result = await runWorkload(name, { root, durability, quick: args.quick, trace: args.trace });
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function main(): Promise<void> {
  const durabilities = pickList('durability', args.durability, DURABILITIES);
  if (args.child) {
    const [name] = pickList('child', args.child, WORKLOADS);
    await child(name!, durabilities[0]!);
    return;
  }
  const only = pickList('only', args.only, WORKLOADS);
  const root = mkdtempSync(join(tmpdir(), 'spine-bench-'));
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const started = Date.now();
  const t0 = performance.now();
  const loadBefore = loadavg()[0]!;
  const results = Object.fromEntries(durabilities.map((d) => [d, { errors: {} }])) as Results;
  try {
    for (const name of only) {
      for (const durability of durabilities) {
        const ctx: WorkloadCtx = { root, durability, quick: args.quick, trace: args.trace };
        const reps = name === 'w2' && !args.quick ? W2_RUNS : 1;
        const w0 = performance.now();
        try {
          const runs: unknown[] = [];
          for (let i = 0; i < reps; i++) {
            settleDisk();
            runs.push(args.inline ? await runWorkload(name, ctx) : await runInChild(name, ctx));
          }
          const value = name === 'w2' ? aggregateW2(runs as W2Result[]) : runs[0];
          Object.assign(results[durability], { [name]: value });
          log(`[${durability}] ${name} done in ${((performance.now() - w0) / 1000).toFixed(1)} s`);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          results[durability].errors[name] = msg;
          log(`[${durability}] ${name} FAILED: ${msg}`);
          process.exitCode = 1; // a crash is an error; a missed target is not
        }
      }
    }
  } finally {
    cleanup();
  }
  const totalMs = performance.now() - t0;
  const meta = {
    startedAt: new Date(started).toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    mode: args.quick ? 'quick' : 'full',
    isolation: args.inline ? 'inline' : 'child process per workload',
    worker: { concurrency: 8, pollMs: 50, leaseMs: 30_000 },
    totalSeconds: Math.round(totalMs / 100) / 10,
    source: sourceVersion(),
    loadAverage1m: { before: Math.round(loadBefore * 100) / 100, after: Math.round(loadavg()[0]! * 100) / 100 },
  };
  if (args.json) {
    process.stdout.write(JSON.stringify({ meta, figures: figures(results, durabilities), results }, null, 2) + '\n');
    return;
  }
  const title = `Spine bench (${meta.mode}) — ${meta.startedAt}, Node ${meta.node}, ${meta.platform}, ${meta.cpus} × ${meta.cpuModel}`;
  process.stdout.write(
    [
      title,
      `source ${meta.source}; one worker per workload: concurrency 8, pollMs 50, leaseMs 30000; silent logger; ${meta.isolation}`,
      `load average (1 min, this bench included) ${meta.loadAverage1m.before} before, ${meta.loadAverage1m.after} after: other processes on the machine skew wall-clock figures; CPU µs per task is less sensitive`,
      '',
      renderTable(results, durabilities),
      '',
      renderNotes(results, durabilities),
      '',
      `total ${meta.totalSeconds} s`,
      '',
    ].join('\n'),
  );
  if (args.trace) {
    for (const d of durabilities) {
      for (const name of ['w1', 'w2', 'w3'] as const) {
        const trace = (results[d][name] as { trace?: unknown } | undefined)?.trace;
        if (trace) process.stdout.write(`trace [${d}] ${name}: ${JSON.stringify(trace)}\n`);
      }
    }
  }
}

await main();
