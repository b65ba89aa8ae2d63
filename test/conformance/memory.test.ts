// Shared memory as a store aggregate, on both backends: append-only versions, asOf
// reads, compare-and-set with its strategies and merge queue, a write that changes
// nothing, lexical search, read grants applied inside the query (a property test),
// tenants apart, forgetting with its cascade, the TTL sweep, and concurrent
// compare-and-set writers losing nothing.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { resolveGrants, scopeAllowed, type ScopeMatch } from '../../src/core/memory.ts';
import type { FactWrite, WrittenBy } from '../../src/store/memory.ts';
import type { Store } from '../../src/store/store.ts';
import { forge, tempStore } from '../helpers.ts';

const ALL: ScopeMatch[] = [{ all: true }];
const BY: WrittenBy = { agent: 'researcher', run: 'run_1', task: 'task_1', turn: 1, actor: 'w1' };

function put(store: Store, over: Partial<FactWrite> & { scope: string; key: string; value: FactWrite['value'] }, now: number) {
  return store.memory.write({ tenant: 'default', trust: 'agent', writtenBy: BY, onConflict: 'reject', ...over }, now);
}

async function fresh(t: TestContext): Promise<Store> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  return store;
}

test('versions are appended, never rewritten; asOf reads what was true then; history lists every version', async (t) => {
  const store = await fresh(t);
  const a = await put(store, { scope: 'team/research', key: 'pricing', value: { usd: 10 }, text: 'price is ten dollars', sources: ['env_1'] }, 1000);
  assert.equal(a.kind, 'written');
  const b = await put(store, { scope: 'team/research', key: 'pricing', value: { usd: 12 }, text: 'price is twelve dollars' }, 2000);
  assert.equal(b.kind === 'written' && b.fact.version, 2);
  assert.equal(b.kind === 'written' && b.fact.supersedes, 1);
  const q = { tenant: 'default', grants: ALL, scope: 'team/research', key: 'pricing' };
  assert.deepEqual((await store.memory.get(q, 3000))?.value, { usd: 12 });
  assert.deepEqual((await store.memory.get({ ...q, asOf: 1500 }, 3000))?.value, { usd: 10 });
  assert.equal(await store.memory.get({ ...q, asOf: 999 }, 3000), null, 'nothing before the first write');
  const h = await store.memory.history(q);
  assert.deepEqual(
    h.map((f) => [f.version, f.validFrom, f.validTo]),
    [
      [1, 1000, 2000],
      [2, 2000, null],
    ],
  );
  assert.deepEqual(h[0]!.sources, ['env_1']);
  assert.deepEqual(h[0]!.writtenBy, BY);
});

test('a write equal to the current value appends nothing', async (t) => {
  const store = await fresh(t);
  await put(store, { scope: 'global', key: 'k', value: { a: [1, 2] }, text: 't' }, 1000);
  const again = await put(store, { scope: 'global', key: 'k', value: { a: [1, 2] }, text: 't', expectedVersion: 1 }, 2000);
  assert.equal(again.kind, 'unchanged');
  assert.equal((await store.memory.history({ tenant: 'default', grants: ALL, scope: 'global', key: 'k' })).length, 1);
});

