// Store faults at the Store port, on both backends: a full disk and a read-only
// database make every write fail with STORE_UNAVAILABLE (retryable, HTTP 503, exit 5)
// and change nothing, `checkWritable` (what /readyz asks) says so, reads keep working,
// and both recover once the fault clears — on the same store, with no restart. A
// statement that is wrong (a constraint violation) stays what it is and fails only its
// own caller, even inside a group commit.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { StoreUnavailableError } from '../../src/core/errors.ts';
import type { Store } from '../../src/store/store.ts';
import { forge, tempStore } from '../helpers.ts';
import { injectFault, type StoreFault } from '../fixtures/store-faults.ts';

async function setup(t: TestContext): Promise<Store> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  return store;
}

/** Rows in the tables a run's creation writes, read on a connection of its own. */
async function counts(store: Store): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['runs', 'tasks', 'audit_events', 'workers']) {
    const { rows } = await forge<{ n: number | string }>(store, `SELECT COUNT(*) AS n FROM ${table}`);
    out[table] = Number(rows[0]!.n);
  }
  return out;
}

function isUnavailable(err: unknown): boolean {
  assert.ok(err instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(err)}`);
  assert.equal(err.code, 'STORE_UNAVAILABLE');
  assert.equal(err.retryable, true);
  assert.equal(err.status, 503);
  assert.equal(err.exitCode, 5);
  return true;
}

/** A run whose input needs many new pages (SQLite's full disk refuses only writes that grow the file). */
const big = (n: number) => ({ agent: 'a', input: { blob: `${n}:`.padEnd(256 * 1024, 'x') }, maxAttempts: 1 });
const small = { agent: 'a', input: 'hi', maxAttempts: 1 };

for (const fault of ['disk-full', 'read-only'] as const satisfies readonly StoreFault[]) {
  describe(`a ${fault} store`, () => {
    it('fails every write with STORE_UNAVAILABLE and changes nothing; reads keep working', async (t) => {
      const store = await setup(t);
      const before = await store.runs.create(small, Date.now());
      await store.checkWritable(Date.now());
      // Not cleared: the store is closed (and a PostgreSQL schema dropped) when the test ends.
      await injectFault(store, fault);
      const rowsBefore = await counts(store);

      await assert.rejects(store.runs.create(big(1), Date.now()), isUnavailable);
      // Several callers in one group commit (SQLite): every one of them gets the fault, none is half-written.
      const batch = await Promise.allSettled([
        store.runs.create(small, Date.now()),
        store.runs.create(big(2), Date.now()),
        store.workers.register({ id: 'w-during-fault', pid: 1, host: 'h' }, Date.now()),
      ]);
      for (const r of batch) assert.ok(r.status === 'rejected' && isUnavailable(r.reason), JSON.stringify(r));
      assert.deepEqual(await counts(store), rowsBefore, 'nothing was written');

      // Reads are not writes.
      assert.equal((await store.runs.get(before.run.id))?.id, before.run.id);
      assert.equal((await store.runs.list({ limit: 10 })).length, 1);
    });

    it('checkWritable throws while the fault lasts, and the store writes again once it clears', async (t) => {
      const store = await setup(t);
      const clear = await injectFault(store, fault);
      await assert.rejects(store.checkWritable(Date.now()), isUnavailable);
      await assert.rejects(store.runs.create(big(3), Date.now()), isUnavailable);
      await assert.rejects(store.checkWritable(Date.now()), isUnavailable, 'still unavailable: a failed write does not clear the fault');

      await clear();
      const now = Date.now();
      await store.checkWritable(now);
      const { run } = await store.runs.create(big(4), now);
      assert.equal((await store.runs.get(run.id))?.state, 'running');
      // The writer connection is healthy again: a claim and a commit go through.
      const [claimed] = await store.tasks.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: Date.now() });
      assert.equal(claimed?.task.runId, run.id);
      await store.commitTurn({ lease: claimed.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 'done' }, outcome: { kind: 'succeed', output: 'done' }, audit: [] });
      assert.equal((await store.runs.get(run.id))?.state, 'succeeded');
    });
  });
}

describe('checkWritable', () => {
  it('commits a real write: the probe row holds the time it was called with', async (t) => {
    const store = await setup(t);
    await store.checkWritable(1_000);
    await store.checkWritable(2_000);
    const { rows } = await forge<{ id: number | string; written_at: number | string }>(store, 'SELECT id, written_at FROM store_probe');
    assert.deepEqual(
      rows.map((r) => [Number(r.id), Number(r.written_at)]),
      [[1, 2_000]],
    );
  });
});

describe('a statement that is wrong is not a store fault', () => {
  it('a constraint violation fails its own caller only, with its own error; the others in the same commit succeed', async (t) => {
    const store = await setup(t);
    await store.workers.register({ id: 'w1', pid: 1, host: 'h' }, Date.now());
    const [dup, run, other] = await Promise.allSettled([
      store.workers.register({ id: 'w1', pid: 2, host: 'h' }, Date.now()),
      store.runs.create(small, Date.now()),
      store.workers.register({ id: 'w2', pid: 3, host: 'h' }, Date.now()),
    ]);
    assert.equal(dup.status, 'rejected');
    assert.ok(!(dup.reason instanceof StoreUnavailableError), `a duplicate key is not STORE_UNAVAILABLE: ${String(dup.reason)}`);
    assert.match(String((dup.reason as Error).message), /unique|duplicate/i);
    assert.equal(run.status, 'fulfilled');
    assert.equal(other.status, 'fulfilled');
    assert.deepEqual((await store.workers.list({})).map((w) => [w.id, w.pid]), [
      ['w1', 1],
      ['w2', 3],
    ]);
    await store.checkWritable(Date.now());
  });
});

describe('a closed store', () => {
  it('answers reads, writes and checkWritable with STORE_UNAVAILABLE, not a bug', async (t) => {
    const store = await setup(t);
    const { run } = await store.runs.create(small, Date.now());
    await store.close();
    await assert.rejects(store.runs.get(run.id), isUnavailable);
    await assert.rejects(store.runs.create(small, Date.now()), isUnavailable);
    await assert.rejects(store.checkWritable(Date.now()), isUnavailable);
  });
});
