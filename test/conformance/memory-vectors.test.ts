// Vector and hybrid search of shared memory, on both backends: a deterministic fake
// embedder agent, the durable embedding queue and its backfill, read grants inside
// the vector query, Reciprocal Rank Fusion, the embedder's contract, and the refusal
// at start of a config asking for vectors on a store that cannot search them
// (PostgreSQL without pgvector names the fix).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RRF_K, fuseRanks, type ScopeMatch } from '../../src/core/memory.ts';
import { silentLogger } from '../../src/core/log.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { EmbeddingBackfill } from '../../src/memory/embed-backfill.ts';
import { embedderOf, type Embed } from '../../src/memory/embedder.ts';
import { searchMemory } from '../../src/memory/search.ts';
import { DEFAULT_MEMORY, type EmbedderSettings } from '../../src/memory/settings.ts';
import { requireVectors } from '../../src/memory/vectors.ts';
import type { FactWrite, WrittenBy } from '../../src/store/memory.ts';
import type { Store } from '../../src/store/store.ts';
import { FAKE_DIMS, fakeEmbedder } from '../fixtures/fake-embedder.ts';
import { forge, tempStore } from '../helpers.ts';

const ALL: ScopeMatch[] = [{ all: true }];
const BY: WrittenBy = { agent: 'researcher', run: 'run_1', task: 'task_1', turn: 1, actor: 'w1' };
const SETTINGS: EmbedderSettings = { agent: 'embedder', dimensions: FAKE_DIMS, batch: 2 };

function put(store: Store, over: Partial<FactWrite> & { scope: string; key: string; text: string }, now: number) {
  return store.memory.write({ tenant: 'default', value: { text: over.text }, trust: 'agent', writtenBy: BY, onConflict: 'reject', embed: true, ...over }, now);
}

async function fresh(t: TestContext): Promise<Store> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  return store;
}

/** A store with vectors, or null (the test is skipped) where this backend has none: PostgreSQL without pgvector. */
async function withVectors(t: TestContext): Promise<{ store: Store; embed: Embed; calls: { n: number }; backfill: EmbeddingBackfill; clock: ManualClock } | null> {
  const store = await fresh(t);
  const missing = await store.memory.vectorSupport();
  if (missing) {
    t.skip(missing);
    return null;
  }
  const calls = { n: 0 };
  const agent = fakeEmbedder(calls);
  const embed = embedderOf(SETTINGS, (name) => (name === 'embedder' ? { agent, timeoutMs: 5_000 } : undefined))!;
  const clock = new ManualClock(10_000);
  const backfill = new EmbeddingBackfill({ store, clock, log: silentLogger, settings: SETTINGS, embed });
  return { store, embed, calls, backfill, clock };
}

async function drain(b: EmbeddingBackfill): Promise<number> {
  let total = 0;
  for (let n = await b.passOnce(); n > 0; n = await b.passOnce()) total += n;
  return total;
}

const keys = (hits: Array<{ fact: { key: string } }>) => hits.map((h) => h.fact.key);

test('SQLite loads sqlite-vec: the store reports the vectors capability', async (t) => {
  const store = await fresh(t);
  if (store.capabilities.vectors === 'pgvector') return t.skip('PostgreSQL: pgvector is probed per database');
  assert.equal(store.capabilities.vectors, 'sqlite-vec');
  assert.equal(await store.memory.vectorSupport(), null);
});

