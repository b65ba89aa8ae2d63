/**
 * Shared memory (issue 11): what a `remember` crossing costs, lexical search over many
 * facts, the recall a declared `recall` adds to a turn, and concurrent compare-and-set
 * writers (none lost).
 *
 *   node bench/memory.ts [--db postgres://…] [--facts 100000] [--ops 5000] [--json]
 *
 * SQLite (default: a temp file, fast durability) or PostgreSQL (a fresh schema, dropped
 * after). Figures per operation, as percentiles; the `remember` crossing is also given
 * as a ratio to the bare database's single-row transaction measured in the same run.
 * Measurement only: a missed target is reported, never fatal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import { systemClock } from '../src/core/clock.ts';
import { digest } from '../src/core/digest.ts';
import { resolveGrants } from '../src/core/memory.ts';
import type { Task } from '../src/core/types.ts';
import { Boundary, taskCrossing } from '../src/engine/boundary.ts';
import { createRegistry } from '../src/engine/registry.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { FactWrite } from '../src/store/memory.ts';
import { searchMemory } from '../src/memory/search.ts';
import { benchArgs, wholeOption } from './harness.ts';
import { rawSqlite } from './raw-sqlite.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('memory', { db: { type: 'string' }, facts: { type: 'string' }, ops: { type: 'string' }, vectors: { type: 'string' }, json: { type: 'boolean', default: false } });
const FACTS = wholeOption('memory', 'facts', args.facts) ?? 100_000;
/** Facts given a vector (exact search scans them all); 0 skips the vector figures. */
const VECTORS = wholeOption('memory', 'vectors', args.vectors, 0) ?? 10_000;
const DIMS = 384;
const OPS = wholeOption('memory', 'ops', args.ops) ?? 5_000;
const dir = mkdtempSync(join(tmpdir(), 'spine-bench-memory-'));
const pgUrl = args.db?.startsWith('postgres') ? args.db : null;
const schema = `bench_mem_${randomBytes(4).toString('hex')}`;
const url = pgUrl ? `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}schema=${schema}&pool=8` : `sqlite:${join(dir, 'm.db')}`;
const store = openStore({ url, durability: 'fast' });
await store.migrate();
const backend = pgUrl ? 'postgres' : 'sqlite';

const agent = new FunctionAgent(() => ({ output: null }));
const registry = createRegistry({ agents: { scribe: { agent, grants: { tools: { allow: [], deny: [] }, handoffs: null, memory: { read: ['team/*'], write: ['team/*'] } } } } });
const boundary = new Boundary(store, registry, systemClock);
const task = { id: 'task_bench', runId: 'run_bench', agent: 'scribe' } as Task;
const by = { agent: 'scribe', run: 'run_bench', task: 'task_bench', turn: 1, actor: 'bench' };

