/**
 * CLI start-up: wall time of `spine --version`, `spine --help` and `spine runs list
 * --json` on a 10k-run store, against `node -e 0` on the same Node, and the modules
 * each loads (counted in a separate run, so the count's hook costs no time).
 *
 *   node bench/cli-startup.ts [--runs <n>] [--json]
 *
 * Targets (issue 9): --version and --help under 150 ms on an idle 2-core machine and
 * within 3× of `node -e 0`; runs list --json on 10k runs under 400 ms.
 *
 * `bin/spine.js` turns on Node's compile cache, so a command after the first skips
 * stripping TypeScript: the targets are judged warm; the cold column is a first run
 * (NODE_DISABLE_COMPILE_CACHE=1).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { openStore } from '../src/runtime/open-store.ts';
import { benchArgs, wholeOption } from './harness.ts';
import { percentile } from './stats.ts';

const args = benchArgs('cli', { runs: { type: 'string', default: '15' }, json: { type: 'boolean', default: false } });
const RUNS = wholeOption('cli', 'runs', args.runs);
const SEED = 10_000;
const BIN = fileURLToPath(new URL('../bin/spine.js', import.meta.url));

/** Counts the modules a process loads: files of Spine and its dependencies, and node: builtins. */
const COUNTER = `
import { registerHooks } from 'node:module';
const files = new Set(), builtins = new Set();
registerHooks({ load(url, ctx, next) { (url.startsWith('node:') ? builtins : files).add(url); return next(url, ctx); } });
process.on('exit', () => process.stderr.write('\\n@@modules ' + JSON.stringify({ files: files.size, builtins: builtins.size }) + '\\n'));
`;

interface Case {
  name: string;
  argv: string[];
  target: { ms: number; ratio?: number };
}

async function seed(dir: string): Promise<string> {
  const path = join(dir, 'spine.db');
  const store = openStore({ url: `sqlite:${path}`, durability: 'fast' });
  await store.migrate();
  // One run through the port, copied 10k times in SQL (the port's one-by-one create would take a minute).
  const { run } = await store.runs.create({ agent: 'bench', input: { text: 'hello' }, idempotencyKey: null, maxAttempts: 1, actor: 'bench' }, Date.now());
  await store.close();
  const db = new DatabaseSync(path);
  const cols = (db.prepare(`SELECT name FROM pragma_table_info('runs')`).all() as Array<{ name: string }>).map((c) => c.name);
  const select = cols.map((c) => (c === 'id' ? `'run_' || printf('%08d', n.i)` : c === 'created_at' ? `created_at + n.i` : c === 'idempotency_key' ? 'NULL' : c)).join(', ');
  db.exec('BEGIN');
  db.exec(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${SEED - 1})
     INSERT INTO runs (${cols.join(', ')}) SELECT ${select} FROM n, runs WHERE runs.id = '${run.id}'`,
  );
  db.exec('COMMIT');
  const count = (db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n;
  db.close();
  if (count !== SEED) throw new Error(`seeded ${count} runs, wanted ${SEED}`);
  return path;
}

function time(argv: string[], cwd: string, cold = false): number {
  const env: NodeJS.ProcessEnv = { ...process.env, SPINE_DB: '', SPINE_CONFIG: '' };
  if (cold) env.NODE_DISABLE_COMPILE_CACHE = '1';
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { cwd, encoding: 'utf8', env });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function modules(argv: string[], cwd: string): { files: number; builtins: number } {
  const hook = join(cwd, 'count-modules.mjs');
  const r = spawnSync(process.execPath, ['--import', hook, ...argv], { cwd, encoding: 'utf8' });
  const m = /@@modules (.*)/.exec(r.stderr);
  if (!m) throw new Error(`no module count from ${argv.join(' ')}: ${r.stderr}`);
  return JSON.parse(m[1]!) as { files: number; builtins: number };
}

const dir = mkdtempSync(join(tmpdir(), 'spine-cli-bench-'));
try {
  writeFileSync(join(dir, 'count-modules.mjs'), COUNTER);
  const db = await seed(dir);
  const cases: Case[] = [
    { name: 'node -e 0', argv: ['-e', '0'], target: { ms: Infinity } },
    { name: 'spine --version', argv: [BIN, '--version'], target: { ms: 150, ratio: 3 } },
    { name: 'spine --help', argv: [BIN, '--help'], target: { ms: 150, ratio: 3 } },
    { name: 'spine runs list --json (10k runs)', argv: [BIN, 'runs', 'list', '--json', '--db', `sqlite:${db}`], target: { ms: 400 } },
  ];
  const rows = [];
  let baseline = 0;
  for (const c of cases) {
    time(c.argv, dir); // warm the file cache
    const samples = Array.from({ length: RUNS }, () => time(c.argv, dir)).sort((a, b) => a - b);
    const p50 = percentile(samples, 50);
    const cold = percentile(
      Array.from({ length: RUNS }, () => time(c.argv, dir, true)).sort((a, b) => a - b),
      50,
    );
    if (c.name === 'node -e 0') baseline = p50;
    const ratio = p50 / baseline;
    const met = p50 <= c.target.ms && (c.target.ratio === undefined || ratio <= c.target.ratio);
    rows.push({ name: c.name, p50, min: samples[0]!, max: samples.at(-1)!, cold, ratio, modules: modules(c.argv, dir), target: c.target, met });
  }
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  if (args.json) {
    console.log(JSON.stringify({ node: process.version, load, runs: RUNS, rows }, null, 2));
  } else {
    console.log(`CLI start-up, ${RUNS} runs each, Node ${process.version}, load average ${load}\n`);
    console.log(`${'command'.padEnd(36)} ${'p50 ms'.padStart(8)} ${'min'.padStart(7)} ${'max'.padStart(7)} ${'× node'.padStart(7)} ${'cold p50'.padStart(9)} ${'modules'.padStart(8)} ${'builtins'.padStart(9)}  target`);
    for (const r of rows) {
      const target = r.target.ms === Infinity ? '' : `< ${r.target.ms} ms${r.target.ratio ? `, ≤ ${r.target.ratio}× node` : ''} — ${r.met ? 'met' : 'missed'}`;
      console.log(
        `${r.name.padEnd(36)} ${r.p50.toFixed(1).padStart(8)} ${r.min.toFixed(1).padStart(7)} ${r.max.toFixed(1).padStart(7)} ${r.ratio.toFixed(2).padStart(7)} ${r.cold.toFixed(1).padStart(9)} ${String(r.modules.files).padStart(8)} ${String(r.modules.builtins).padStart(9)}  ${target}`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