test('compare-and-set: reject leaves the fact and queues a rejected conflict; last-writer-wins and merge-json resolve, audited', async (t) => {
  const store = await fresh(t);
  await put(store, { scope: 'team/x', key: 'doc', value: { a: 1, b: { c: 2, d: 3 }, list: [1] } }, 1000);
  await put(store, { scope: 'team/x', key: 'doc', value: { a: 2, b: { c: 2, d: 3 }, list: [1] }, expectedVersion: 1 }, 1100);

  const rejected = await put(store, { scope: 'team/x', key: 'doc', value: { a: 99 }, expectedVersion: 1 }, 1200);
  assert.equal(rejected.kind, 'conflict');
  assert.equal(rejected.kind === 'conflict' && rejected.conflict.state, 'rejected');
  assert.equal(rejected.kind === 'conflict' && rejected.current?.version, 2);

  const merged = await put(store, { scope: 'team/x', key: 'doc', value: { b: { d: null, e: 5 }, list: [7, 8] }, expectedVersion: 1, onConflict: 'merge-json' }, 1300);
  assert.equal(merged.kind, 'written');
  assert.deepEqual(merged.kind === 'written' && merged.fact.value, { a: 2, b: { c: 2, e: 5 }, list: [7, 8] }, 'deep merge, null deletes, arrays replaced');
  assert.equal(merged.kind === 'written' && merged.conflict?.resolvedVersion, 3);

  const lww = await put(store, { scope: 'team/x', key: 'doc', value: { z: 1 }, expectedVersion: 2, onConflict: 'last-writer-wins' }, 1400);
  assert.deepEqual(lww.kind === 'written' && lww.fact.value, { z: 1 });

  const queued = await put(store, { scope: 'team/x', key: 'doc', value: { h: 1 }, expectedVersion: 1, onConflict: 'human' }, 1500);
  assert.equal(queued.kind === 'conflict' && queued.conflict.state, 'open', 'a human strategy leaves it in the merge queue');

  const conflicts = await store.memory.conflicts({ tenant: 'default' });
  assert.deepEqual(
    conflicts.map((c) => [c.strategy, c.state, c.resolvedVersion]),
    [
      ['reject', 'rejected', null],
      ['merge-json', 'resolved', 3],
      ['last-writer-wins', 'resolved', 4],
      ['human', 'open', null],
    ],
  );
  const { rows } = await forge<{ kind: string; data: string }>(store, `SELECT kind, data FROM audit_events WHERE kind LIKE 'memory.%' ORDER BY seq`);
  const resolved = rows.filter((r) => r.kind === 'memory.resolved').map((r) => JSON.parse(r.data) as { strategy: string; version: number; by: string });
  assert.deepEqual(
    resolved.map((r) => [r.strategy, r.version, r.by]),
    [
      ['merge-json', 3, 'strategy:merge-json'],
      ['last-writer-wins', 4, 'strategy:last-writer-wins'],
    ],
  );
});

test('search finds live facts by their words, best first, within the reader’s grants and scopes, one results contract', async (t) => {
  const store = await fresh(t);
  await put(store, { scope: 'team/research', key: 'a', value: 1, text: 'durable orchestration survives crashes' }, 1000);
  await put(store, { scope: 'team/research', key: 'b', value: 2, text: 'orchestration of agents' }, 1000);
  await put(store, { scope: 'team/secret', key: 'c', value: 3, text: 'durable orchestration secret plan' }, 1000);
  await put(store, { scope: 'team/research', key: 'old', value: 4, text: 'durable durable durable' }, 1000);
  await put(store, { scope: 'team/research', key: 'old', value: 5, text: 'nothing here' }, 1100);
  const hits = await store.memory.search({ tenant: 'default', grants: [{ tree: 'team/research' }], query: 'Durable orchestration!', k: 10 }, 2000);
  assert.deepEqual(
    hits.map((h) => h.fact.key),
    ['a', 'b'],
    'both words beat one; the secret scope is outside the grants; a superseded version is not found',
  );
  assert.ok(hits[0]!.score > hits[1]!.score);
  const narrowed = await store.memory.search({ tenant: 'default', grants: ALL, query: 'durable', k: 10, scopes: ['team/secret'] }, 2000);
  assert.deepEqual(
    narrowed.map((h) => h.fact.key),
    ['c'],
  );
  const past = await store.memory.search({ tenant: 'default', grants: ALL, query: 'durable', k: 10, asOf: 1050, scopes: ['team/research'] }, 2000);
  assert.deepEqual(past.map((h) => h.fact.key).sort(), ['a', 'old'], 'asOf search sees the version true then');
  assert.deepEqual(await store.memory.search({ tenant: 'default', grants: ALL, query: '"); DROP --', k: 10 }, 2000), [], 'punctuation is not syntax');
  assert.deepEqual(await store.memory.search({ tenant: 'other', grants: ALL, query: 'durable', k: 10 }, 2000), [], 'another tenant sees nothing');
});

