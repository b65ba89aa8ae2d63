// The Store port's own contract, below the engine, on both backends: the parts the
// engine suites reach only indirectly. Accepting an envelope stores the run input intake
// made (the store derives nothing from the envelope); a routing agent's envelope is handed
// on once; workers, the due time of the queue, the audit sequence, contracts and the
// small edge cases of heartbeats and budget reads.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import type { Envelope } from '../../src/core/envelope.ts';
import type { Json } from '../../src/core/types.ts';
import type { AcceptRoute, Store } from '../../src/store/store.ts';
import { forge, tempStore } from '../helpers.ts';

async function setup(t: TestContext): Promise<Store> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  return store;
}

function envelope(text: string, idempotencyKey = `key-${randomUUID()}`): Envelope {
  return { channel: 'api', account: 'default', peer: { kind: 'dm', id: 'kim' }, parentPeer: null, sender: null, thread: null, text, data: null, idempotencyKey, replyTo: null };
}

function route(agent: string, input: Json, kind: 'work' | 'router' = 'work'): Extract<AcceptRoute, { ok: true }> {
  return {
    ok: true,
    agent,
    kind,
    decision: { binding: 'b1', why: 'test' },
    session: { key: `agent:${agent}:isolated:${randomUUID()}`, agent, resetBefore: 0 },
    input,
    maxAttempts: 1,
  };
}

/** Claims the one ready task and finishes it with `output`, as a worker's turn would. */
async function finishNext(store: Store, output: string | { agent: string }): Promise<void> {
  const [claimed] = await store.tasks.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: Date.now() });
  assert.ok(claimed, 'a task to claim');
  await store.commitTurn({ lease: claimed.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output }, outcome: { kind: 'succeed', output }, audit: [] });
}

describe('accepting an envelope', () => {
  it("stores intake's run input as given, and a repeated key returns the original envelope and run", async (t) => {
    const store = await setup(t);
    const e = envelope('hello');
    const input = { made: 'by intake', text: 'not derived from the envelope' };
    const first = await store.acceptEnvelope({ envelope: e, envelopeId: `env_${randomUUID()}`, route: route('a', input), actor: 'test' }, Date.now());
    assert.equal(first.created, true);
    assert.deepEqual(first.run?.input, input);
    assert.deepEqual((await store.runs.get(first.run.id))?.input, input);
    assert.deepEqual((await store.tasks.get(first.run.rootTaskId))?.input, input);
    assert.equal(first.envelope.state, 'routed');
    assert.equal(first.envelope.runId, first.run.id);

    const again = await store.acceptEnvelope({ envelope: e, envelopeId: `env_${randomUUID()}`, route: route('a', { other: true }), actor: 'test' }, Date.now());
    assert.equal(again.created, false);
    assert.equal(again.envelope.id, first.envelope.id);
    assert.equal(again.run?.id, first.run.id);
    assert.equal((await store.runs.list({ limit: 10 })).length, 1);
  });

  it('an unroutable envelope is stored with its error and no run', async (t) => {
    const store = await setup(t);
    const r = await store.acceptEnvelope(
      { envelope: envelope('?'), envelopeId: `env_${randomUUID()}`, route: { ok: false, decision: { why: 'no binding' }, error: { code: 'UNROUTABLE', message: 'no binding', retryable: false } }, actor: 'test' },
      Date.now(),
    );
    assert.equal(r.created, true);
    assert.equal(r.run, null);
    assert.equal(r.envelope.state, 'unroutable');
    assert.deepEqual(r.envelope.error, { code: 'UNROUTABLE', message: 'no binding', retryable: false });
    const kinds = (await store.audit.list({ limit: 10 })).map((a) => a.kind);
    assert.deepEqual(kinds, ['envelope.received', 'route.unroutable']);
  });
});

