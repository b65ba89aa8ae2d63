/**
 * Lease expiry: a worker that dies holding a lease is forged (a task claimed as
 * `dead-worker`, its lease_expires_at moved into the past straight in the database
 * (helpers' `forge`, on SQLite or PostgreSQL), so no test sleeps for a lease to run out). A live worker must reclaim the
 * task and finish it; the dead worker's stale lease must be fenced off; a task whose
 * workers keep dying must be dead-lettered; and a turn the dead worker had already
 * decided must be resumed without asking the agent again.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { ToolContext } from '../../src/core/agent.ts';
import { digest } from '../../src/core/digest.ts';
import { LeaseLostError } from '../../src/core/errors.ts';
import type { Action, Json, Run } from '../../src/core/types.ts';
import type { Registry, WorkerOptions } from '../../src/engine/options.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import type { Worker } from '../../src/engine/worker.ts';
import { effectKey, type ClaimedTask, type Store } from '../../src/store/store.ts';
import { finished, forge, registry, startWorker, tempStore } from '../helpers.ts';

interface Env {
  store: Store;
  /** Starts a real worker (on `via`, default the store), stopped when the test ends. */
  start: (reg: Registry, opts?: { via?: Store; options?: Partial<WorkerOptions> }) => Promise<Worker>;
}

async function setup(t: TestContext): Promise<Env> {
  const { store, cleanup } = await tempStore();
  const workers: Worker[] = [];
  t.after(async () => {
    for (const w of workers) await w.stop();
    await cleanup();
  });
  return {
    store,
    start: async (reg, opts = {}) => {
      const w = await startWorker(opts.via ?? store, reg, opts.options);
      workers.push(w);
      return w;
    },
  };
}

async function submit(store: Store, reg: Registry, agent: string, input: Json = null): Promise<Run> {
  return (await submitRun(store, reg, { agent, input, actor: 'test' }, Date.now())).run;
}

/** Leases the one ready task to a worker that will never heartbeat. */
async function claimAs(store: Store, workerId: string): Promise<ClaimedTask> {
  const claimed = await store.tasks.claim({ workerId, limit: 1, leaseMs: 60_000, now: Date.now() });
  assert.equal(claimed.length, 1, `${workerId} claims the task`);
  assert.equal(claimed[0]!.task.state, 'running');
  assert.equal(claimed[0]!.lease.owner, workerId);
  return claimed[0]!;
}

/** Moves a lease's expiry into the past, as if its worker had died long ago: no sleeping. */
async function forgeExpiry(store: Store, taskId: string): Promise<void> {
  const { changes } = await forge(store, `UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND state IN ('leased', 'running')`, [Date.now() - 60_000, taskId]);
  assert.equal(changes, 1, 'the forged task holds a lease');
}

test('a dead worker’s expired lease is reclaimed by a live worker, which runs the task to success', async (t) => {
  const { store, start } = await setup(t);
  let calls = 0;
  const reg = registry({
    solo: () => {
      calls++;
      return { output: { done: true } };
    },
  });
  const run = await submit(store, reg, 'solo');
  const dead = await claimAs(store, 'dead-worker');
  await forgeExpiry(store, dead.task.id);

  const worker = await start(reg);
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.output, { done: true });
  assert.equal(calls, 1);

  const task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.state, 'succeeded');
  assert.equal(task.reclaims, 1);
  assert.equal(task.attempt, 0, 'a lost lease is not a failed attempt');
  assert.equal(task.leaseNo, 2, 'the new worker holds a newer lease number');
  const audit = await store.audit.list({ runId: run.id, limit: 1_000 });
  const reclaimed = audit.filter((a) => a.kind === 'task.reclaimed');
  assert.equal(reclaimed.length, 1);
  assert.equal(reclaimed[0]!.actor, 'reaper');
  assert.deepEqual(reclaimed[0]!.data, { reclaims: 1 });
  const leases = audit.filter((a) => a.kind === 'task.leased').map((a) => a.actor);
  assert.deepEqual(leases, ['dead-worker', worker.id]);

  // The dead worker wakes up and tries to commit with its stale lease: fenced.
  await assert.rejects(
    store.commitTurn({
      lease: dead.lease,
      now: Date.now(),
      turn: { n: 1, actions: [], results: [], output: { stale: true } },
      outcome: { kind: 'succeed', output: { stale: true } },
      audit: [],
    }),
    LeaseLostError,
  );
  assert.deepEqual((await store.runs.get(run.id))!.output, { done: true }, 'the stale commit changed nothing');
});