test('read grants are applied inside the query: no get or search returns a fact outside them (property)', async (t) => {
  const store = await fresh(t);
  const scopes = ['global', 'team/research', 'team/research/deep', 'team/researchers', 'team/ops', 'agent/alice', 'agent/alice/notes', 'agent/bob', 'run/r1', 'run/r2', 'session/s1'];
  const words = ['alpha', 'beta', 'gamma'];
  let n = 0;
  for (const tenant of ['default', 't2']) {
    for (const scope of scopes) {
      for (const w of words) await put(store, { tenant, scope, key: `${w}${n++}`, value: n, text: `${w} shared fact` }, 1000);
    }
  }
  const patterns = ['*', 'global', 'team/research', 'team/research/*', 'team/*', 'agent/self/*', 'agent/self', 'run/*', 'session/*', 'agent/bob/*', 'team/ops'];
  await fc.assert(
    fc.asyncProperty(
      fc.subarray(patterns),
      fc.constantFrom('alice', 'bob'),
      fc.constantFrom('r1', 'r2', null),
      fc.constantFrom('default', 't2'),
      fc.constantFrom(...words),
      async (grant, agent, runId, tenant, word) => {
        const grants = resolveGrants(grant, { agent, runId, sessionKey: runId ? 's1' : null });
        const hits = await store.memory.search({ tenant, grants, query: word, k: 1000 }, 2000);
        for (const h of hits) {
          assert.ok(scopeAllowed(grants, h.fact.scope), `search returned ${h.fact.scope} outside ${JSON.stringify(grant)}`);
          assert.equal(h.fact.tenant, tenant);
        }
        const expected = scopes.filter((s) => scopeAllowed(grants, s)).length;
        assert.equal(hits.length, expected, 'and everything inside them');
        for (const scope of scopes) {
          const key = `${word}${scopes.indexOf(scope) * 3 + words.indexOf(word) + (tenant === 't2' ? scopes.length * 3 : 0)}`;
          const got = await store.memory.get({ tenant, grants, scope, key }, 2000);
          assert.equal(got !== null, scopeAllowed(grants, scope), `get ${scope}/${key} with ${JSON.stringify(grant)}`);
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('forget: a dry run lists what a run wrote and what was derived from it, writes nothing; the real one tombstones them, audited', async (t) => {
  const store = await fresh(t);
  const bad = { ...BY, run: 'run_bad' };
  const a = await put(store, { scope: 'team/r', key: 'claim', value: 'wrong', text: 'wrong claim', writtenBy: bad }, 1000);
  assert.equal(a.kind, 'written');
  const aId = a.kind === 'written' ? a.fact.id : '';
  const derived = await put(store, { scope: 'team/r', key: 'summary', value: 'built on wrong', sources: [aId], writtenBy: { ...BY, run: 'run_good' } }, 1100);
  const derived2 = await put(store, { scope: 'team/r', key: 'summary2', value: 'built on summary', sources: [derived.kind === 'written' ? derived.fact.id : ''] }, 1150);
  assert.equal(derived2.kind, 'written');
  await put(store, { scope: 'team/r', key: 'fine', value: 'ok', writtenBy: { ...BY, run: 'run_good' } }, 1200);
  const dry = await store.memory.forget({ tenant: 'default', run: 'run_bad' }, { dryRun: true, actor: 'op' }, 2000);
  assert.deepEqual(dry.map((f) => f.key), ['claim', 'summary', 'summary2']);
  const grants = ALL;
  assert.ok(await store.memory.get({ tenant: 'default', grants, scope: 'team/r', key: 'claim' }, 2000), 'a dry run changes nothing');
  const done = await store.memory.forget({ tenant: 'default', run: 'run_bad' }, { dryRun: false, actor: 'op' }, 2000);
  assert.deepEqual(done.map((f) => f.key), ['claim', 'summary', 'summary2']);
  for (const key of ['claim', 'summary', 'summary2']) assert.equal(await store.memory.get({ tenant: 'default', grants, scope: 'team/r', key }, 3000), null);
  assert.ok(await store.memory.get({ tenant: 'default', grants, scope: 'team/r', key: 'fine' }, 3000));
  assert.ok(await store.memory.get({ tenant: 'default', grants, scope: 'team/r', key: 'claim', asOf: 1500 }, 3000), 'history keeps what was true then');
  const h = await store.memory.history({ tenant: 'default', grants, scope: 'team/r', key: 'claim' });
  assert.deepEqual(h.map((f) => f.tombstone), [false, true]);
  const { rows } = await forge(store, `SELECT kind FROM audit_events WHERE kind = 'memory.forgotten'`);
  assert.equal(rows.length, 3);
  assert.deepEqual(await store.memory.search({ tenant: 'default', grants, query: 'wrong', k: 5 }, 3000), []);
  // By source: the envelope a version cites.
  await put(store, { scope: 'team/r', key: 'from-env', value: 1, sources: ['env_9'] }, 4000);
  assert.deepEqual((await store.memory.forget({ tenant: 'default', source: 'env_9' }, { dryRun: false, actor: 'op' }, 5000)).map((f) => f.key), ['from-env']);
});

test('TTL: an expired fact is not read; the sweeper tombstones it', async (t) => {
  const store = await fresh(t);
  await put(store, { scope: 'global', key: 'short', value: 1, text: 'short lived', expiresAt: 1500 }, 1000);
  const q = { tenant: 'default', grants: ALL, scope: 'global', key: 'short' };
  assert.ok(await store.memory.get(q, 1400));
  assert.equal(await store.memory.get(q, 1600), null);
  assert.deepEqual(await store.memory.search({ tenant: 'default', grants: ALL, query: 'short', k: 5 }, 1600), []);
  assert.equal(await store.memory.sweepExpired(1600, 100), 1);
  assert.equal(await store.memory.sweepExpired(1600, 100), 0);
  assert.deepEqual((await store.memory.history(q)).map((f) => f.tombstone), [false, true]);
});

test('8 writers × 100 concurrent compare-and-set updates of one key lose nothing: each is applied or in the merge queue', async (t) => {
  const store = await fresh(t);
  await put(store, { scope: 'team/c', key: 'counter', value: { n: 0 } }, 1);
  const q = { tenant: 'default', grants: ALL, scope: 'team/c', key: 'counter' };
  let applied = 0;
  let queued = 0;
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 100; i++) {
        const cur = await store.memory.get(q, Date.now());
        const n = (cur!.value as { n: number }).n;
        const r = await store.memory.write(
          { tenant: 'default', scope: 'team/c', key: 'counter', value: { n: n + 1, [`w${w}`]: i }, expectedVersion: cur!.version, trust: 'agent', writtenBy: { ...BY, actor: `w${w}` }, onConflict: 'reject' },
          Date.now(),
        );
        if (r.kind === 'written') applied++;
        else if (r.kind === 'conflict') queued++;
        else assert.fail(`unexpected ${r.kind}`);
      }
    }),
  );
  t.diagnostic(`applied ${applied}, conflicts queued ${queued}`);
  assert.equal(applied + queued, 800);
  const final = await store.memory.get(q, Date.now());
  assert.equal((final!.value as { n: number }).n, applied, 'every applied update counted once: no lost update');
  assert.equal(final!.version, applied + 1);
  assert.equal((await store.memory.conflicts({ tenant: 'default' })).length, queued);
});