describe('routing through an agent', () => {
  it('is due once the router finished; completeRouting stores the given input and hands on only once', async (t) => {
    const store = await setup(t);
    const accepted = await store.acceptEnvelope({ envelope: envelope('route me'), envelopeId: `env_${randomUUID()}`, route: route('router', 'router input', 'router'), actor: 'test' }, Date.now());
    assert.equal(accepted.envelope.state, 'routing');
    assert.deepEqual(await store.envelopes.routingDue(10), [], 'not due while its router runs');

    await finishNext(store, { agent: 'b' });
    const due = await store.envelopes.routingDue(10);
    assert.deepEqual(
      due.map((d) => [d.envelope.id, d.router.id, d.router.state]),
      [[accepted.envelope.id, accepted.run!.id, 'succeeded']],
    );

    const handOn = route('b', { chosen: 'b', text: 'route me' });
    const run = await store.envelopes.completeRouting(accepted.envelope.id, handOn, Date.now());
    assert.ok(run);
    assert.deepEqual(run.input, handOn.input);
    assert.equal(run.agent, 'b');
    assert.equal(run.envelopeId, accepted.envelope.id);
    assert.equal(await store.envelopes.completeRouting(accepted.envelope.id, handOn, Date.now()), null, 'handed on once');
    assert.equal(await store.envelopes.failRouting(accepted.envelope.id, { code: 'UNROUTABLE', message: 'late', retryable: false }, Date.now()), false);
    const stored = await store.envelopes.get(accepted.envelope.id);
    assert.deepEqual([stored?.state, stored?.runId], ['routed', run.id]);
    assert.deepEqual(await store.envelopes.routingDue(10), []);
  });

  it('failRouting puts a routing envelope into the unroutable state, once', async (t) => {
    const store = await setup(t);
    const accepted = await store.acceptEnvelope({ envelope: envelope('x'), envelopeId: `env_${randomUUID()}`, route: route('router', null, 'router'), actor: 'test' }, Date.now());
    const error = { code: 'UNROUTABLE', message: 'no candidate left', retryable: false };
    assert.equal(await store.envelopes.failRouting(accepted.envelope.id, error, Date.now()), true);
    assert.equal(await store.envelopes.failRouting(accepted.envelope.id, error, Date.now()), false);
    const stored = await store.envelopes.get(accepted.envelope.id);
    assert.deepEqual([stored?.state, stored?.error], ['unroutable', error]);
    assert.equal(await store.envelopes.completeRouting(accepted.envelope.id, route('b', null), Date.now()), null);
  });
});

describe('workers, the queue and the audit sequence', () => {
  it('workers are listed, alive since a time, and stopped', async (t) => {
    const store = await setup(t);
    await store.workers.register({ id: 'w1', pid: 11, host: 'h1' }, 1_000);
    await store.workers.register({ id: 'w2', pid: 22, host: 'h2' }, 2_000);
    assert.deepEqual((await store.workers.list({})).map((w) => [w.id, w.pid, w.host, w.startedAt, w.stoppedAt]), [
      ['w1', 11, 'h1', 1_000, null],
      ['w2', 22, 'h2', 2_000, null],
    ]);
    assert.deepEqual((await store.workers.list({ aliveSince: 1_500 })).map((w) => w.id), ['w2']);
    // A heartbeat for no tasks extends no lease but says the worker is alive.
    assert.deepEqual(await store.tasks.heartbeat('w1', 99_000, 3_000, []), []);
    assert.deepEqual((await store.workers.list({ aliveSince: 2_500 })).map((w) => w.id), ['w1']);
    await store.workers.stop('w1', 4_000);
    assert.deepEqual((await store.workers.list({ aliveSince: 0 })).map((w) => w.id), ['w2']);
    assert.equal((await store.workers.list({})).find((w) => w.id === 'w1')?.stoppedAt, 4_000);
  });

  it('nextDueAt is the earliest queued task, and null once none is waiting', async (t) => {
    const store = await setup(t);
    assert.equal(await store.tasks.nextDueAt(), null);
    await store.runs.create({ agent: 'a', input: 1, maxAttempts: 1 }, 5_000);
    await store.runs.create({ agent: 'a', input: 2, maxAttempts: 1 }, 3_000);
    assert.equal(await store.tasks.nextDueAt(), 3_000);
    assert.equal((await store.tasks.claim({ workerId: 'w', limit: 10, leaseMs: 60_000, now: 10_000 })).length, 2);
    assert.equal(await store.tasks.nextDueAt(), null);
  });

  it('latestSeq follows appended events, and list pages after a sequence number', async (t) => {
    const store = await setup(t);
    const start = await store.audit.latestSeq();
    await store.audit.append([{ kind: 'test.one' }, { kind: 'test.two', data: { n: 2 } }], 1_000);
    const seq = await store.audit.latestSeq();
    assert.equal(seq, start + 2);
    const after = await store.audit.list({ afterSeq: start + 1, limit: 10 });
    assert.deepEqual(
      after.map((e) => [e.seq, e.kind, e.data, e.at]),
      [[seq, 'test.two', { n: 2 }, 1_000]],
    );
    await store.audit.append([], 2_000);
    assert.equal(await store.audit.latestSeq(), seq, 'nothing appended, nothing changed');
  });

  it('a contract is recorded the first time it is used; later records of its id change nothing', async (t) => {
    const store = await setup(t);
    await store.contracts.record('c@1', 'digest-a', { type: 'object' }, 1_000);
    await store.contracts.record('c@1', 'digest-b', { type: 'string' }, 2_000);
    const { rows } = await forge<{ id: string; digest: string; first_used_at: number | string }>(store, 'SELECT id, digest, first_used_at FROM contracts');
    assert.deepEqual(
      rows.map((r) => [r.id, r.digest, Number(r.first_used_at)]),
      [['c@1', 'digest-a', 1_000]],
    );
  });

  it('budget usage of no keys is empty, and of an unknown key nothing', async (t) => {
    const store = await setup(t);
    assert.deepEqual(await store.limits.usage([]), []);
    assert.deepEqual(await store.limits.usage(['cost:daily:nobody']), []);
  });
});