test('fencing: after a takeover the stale lease can neither decide, commit, heartbeat nor release', async (t) => {
  const { store } = await setup(t);
  const reg = registry({ solo: () => ({ output: 'unused' }) });
  const run = await submit(store, reg, 'solo');
  const dead = await claimAs(store, 'dead-worker');
  assert.equal(await store.tasks.reclaimExpired(Date.now(), reg.limits.maxReclaims), 0, 'a live lease is not reclaimed');

  await forgeExpiry(store, dead.task.id);
  assert.equal(await store.tasks.reclaimExpired(Date.now(), reg.limits.maxReclaims), 1);
  const live = await claimAs(store, 'new-worker');
  assert.equal(live.lease.leaseNo, dead.lease.leaseNo + 1);

  const staleTurn = { n: 1, actions: [], results: [], output: 'stale' };
  await assert.rejects(store.commitTurn({ lease: dead.lease, now: Date.now(), turn: staleTurn, outcome: { kind: 'succeed', output: 'stale' }, audit: [] }), LeaseLostError);
  await assert.rejects(store.commitTurn({ lease: dead.lease, now: Date.now(), outcome: { kind: 'dead', error: { code: 'X', message: 'stale', retryable: false } }, audit: [] }), LeaseLostError);
  await assert.rejects(store.tasks.recordDecision(dead.lease, { n: 1, actions: [], usage: null, audit: [] }, Date.now()), LeaseLostError);
  assert.deepEqual(await store.tasks.heartbeat('dead-worker', Date.now() + 60_000, Date.now()), [], 'the dead worker holds nothing');
  assert.deepEqual(await store.tasks.heartbeat('dead-worker', Date.now() + 60_000, Date.now(), [dead.task.id]), []);
  // A heartbeat restricted to the turns a worker is running leaves its other leases to expire.
  const before = (await store.tasks.get(run.rootTaskId))!.leaseExpiresAt;
  assert.deepEqual(await store.tasks.heartbeat('new-worker', Date.now() + 120_000, Date.now(), []), []);
  assert.equal((await store.tasks.get(run.rootTaskId))!.leaseExpiresAt, before, 'not extended');
  assert.deepEqual(await store.tasks.heartbeat('new-worker', Date.now() + 120_000, Date.now(), [live.task.id]), [live.task.id]);
  await store.tasks.release([dead.lease], Date.now());
  let task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.state, 'running');
  assert.equal(task.leaseOwner, 'new-worker', 'a stale release does not hand back the new owner’s lease');
  assert.equal(task.turns, 0);

  // The new owner commits normally.
  await store.commitTurn({ lease: live.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 'fresh' }, outcome: { kind: 'succeed', output: 'fresh' }, audit: [] });
  task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.state, 'succeeded');
  assert.equal((await store.runs.get(run.id))!.output, 'fresh');
});