test('facts are embedded after the write by the backfill; vector search finds meaning that lexical search misses', async (t) => {
  const v = await withVectors(t);
  if (!v) return;
  const { store, embed, calls, backfill } = v;
  await put(store, { scope: 'team/a', key: 'car', text: 'the car is red' }, 1000);
  await put(store, { scope: 'team/a', key: 'cat', text: 'a cat sleeps all day' }, 1001);
  await put(store, { scope: 'team/a', key: 'price', text: 'the price is ten dollars' }, 1002);
  assert.equal(calls.n, 0, 'remember never waits on the embedder');
  assert.equal(await drain(backfill), 3);
  assert.equal(calls.n, 2, 'two batches of at most 2 texts');

  const q = { tenant: 'default', grants: ALL, k: 3 };
  assert.deepEqual(keys(await searchMemory(store, embed, { ...q, query: 'automobile', mode: 'lexical' }, 2000)), [], 'no shared word');
  const near = await searchMemory(store, embed, { ...q, query: 'automobile', mode: 'vector' }, 2000);
  assert.equal(near[0]?.fact.key, 'car', 'the synonym shares the car’s slot');
  assert.ok(near[0].score > 0.4 && near[0].score <= 1.0001, `cosine similarity, got ${near[0].score}`);
  assert.ok(near.slice(1).every((h) => h.score < near[0]!.score), 'the others are further');
  assert.equal(keys(await searchMemory(store, embed, { ...q, query: 'kitten', mode: 'vector', k: 1 }, 2000))[0], 'cat');
});

test('hybrid ranks by Reciprocal Rank Fusion (k = 60) of the lexical and vector lists', async (t) => {
  const v = await withVectors(t);
  if (!v) return;
  const { store, embed, backfill } = v;
  // "price" lexically: only p1 and p2 say "price"; by meaning, "cost" (a synonym) brings p3 close too.
  await put(store, { scope: 'team/a', key: 'p1', text: 'price price price of apples' }, 1000);
  await put(store, { scope: 'team/a', key: 'p2', text: 'the price of pears and plums and figs' }, 1001);
  await put(store, { scope: 'team/a', key: 'p3', text: 'cost' }, 1002);
  await put(store, { scope: 'team/a', key: 'x', text: 'nothing related at all' }, 1003);
  await drain(backfill);
  const q = { tenant: 'default', grants: ALL, k: 4, query: 'price' };
  const words = await searchMemory(store, embed, { ...q, mode: 'lexical' }, 2000);
  const meaning = await searchMemory(store, embed, { ...q, mode: 'vector' }, 2000);
  const hybrid = await searchMemory(store, embed, { ...q, mode: 'hybrid' }, 2000);
  const expected = fuseRanks([words, meaning], (h) => h.fact.id, 4);
  assert.deepEqual(keys(hybrid), expected.map((e) => e.item.fact.key));
  assert.deepEqual(
    hybrid.map((h) => h.score),
    expected.map((e) => e.score),
  );
  assert.ok(keys(hybrid).includes('p3'), 'the vector list brings in what no word matched');
  assert.equal(hybrid[0]!.score, 1 / (RRF_K + 1) + 1 / (RRF_K + keys(meaning).indexOf(hybrid[0]!.fact.key) + 1), 'a fact found in both lists adds both votes');
  // Default mode: hybrid when an embedder is configured, lexical when not.
  assert.deepEqual(keys(await searchMemory(store, embed, q, 2000)), keys(hybrid));
  assert.deepEqual(keys(await searchMemory(store, null, q, 2000)), keys(words));
});

test('read grants are applied inside the vector query: the nearest fact outside them is never returned', async (t) => {
  const v = await withVectors(t);
  if (!v) return;
  const { store, embed, backfill } = v;
  await put(store, { scope: 'team/secret', key: 'exact', text: 'car car car' }, 1000);
  await put(store, { scope: 'team/open', key: 'far', text: 'a vehicle and a dog and a tree' }, 1001);
  await put(store, { tenant: 'other', scope: 'team/open', key: 'tenant', text: 'car car car' }, 1002);
  await drain(backfill);
  const open: ScopeMatch[] = [{ tree: 'team/open' }];
  for (const mode of ['vector', 'hybrid'] as const) {
    const hits = await searchMemory(store, embed, { tenant: 'default', grants: open, query: 'car', k: 10, mode }, 2000);
    assert.deepEqual(keys(hits), ['far'], `${mode}: only what the grants cover, in this tenant`);
  }
  assert.deepEqual(keys(await searchMemory(store, embed, { tenant: 'default', grants: [], query: 'car', k: 10, mode: 'vector' }, 2000)), [], 'no grants, nothing');
  assert.deepEqual(keys(await searchMemory(store, embed, { tenant: 'default', grants: ALL, query: 'car', k: 10, mode: 'vector', scopes: ['team/open'] }, 2000)), ['far'], 'narrowed to a scope');
});

