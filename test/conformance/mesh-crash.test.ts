/**
 * A direct call's shadow records survive the caller's death: a real worker process
 * makes a mesh call and is SIGKILLed right after the call returns (fault point
 * `after-effect-before-commit`: the answer is in hand, the caller's turn not yet
 * committed). `mesh.call` and `mesh.reply` are in the store; the turn is not. A new
 * worker retries the caller's turn as a whole, and with it the call, under the same key.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Json } from '../../src/core/types.ts';
import { Children } from '../fixtures/child.ts';
import { auditOf, finished, tempStore } from '../helpers.ts';

const data = (e: { data?: Json }): Record<string, Json> => (e.data ?? {}) as Record<string, Json>;

test('mesh.call and mesh.reply are committed when the caller is SIGKILLed right after the call returns', { timeout: 60_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const work = join(dir, 'data');
  mkdirSync(work);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });

  const doomed = children.spawn({ db: url, dir: work, scenario: 'mesh', leaseMs: 1_000, heartbeatMs: 200, faults: 'after-effect-before-commit' });
  await doomed.ready;
  const { run } = await store.runs.create({ agent: 'lead', input: null, maxAttempts: 3, actor: 'test' }, Date.now());
  const exit = await doomed.exited;
  assert.equal(exit.signal, 'SIGKILL', `the worker dies by SIGKILL (stderr: ${doomed.stderr()})`);
  assert.match(doomed.stderr(), /SIGKILL at after-effect-before-commit/);

  // The shadow records are on disk; the caller's turn is not.
  const before = (await auditOf(store, run.id)).filter((e) => e.kind.startsWith('mesh.'));
  assert.deepEqual(before.map((e) => e.kind), ['mesh.call', 'mesh.reply']);
  const key = `${run.id}/${run.rootTaskId}/1/0`;
  assert.deepEqual(before.map((e) => data(e).key), [key, key]);
  assert.equal(data(before[1]!).ok, true);
  assert.equal(data(before[1]!).call, data(before[0]!).call);
  assert.equal((await store.tasks.get(run.rootTaskId))!.turns, 0, 'the caller’s turn was never committed');

  // A new worker takes the task over once the dead one's lease lapses, and retries the turn, call included.
  const next = children.spawn({ db: url, dir: work, scenario: 'mesh', leaseMs: 1_000, heartbeatMs: 200 });
  await next.ready;
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(done.output, { price: 42 });
  const after = (await auditOf(store, run.id)).filter((e) => e.kind.startsWith('mesh.'));
  assert.deepEqual(after.map((e) => e.kind), ['mesh.call', 'mesh.reply', 'mesh.call', 'mesh.reply']);
  assert.ok(after.every((e) => data(e).key === key), 'the retried call carries the same idempotency key');
  assert.notEqual(data(after[2]!).call, data(after[0]!).call, 'a new call: no durable retry inside a direct call');
});