test('a task reclaimed more than limits.maxReclaims times goes dead with LEASE_EXPIRED_TOO_OFTEN', async (t) => {
  const { store, start } = await setup(t);
  let calls = 0;
  const reg = registry(
    {
      poison: () => {
        calls++;
        return { output: 'never' };
      },
    },
    {},
    { limits: { maxReclaims: 2 } },
  );
  const run = await submit(store, reg, 'poison');
  for (let i = 1; i <= reg.limits.maxReclaims; i++) {
    const dead = await claimAs(store, `dead-worker-${i}`);
    await forgeExpiry(store, dead.task.id);
    assert.equal(await store.tasks.reclaimExpired(Date.now(), reg.limits.maxReclaims), 1);
    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.state, 'queued', `after ${i} reclaims the task is still queued`);
    assert.equal(task.reclaims, i);
  }
  // One more dead worker; the live worker's reaper finds it before it claims anything.
  const last = await claimAs(store, 'dead-worker-last');
  await forgeExpiry(store, last.task.id);
  await start(reg);
  const done = await finished(store, run.id);
  assert.equal(done.state, 'failed');
  assert.equal(done.error?.code, 'LEASE_EXPIRED_TOO_OFTEN');
  assert.equal(done.error?.retryable, false);
  const task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.state, 'dead');
  assert.equal(task.reclaims, reg.limits.maxReclaims + 1);
  assert.equal(task.error?.code, 'LEASE_EXPIRED_TOO_OFTEN');
  assert.equal(calls, 0, 'the poison task was never run again');
  const kinds = (await store.audit.list({ runId: run.id, limit: 1_000 })).map((a) => a.kind);
  assert.equal(kinds.filter((k) => k === 'task.reclaimed').length, reg.limits.maxReclaims + 1);
  assert.ok(kinds.includes('task.dead'));
  assert.ok(kinds.includes('run.failed'));
});

/** An agent whose turn 1 asks for one `note` tool call and whose turn 2 returns that result. */
function resumer(toolValue: Json) {
  const turnsAsked: number[] = [];
  const invocations: Array<{ key: string; maybeRepeated: boolean }> = [];
  const action: Action = { type: 'tool', tool: 'note', input: { x: 1 } };
  const reg = registry(
    {
      resumer: (input) => {
        turnsAsked.push(input.task.turn);
        if (input.task.turn === 1) return { actions: [action] };
        return { output: { got: input.results[0] as unknown as Json } };
      },
    },
    {
      note: (_input: Json, ctx: ToolContext) => {
        invocations.push({ key: ctx.idempotencyKey, maybeRepeated: ctx.maybeRepeated });
        return toolValue;
      },
    },
  );
  return { reg, action, turnsAsked, invocations };
}

/** The dead worker asked the agent for turn 1 and recorded its decision, then died before committing. */
async function decideAndDie(store: Store, run: Run, action: Action, opts: { completeWith?: Json } = {}) {
  const dead = await claimAs(store, 'dead-worker');
  const key = effectKey(run.id, run.rootTaskId, 1, 0);
  await store.tasks.recordDecision(
    dead.lease,
    {
      n: 1,
      actions: [action],
      usage: null,
      audit: [{ kind: 'turn.decided', runId: run.id, taskId: run.rootTaskId, agent: 'resumer', actor: 'dead-worker', data: { turn: 1 } }],
    },
    Date.now(),
  );
  // It began the effect (the tool may or may not have run) …
  await store.tasks.beginEffect({ key, runId: run.id, taskId: run.rootTaskId, turn: 1, action: 0, tool: 'note', inputDigest: digest({ x: 1 }) }, Date.now());
  // … and, in some tests, even recorded its outcome.
  if (opts.completeWith !== undefined) await store.tasks.completeEffect(key, { result: opts.completeWith }, Date.now(), []);
  await forgeExpiry(store, dead.task.id);
  return key;
}

test('a decided but uncommitted turn is resumed by the new worker without asking the agent again', async (t) => {
  const { store, start } = await setup(t);
  const { reg, action, turnsAsked, invocations } = resumer({ noted: true });
  const run = await submit(store, reg, 'resumer');
  const key = await decideAndDie(store, run, action);

  await start(reg);
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(turnsAsked, [2], 'turn 1 was replayed from its recorded decision; only turn 2 asked the agent');
  // The effect was started but never recorded: it runs again under the same key, flagged.
  assert.deepEqual(invocations, [{ key, maybeRepeated: true }]);
  assert.deepEqual(done.output, { got: { index: 0, type: 'tool', ok: true, value: { noted: true } } });
  const [effect] = await store.tasks.effects({ runId: run.id });
  assert.equal(effect!.state, 'completed');
  assert.equal(effect!.attempts, 2);
  const task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.reclaims, 1);
  assert.equal(task.turns, 2);
  const kinds = (await store.audit.list({ runId: run.id, limit: 1_000 })).map((a) => a.kind);
  assert.ok(kinds.includes('task.reclaimed'));
  assert.ok(kinds.includes('turn.resumed'));
  assert.equal(kinds.filter((k) => k === 'turn.answered').length, 1, 'only turn 2 was answered by the agent');
});

