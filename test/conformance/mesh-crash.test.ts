/**
 * What a crash means around a direct call (docs/mesh.md), with a real worker process
 * that is SIGKILLed (fault injection kills it with SIGKILL at a named point):
 *   - right after the call returned to the caller (its turn, with the answer, is
 *     committed: `after-commit`): `mesh.call` and `mesh.reply` are both in the store,
 *     and a new worker goes on from the next turn without calling again;
 *   - mid-call (the answer in hand, the caller's turn not committed:
 *     `after-effect-before-commit`): `mesh.call` is in the store without `mesh.reply`;
 *     a new worker retries the caller's turn as a whole, the call with it, under the
 *     same idempotency key.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Json } from '../../src/core/types.ts';
import type { Store } from '../../src/store/store.ts';
import { Children } from '../fixtures/child.ts';
import { auditOf, finished, tempStore } from '../helpers.ts';

const data = (e: { data?: Json }): Record<string, Json> => (e.data ?? {}) as Record<string, Json>;
const meshEvents = async (store: Store, runId: string) => (await auditOf(store, runId)).filter((e) => e.kind.startsWith('mesh.'));

/** Starts a worker that kills itself at `fault`, submits one mesh run, and waits for the SIGKILL. */
async function crashAt(t: TestContext, fault: string) {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const work = join(dir, 'data');
  mkdirSync(work);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });
  const doomed = children.spawn({ db: url, dir: work, scenario: 'mesh', leaseMs: 1_000, heartbeatMs: 200, faults: fault });
  await doomed.ready;
  const { run } = await store.runs.create({ agent: 'lead', input: null, maxAttempts: 3, actor: 'test' }, Date.now());
  const exit = await doomed.exited;
  assert.equal(exit.signal, 'SIGKILL', `the worker dies by SIGKILL (stderr: ${doomed.stderr()})`);
  assert.match(doomed.stderr(), new RegExp(`SIGKILL at ${fault}`));
  /** A new worker takes the task over once the dead one's lease lapses. */
  const resume = async () => {
    const next = children.spawn({ db: url, dir: work, scenario: 'mesh', leaseMs: 1_000, heartbeatMs: 200 });
    await next.ready;
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { price: 42 });
  };
  return { store, run, key: `${run.id}/${run.rootTaskId}/1/0`, resume };
}

test('killed right after the call returned: mesh.call and mesh.reply are on record, and the call is not made again', { timeout: 60_000 }, async (t) => {
  const { store, run, key, resume } = await crashAt(t, 'after-commit');
  const before = await meshEvents(store, run.id);
  assert.deepEqual(before.map((e) => e.kind), ['mesh.call', 'mesh.reply']);
  assert.deepEqual(before.map((e) => data(e).key), [key, key]);
  assert.equal(data(before[1]!).ok, true);
  assert.equal(data(before[1]!).call, data(before[0]!).call);
  assert.equal((await store.tasks.get(run.rootTaskId))!.turns, 1, 'the turn that received the answer is committed');

  await resume();
  assert.deepEqual((await meshEvents(store, run.id)).map((e) => e.kind), ['mesh.call', 'mesh.reply'], 'no second call');
});

test('killed mid-call: mesh.call is on record without mesh.reply, and the caller’s turn is retried as a whole', { timeout: 60_000 }, async (t) => {
  const { store, run, key, resume } = await crashAt(t, 'after-effect-before-commit');
  const before = await meshEvents(store, run.id);
  assert.deepEqual(before.map((e) => e.kind), ['mesh.call']);
  assert.equal(data(before[0]!).key, key);
  assert.equal((await store.tasks.get(run.rootTaskId))!.turns, 0, 'the caller’s turn was never committed');

  await resume();
  const after = await meshEvents(store, run.id);
  assert.deepEqual(after.map((e) => e.kind), ['mesh.call', 'mesh.call', 'mesh.reply']);
  assert.ok(after.every((e) => data(e).key === key), 'the retried call carries the same idempotency key');
  assert.notEqual(data(after[1]!).call, data(after[0]!).call, 'a new call: no durable retry inside a direct call');
  assert.equal(data(after[2]!).call, data(after[1]!).call);
});