test('the queue: a replaced version is dropped, not embedded; facts written before vectors are backfilled', async (t) => {
  const v = await withVectors(t);
  if (!v) return;
  const { store, embed, backfill } = v;
  await put(store, { scope: 'global', key: 'old', text: 'written before vectors: a car', embed: false }, 500);
  await put(store, { scope: 'global', key: 'k', text: 'first: a cat' }, 1000);
  await put(store, { scope: 'global', key: 'k', text: 'second: a car', expectedVersion: 1 }, 1100);
  assert.equal(await drain(backfill), 2, 'the replaced first version is dropped; "old" is queued by the backfill');
  const hits = await searchMemory(store, embed, { tenant: 'default', grants: ALL, query: 'automobile', k: 5, mode: 'vector' }, 2000);
  assert.deepEqual(keys(hits).sort(), ['k', 'old']);
  assert.equal(hits.find((h) => h.fact.key === 'k')!.fact.version, 2);
  assert.equal(Number((await forge<{ n: number | string }>(store, 'SELECT COUNT(*) AS n FROM memory_embed_queue')).rows[0]!.n), 0, 'the queue is empty');
});

test('an embedder that breaks its contract fails the batch, which stays queued; a search that needs it fails clearly', async (t) => {
  const v = await withVectors(t);
  if (!v) return;
  const { store, clock } = v;
  await put(store, { scope: 'global', key: 'k', text: 'a car' }, 1000);
  const { FunctionAgent } = await import('../../src/agents/function-agent.ts');
  const bad = new FunctionAgent(() => ({ output: { vectors: [[1, 2]] } }));
  const embed = embedderOf(SETTINGS, () => ({ agent: bad, timeoutMs: 5_000 }))!;
  const backfill = new EmbeddingBackfill({ store, clock, log: silentLogger, settings: SETTINGS, embed });
  await assert.rejects(backfill.passOnce(), (e: Error & { code?: string }) => e.code === 'AGENT_PROTOCOL' && /vectors\[0\] is not 48 numbers long/.test(e.message));
  assert.equal(Number((await forge<{ n: number | string }>(store, 'SELECT COUNT(*) AS n FROM memory_embed_queue')).rows[0]!.n), 1, 'still queued for the next pass');
  await assert.rejects(searchMemory(store, embed, { tenant: 'default', grants: ALL, query: 'car', k: 5, mode: 'vector' }, 2000), { code: 'AGENT_PROTOCOL' });
});

test('vector or hybrid search without an embedder is refused, naming mode and the config key', async (t) => {
  const store = await fresh(t);
  for (const mode of ['vector', 'hybrid'] as const) {
    await assert.rejects(searchMemory(store, null, { tenant: 'default', grants: ALL, query: 'car', k: 5, mode }, 2000), (e: Error & { code?: string }) => e.code === 'INVALID_INPUT' && /^mode: .*memory\.embedder/.test(e.message));
  }
});

test('a config asking for vectors is refused at start when the store cannot search them, naming the fix', async (t) => {
  const store = await fresh(t);
  const settings = { ...DEFAULT_MEMORY, embedder: SETTINGS };
  await requireVectors(store, DEFAULT_MEMORY); // no embedder: nothing is asked of the store
  const missing = await store.memory.vectorSupport();
  if (!missing) {
    await requireVectors(store, settings);
    return;
  }
  // PostgreSQL without pgvector (this machine's): the error says what to install.
  assert.equal(store.capabilities.vectors, 'pgvector');
  await assert.rejects(requireVectors(store, settings), (e: Error & { code?: string; status?: number }) => {
    assert.equal(e.code, 'VECTORS_UNAVAILABLE');
    assert.equal(e.status, 503);
    assert.match(e.message, /^memory\.embedder needs vector search, and PostgreSQL: the pgvector extension is not installed on this server/);
    assert.match(e.message, /install pgvector \(https:\/\/github\.com\/pgvector\/pgvector\), run `CREATE EXTENSION vector;`, or remove memory\.embedder/);
    return true;
  });
});