test('a decided turn whose effect the dead worker completed is replayed from the ledger, not re-executed', async (t) => {
  const { store, start } = await setup(t);
  const { reg, action, turnsAsked, invocations } = resumer({ noted: 'by the live worker' });
  const run = await submit(store, reg, 'resumer');
  await decideAndDie(store, run, action, { completeWith: { noted: 'by the dead worker' } });

  await start(reg);
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(turnsAsked, [2]);
  assert.deepEqual(invocations, [], 'the tool did not run again');
  assert.deepEqual(done.output, { got: { index: 0, type: 'tool', ok: true, value: { noted: 'by the dead worker' } } });
  const [effect] = await store.tasks.effects({ runId: run.id });
  assert.equal(effect!.attempts, 1);
  const kinds = (await store.audit.list({ runId: run.id, limit: 1_000 })).map((a) => a.kind);
  assert.ok(kinds.includes('turn.resumed'));
  assert.ok(kinds.includes('effect.replayed'));
});

test('a zombie’s late effect record wins: the new owner replays it instead of running the tool', async (t) => {
  const { store, start } = await setup(t);
  const { reg, action, turnsAsked, invocations } = resumer({ noted: 'by the live worker' });
  const run = await submit(store, reg, 'resumer');
  const key = await decideAndDie(store, run, action);
  // The "dead" worker was only paused: it records its effect just as the new owner is about to
  // begin it again. The ledger keeps the first outcome, and the new owner replays it.
  const tasks: Store['tasks'] = {
    ...store.tasks,
    beginEffect: async (e, now) => {
      await store.tasks.completeEffect(e.key, { result: { noted: 'by the zombie' } }, now, []);
      return store.tasks.beginEffect(e, now);
    },
  };
  const zombie = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'tasks') return tasks;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
    },
  });
  await start(reg, { via: zombie });
  const done = await finished(store, run.id, 10_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(turnsAsked, [2]);
  assert.deepEqual(invocations, [], 'the live worker never ran the tool: the ledger had its result');
  assert.deepEqual(done.output, { got: { index: 0, type: 'tool', ok: true, value: { noted: 'by the zombie' } } });
  const [effect] = await store.tasks.effects({ runId: run.id });
  assert.equal(effect!.key, key);
  assert.equal(effect!.attempts, 1);
});

test('a runner that crashes does not keep its lease alive: the task is reclaimed and finished', async (t) => {
  const { store, start } = await setup(t);
  const { reg, action, turnsAsked } = resumer({ noted: 'second time lucky' });
  const run = await submit(store, reg, 'resumer');
  await decideAndDie(store, run, action);
  // The new owner's runner crashes once (a store error it cannot handle). Before the fix, the
  // worker's heartbeat kept that orphaned lease alive forever.
  let crashes = 0;
  const tasks: Store['tasks'] = {
    ...store.tasks,
    beginEffect: async (e, now) => {
      if (crashes > 0) return store.tasks.beginEffect(e, now);
      crashes++;
      throw new Error('simulated store failure inside the runner');
    },
  };
  const flaky = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'tasks') return tasks;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
    },
  });
  await start(reg, { via: flaky, options: { leaseMs: 400, heartbeatMs: 100 } });
  const done = await finished(store, run.id, 10_000);
  assert.equal(done.state, 'succeeded', `run is ${done.state}: the crashed runner's lease was never released`);
  assert.equal(crashes, 1);
  assert.deepEqual(turnsAsked, [2]);
  const task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.reclaims, 2, 'reclaimed from the dead worker, then from the crashed runner');
});