// A synthetic vocabulary: texts of 12 words from 5000, queries of 2 words.
const VOCAB = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}x`);
let seed = 42;
const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
const words = (n: number) => Array.from({ length: n }, () => VOCAB[rnd(VOCAB.length)]!).join(' ');

function write(i: number, text: string): FactWrite {
  return { tenant: 'default', scope: `team/t${i % 50}`, key: `k${i}`, value: { i, note: 'bench' }, text, trust: 'agent', writtenBy: by, onConflict: 'reject' };
}

async function timed(n: number, fn: (i: number) => Promise<unknown>, batch = 1) {
  for (let i = 0; i < Math.min(200, n); i++) await fn(-i - 1);
  const per: number[] = [];
  for (let i = 0; i < n; i += batch) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: batch }, (_, j) => fn(i + j)));
    per.push((performance.now() - t0) / batch);
  }
  const s = summarize(per);
  return { p50: round(s.p50, 4), p99: round(s.p99, 4), mean: round(s.mean, 4) };
}

// 1. a remember crossing: the boundary's stages, then the write with its effect-ledger row, in one transaction.
const remember = async (i: number, n: number) => {
  const key = `run_bench/task_bench/${n}/${i}`;
  const w = { ...write(i + 10_000_000, `remember ${i}`), key: `r${n}-${i}` };
  const v = await boundary.remember(taskCrossing(task, 'default', 'bench', key), { scope: w.scope, key: w.key, value: w.value, text: w.text ?? null });
  if (v.effect !== 'allow') throw new Error(v.effect);
  await store.memory.write(w, Date.now(), { effect: { key, runId: 'run_bench', taskId: 'task_bench', turn: n, action: i, tool: 'remember', inputDigest: digest(w.value) }, audit: v.audit });
};
let round_ = 1;
const crossing = await timed(OPS, (i) => remember(i < 0 ? -i : i, i < 0 ? 0 : round_));
round_ = 2;
const crossingBatched = await timed(OPS, (i) => remember(i < 0 ? -i + 1_000_000 : i, i < 0 ? 0 : round_), 8);
/** Progress on stderr as each figure is measured (a slow PostgreSQL run still reports what it got). */
const progress = (what: string, v: unknown) => process.stderr.write(`bench memory (${pgUrl ? 'postgres' : 'sqlite'}): ${what} ${JSON.stringify(v)}\n`);
progress('remember crossing', { sequential: crossing, concurrent8: crossingBatched });
const raw = pgUrl ? null : rawSqlite({ root: dir, durability: 'fast', quick: false });

// 2. lexical search over FACTS facts (loaded in batches of 8 concurrent writes).
const t0 = performance.now();
for (let i = 0; i < FACTS; i += 64) await Promise.all(Array.from({ length: Math.min(64, FACTS - i) }, (_, j) => store.memory.write(write(i + j, words(12)), Date.now())));
const loadMs = performance.now() - t0;
if (pgUrl) {
  // What autovacuum does after a bulk load; without statistics the planner may skip the GIN index.
  const c = new pg.Client({ connectionString: pgUrl, options: `-c search_path="${schema}"` });
  await c.connect();
  await c.query('ANALYZE memory_versions');
  await c.end();
}
progress('loaded facts/s', round(FACTS / (loadMs / 1000), 0));
const all = [{ all: true as const }];
const search = await timed(OPS, () => store.memory.search({ tenant: 'default', grants: all, query: words(2), k: 10 }, Date.now()));
const granted = resolveGrants(['team/t1/*', 'team/t2/*', 'run/*'], { agent: 'scribe', runId: 'run_bench', sessionKey: null });
progress('search', search);
const searchGranted = await timed(OPS, () => store.memory.search({ tenant: 'default', grants: granted, query: words(2), k: 10 }, Date.now()));

// 3. the recall a declared `recall` adds to each turn: one search (k 5) under the agent's grants for the task input's words.
const recall = await timed(OPS, () => store.memory.search({ tenant: 'default', grants: resolveGrants(['team/*'], { agent: 'scribe', runId: 'run_bench', sessionKey: null }), query: `${words(6)}`, k: 5 }, Date.now()));

progress('recall per turn', recall);

// 4. 8 writers × 100 compare-and-set updates of one key: each applied or in the merge queue.
const counter = { tenant: 'default', scope: 'team/c', key: 'counter', grants: all };
await store.memory.write({ ...write(0, 'counter'), scope: 'team/c', key: 'counter', value: { n: 0 } }, Date.now());
let applied = 0;
let queued = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (let i = 0; i < 100; i++) {
      const cur = (await store.memory.get(counter, Date.now()))!;
      const r = await store.memory.write({ ...write(0, 'counter'), scope: 'team/c', key: 'counter', value: { n: (cur.value as { n: number }).n + 1 }, expectedVersion: cur.version }, Date.now());
      if (r.kind === 'written') applied++;
      else if (r.kind === 'conflict') queued++;
    }
  }),
);
const final = (await store.memory.get(counter, Date.now()))!;
const lost = applied - (final.value as { n: number }).n;

// 5. vectors (when this store has them): a remember that queues its embedding, then exact vector and
// hybrid search over VECTORS facts of DIMS dimensions. A hash embedder stands in for the model:
// what is measured is the store's side, not an embedder's latency.
const hashVector = (text: string) => {
  const v = new Array<number>(DIMS).fill(0);
  for (const w of text.split(' ')) {
    let h = 0;
    for (const ch of w) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
    v[h % DIMS]! += 1;
  }
  return v;
};
let vectors: { facts: number; dims: number; rememberQueuedMs: Awaited<ReturnType<typeof timed>>; vectorSearchMs: Awaited<ReturnType<typeof timed>>; hybridSearchMs: Awaited<ReturnType<typeof timed>> } | string;
const missing = VECTORS > 0 ? await store.memory.vectorSupport() : 'skipped (--vectors 0)';
if (missing) vectors = missing;
else {
  round_ = 3;
  const queuedRemember = await timed(OPS, async (i) => {
    const n = i < 0 ? -i + 2_000_000 : i + 3_000_000;
    await store.memory.write({ ...write(n, `remember ${n}`), key: `q${n}`, embed: true }, Date.now());
  });
  await store.memory.queueUnembedded(DIMS, Date.now()); // the backfill: every live fact with text
  const ids = await store.memory.embedQueue(VECTORS, Date.now());
  for (let i = 0; i < ids.length; i += 256) await store.memory.saveEmbeddings(ids.slice(i, i + 256).map((e) => ({ id: e.id, tenant: e.tenant, vector: hashVector(words(12)) })), Date.now());
  const embed = async (texts: readonly string[]) => texts.map(hashVector);
  const vecOps = Math.min(OPS, 300);
  const vectorSearch = await timed(vecOps, () => searchMemory(store, embed, { tenant: 'default', grants: all, query: words(2), k: 10, mode: 'vector' }, Date.now()));
  const hybridSearch = await timed(vecOps, () => searchMemory(store, embed, { tenant: 'default', grants: all, query: words(2), k: 10, mode: 'hybrid' }, Date.now()));
  vectors = { facts: ids.length, dims: DIMS, rememberQueuedMs: queuedRemember, vectorSearchMs: vectorSearch, hybridSearchMs: hybridSearch };
  progress('vectors', vectors);
}

const result = {
  backend,
  facts: FACTS,
  ops: OPS,
  loadFactsPerSec: round(FACTS / (loadMs / 1000), 0),
  rememberCrossingMs: crossing,
  rememberCrossingBatched8Ms: crossingBatched,
  rawSingleRowTxMs: raw ? round(raw.perTxMs.p50, 4) : null,
  rememberOverRaw: raw ? round(crossing.p50 / raw.perTxMs.p50, 2) : null,
  searchMs: search,
  searchUnderGrantsMs: searchGranted,
  recallOverheadPerTurnMs: recall,
  concurrentCas: { writers: 8, updatesEach: 100, applied, queued, lost, finalVersion: final.version },
  vectors,
  targets: backend === 'sqlite' ? { rememberP50: '≤ 0.2 ms', searchP50: '≤ 2 ms', searchP99: '≤ 10 ms' } : 'reported',
};
if (args.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`shared memory on ${backend}, ${FACTS} facts, ${OPS} ops per figure`);
  console.log(`  remember crossing (boundary + write + ledger), sequential  p50 ${crossing.p50} ms  p99 ${crossing.p99} ms${raw ? `  (${result.rememberOverRaw}× the bare single-row tx, ${result.rawSingleRowTxMs} ms)` : ''}`);
  console.log(`  remember crossing, 8 concurrent (group commit)             p50 ${crossingBatched.p50} ms  p99 ${crossingBatched.p99} ms`);
  console.log(`  lexical search, k 10, all scopes                           p50 ${search.p50} ms  p99 ${search.p99} ms`);
  console.log(`  lexical search, k 10, under 3 read grants                  p50 ${searchGranted.p50} ms  p99 ${searchGranted.p99} ms`);
  console.log(`  recall added to a turn (k 5, 6-word query)                 p50 ${recall.p50} ms  p99 ${recall.p99} ms`);
  console.log(`  8 × 100 concurrent compare-and-set: applied ${applied}, in the merge queue ${queued}, lost ${lost}`);
  if (typeof vectors === 'string') console.log(`  vectors: ${vectors}`);
  else {
    console.log(`  write queuing its embedding (no boundary)                  p50 ${vectors.rememberQueuedMs.p50} ms  p99 ${vectors.rememberQueuedMs.p99} ms`);
    console.log(`  vector search, k 10, exact over ${vectors.facts} × ${vectors.dims}-d       p50 ${vectors.vectorSearchMs.p50} ms  p99 ${vectors.vectorSearchMs.p99} ms`);
    console.log(`  hybrid search (RRF of both lists, 40 deep each)            p50 ${vectors.hybridSearchMs.p50} ms  p99 ${vectors.hybridSearchMs.p99} ms`);
  }
  console.log(`  loading: ${result.loadFactsPerSec} facts/s`);
}
await store.close();
if (pgUrl) {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
}
rmSync(dir, { recursive: true, force: true });
