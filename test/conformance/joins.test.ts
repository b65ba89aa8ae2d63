// Join policies on a real store (SQLite; PostgreSQL under `npm run test:pg`): all,
// quorum:N, first and race, with failed, cancelled, expired and late lanes. A lane is
// never missing from the parent's results; lanes a completed join no longer needs are
// cancelled, and that is audited.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManualClock } from '../../src/core/clock.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import type { JoinPolicy } from '../../src/core/join.ts';
import { compileJoin, decideJoin } from '../../src/core/join.ts';
import type { Registry } from '../../src/engine/options.ts';
import type { Store } from '../../src/store/store.ts';
import { auditOf, clocked, forge, gate, registry, tempStore, until } from '../helpers.ts';
import { submitRun } from '../fixtures/submit-run.ts';

/** Starts a run at the manual clock's now (the run is due exactly when the worker's clock says so, however long set-up took). */
async function submitAt(store: Store, reg: Registry, clock: ManualClock, agent: string) {
  return (await submitRun(store, reg, { agent, input: null, actor: 'test' }, clock.now())).run;
}

function outcome(r: ActionResult): Json {
  return r.ok ? { ok: true, value: r.value } : { ok: false, code: r.error.code };
}

/** A lead that hands `lanes` off as one batch (with `join`), then answers with its lanes' outcomes in order. */
function lead(lanes: Array<{ agent: string; input?: Json }>, join?: JoinPolicy, seen?: { input: TurnInput | null }) {
  return (input: TurnInput) => {
    if (input.task.turn === 1) return { actions: lanes.map((l) => ({ type: 'handoff' as const, agent: l.agent, input: l.input ?? null })), ...(join ? { join } : {}) };
    if (seen) seen.input = structuredClone(input);
    return { output: input.results.map(outcome) };
  };
}

const fail = () => {
  throw Object.assign(new Error('lane broke'), {});
};

describe('decideJoin (the pure rule)', () => {
  const spec = (mode: string, onChildFailure: 'include' | 'fail' = 'include') => compileJoin({ mode, onChildFailure }) as Exclude<ReturnType<typeof compileJoin>, string>;
  it('all waits for every lane; fail ends at the first failed lane', () => {
    assert.equal(decideJoin(spec('all'), { pending: 1, ok: 1, failed: 1, lastOk: false }), 'wait');
    assert.equal(decideJoin(spec('all'), { pending: 0, ok: 1, failed: 1, lastOk: true }), 'unmet');
    assert.equal(decideJoin(spec('all', 'fail'), { pending: 2, ok: 0, failed: 1, lastOk: false }), 'failed');
    assert.equal(decideJoin(null, { pending: 0, ok: 3, failed: 0, lastOk: true }), 'met');
  });
  it('quorum and first count successes; race takes the first lane to finish', () => {
    assert.equal(decideJoin(spec('quorum:2'), { pending: 1, ok: 2, failed: 0, lastOk: true }), 'met');
    assert.equal(decideJoin(spec('quorum:2'), { pending: 1, ok: 0, failed: 2, lastOk: false }), 'unmet');
    assert.equal(decideJoin(spec('quorum:2', 'fail'), { pending: 1, ok: 0, failed: 2, lastOk: false }), 'failed');
    assert.equal(decideJoin(spec('first'), { pending: 2, ok: 0, failed: 1, lastOk: false }), 'wait');
    assert.equal(decideJoin(spec('race'), { pending: 2, ok: 0, failed: 1, lastOk: false }), 'unmet');
    assert.equal(decideJoin(spec('race', 'fail'), { pending: 2, ok: 0, failed: 1, lastOk: false }), 'failed');
  });
  it('a bad mode is named', () => {
    assert.match(compileJoin({ mode: 'quorum:0' }) as string, /quorum:N/);
    assert.match(compileJoin({ mode: 'most' }) as string, /"most"/);
  });
});

describe('join modes', () => {
  it('first: the first lane to succeed wakes the parent; lanes still running are cancelled (audited) and a late lane cannot commit', async (t) => {
    const slow = gate();
    let slowEntered = 0;
    const seen = { input: null as TurnInput | null };
    const reg = registry({
      lead: lead([{ agent: 'slow' }, { agent: 'fast' }, { agent: 'slow' }], { mode: 'first' }, seen),
      fast: () => ({ output: 'fast' }),
      slow: async () => {
        slowEntered++;
        await slow.promise;
        return { output: 'late' };
      },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    const running = worker.runOnce();
    await until('the join completed', async () => (await auditOf(store, run.id)).some((e) => e.kind === 'join.completed'), 30_000);
    await until('both slow lanes entered their turn', () => slowEntered === 2, 30_000);
    slow.open(); // the late lanes answer now: their lease is gone
    await running;
    await worker.runOnce();
    const done = (await store.runs.get(run.id))!;
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.output, [
      { ok: false, code: 'LANE_CANCELLED' },
      { ok: true, value: 'fast' },
      { ok: false, code: 'LANE_CANCELLED' },
    ]);
    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    assert.deepEqual(tasks.filter((x) => x.agent === 'slow').map((x) => [x.state, x.output]), [
      ['cancelled', null],
      ['cancelled', null],
    ]);
    const audit = await auditOf(store, run.id);
    const joined = audit.find((e) => e.kind === 'join.completed')!;
    assert.equal((joined.data as { verdict: string }).verdict, 'met');
    assert.equal((joined.data as { ended: string[] }).ended.length, 2);
    assert.equal(audit.filter((e) => e.kind === 'task.cancelled').length, 2);
    assert.ok(!audit.some((e) => e.kind === 'task.succeeded' && tasks.find((x) => x.id === e.taskId)?.agent === 'slow'), 'no late lane committed');
  });

  it('race: the first lane to finish decides, even a failure (include); with fail the parent fails with JOIN_FAILED', async (t) => {
    for (const onChildFailure of ['include', 'fail'] as const) {
      const hold = gate();
      const reg = registry({
        lead: lead([{ agent: 'broken' }, { agent: 'held' }], { mode: 'race', onChildFailure }),
        broken: { fn: fail, retry: { maxAttempts: 1 } },
        held: async () => {
          await hold.promise;
          return { output: 'late' };
        },
      });
      const { store, worker, clock } = await clocked(t, reg);
      const run = await submitAt(store, reg, clock, 'lead');
      const running = worker.runOnce();
      await until('the race decided', async () => (await auditOf(store, run.id)).some((e) => e.kind === 'join.completed'), 30_000);
      hold.open();
      await running;
      await worker.runOnce();
      const done = (await store.runs.get(run.id))!;
      if (onChildFailure === 'include') {
        assert.equal(done.state, 'succeeded');
        assert.deepEqual(done.output, [
          { ok: false, code: 'AGENT_FAILED' },
          { ok: false, code: 'LANE_CANCELLED' },
        ]);
      } else {
        assert.equal(done.state, 'failed');
        assert.equal(done.error?.code, 'JOIN_FAILED');
      }
    }
  });

  it('quorum:2 wakes the parent at two successes with a failed lane present; an unreachable quorum is unmet (include) or fails (fail)', async (t) => {
    const hold = gate();
    const second = gate();
    const reg = registry({
      lead: lead([{ agent: 'ok', input: 1 }, { agent: 'broken' }, { agent: 'ok', input: 2 }, { agent: 'held' }], { mode: 'quorum:2' }),
      ok: async (input) => {
        // The second success waits until the broken lane has failed (so that lane's outcome is its own).
        if (input.task.input === 2) await second.promise;
        return { output: input.task.input };
      },
      broken: { fn: fail, retry: { maxAttempts: 1 } },
      held: async () => {
        await hold.promise;
        return { output: 'late' };
      },
      short: lead([{ agent: 'broken' }, { agent: 'broken' }, { agent: 'ok', input: 3 }], { mode: 'quorum:2' }),
      strict: lead([{ agent: 'broken' }, { agent: 'broken' }, { agent: 'ok', input: 3 }], { mode: 'quorum:2', onChildFailure: 'fail' }),
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    const running = worker.runOnce();
    await until('the broken lane failed', async () => (await store.tasks.list({ runId: run.id, limit: 10 })).some((x) => x.agent === 'broken' && x.state === 'dead'), 30_000);
    second.open();
    await until('the quorum was met', async () => (await auditOf(store, run.id)).some((e) => e.kind === 'join.completed'), 30_000);
    hold.open();
    await running;
    await worker.runOnce();
    assert.deepEqual((await store.runs.get(run.id))!.output, [
      { ok: true, value: 1 },
      { ok: false, code: 'AGENT_FAILED' },
      { ok: true, value: 2 },
      { ok: false, code: 'LANE_CANCELLED' },
    ]);

    const short = await submitAt(store, reg, clock, 'short');
    const strict = await submitAt(store, reg, clock, 'strict');
    // runOnce runs what is due; a lane cancelled mid-turn by the join frees its slot only when it ends, so take passes until both are done.
    for (let pass = 0; pass < 10; pass++) {
      await worker.runOnce();
      const states = await Promise.all([short.id, strict.id].map(async (id) => (await store.runs.get(id))!.state));
      if (states.every((st) => st !== 'running')) break;
    }
    const s = (await store.runs.get(short.id))!;
    assert.equal(s.state, 'succeeded');
    assert.equal(s.output && (s.output as Json[]).length, 3, 'every lane present, failed ones as errors');
    const verdict = (await auditOf(store, short.id)).find((e) => e.kind === 'join.completed')!.data as { verdict: string };
    assert.equal(verdict.verdict, 'unmet');
    const f = (await store.runs.get(strict.id))!;
    assert.equal(f.state, 'failed');
    assert.equal(f.error?.code, 'JOIN_FAILED');
  });

  it('all with onChildFailure fail (set on the agent): the first failed lane fails the parent and cancels its siblings', async (t) => {
    const hold = gate();
    const reg = registry({
      lead: { fn: lead([{ agent: 'held' }, { agent: 'broken' }]), join: { mode: 'all', need: null, onChildFailure: 'fail', deadlineMs: null } },
      broken: { fn: fail, retry: { maxAttempts: 1 } },
      held: async () => {
        await hold.promise;
        return { output: 'late' };
      },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    const running = worker.runOnce();
    await until('the parent failed', async () => (await store.runs.get(run.id))!.state === 'failed', 30_000);
    hold.open();
    await running;
    const done = (await store.runs.get(run.id))!;
    assert.equal(done.error?.code, 'JOIN_FAILED');
    const held = (await store.tasks.list({ runId: run.id, limit: 10 })).find((x) => x.agent === 'held')!;
    assert.equal(held.state, 'cancelled');
    assert.equal(held.error?.code, 'LANE_CANCELLED');
  });

  it('deadlineMs: lanes still unfinished at the deadline are cancelled as expired, and the parent gets them as LANE_EXPIRED', async (t) => {
    const reg = registry({
      lead: lead([{ agent: 'ok', input: 'a' }, { agent: 'flaky' }], { mode: 'all', deadlineMs: 5_000 }),
      ok: (input) => ({ output: input.task.input }),
      // Fails retryably with a long backoff: still unfinished (retry-scheduled) when the deadline passes.
      flaky: { fn: fail, retry: { maxAttempts: 5, initialMs: 60_000, maxMs: 60_000, jitter: 'none' } },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'waiting', 'before the deadline the parent waits');
    clock.advance(5_001);
    await worker.runOnce();
    const done = (await store.runs.get(run.id))!;
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.output, [
      { ok: true, value: 'a' },
      { ok: false, code: 'LANE_EXPIRED' },
    ]);
    const joined = (await auditOf(store, run.id)).find((e) => e.kind === 'join.completed')!.data as { deadline?: boolean; verdict: string };
    assert.deepEqual([joined.deadline, joined.verdict], [true, 'unmet']);
  });

  it('a cancelled lane (by an operator) is present in the results as CANCELLED', async (t) => {
    const reg = registry({
      lead: lead([{ agent: 'ok', input: 1 }, { agent: 'flaky' }]),
      ok: (input) => ({ output: input.task.input }),
      flaky: { fn: fail, retry: { maxAttempts: 5, initialMs: 60_000, maxMs: 60_000, jitter: 'none' } },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    const flaky = (await store.tasks.list({ runId: run.id, limit: 10 })).find((x) => x.agent === 'flaky')!;
    await store.tasks.cancel(flaky.id, clock.now(), 'operator', 'not needed');
    await worker.runOnce();
    assert.deepEqual((await store.runs.get(run.id))!.output, [
      { ok: true, value: 1 },
      { ok: false, code: 'CANCELLED' },
    ]);
  });

  it('an all join whose lanes all finished but whose parent still waits (a process died before looking) is decided by the reaper', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const now = Date.now();
    const { run } = await store.runs.create({ agent: 'lead', input: null, maxAttempts: 1 }, now);
    const [root] = await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now });
    const children = [1, 2].map((x, i) => ({ id: `task_lane_${x}`, agent: 'lane', input: x, parentAction: i, maxAttempts: 1 }));
    await store.commitTurn({ lease: root!.lease, now, turn: { n: 1, actions: [], results: [] }, outcome: { kind: 'wait', children }, audit: [] });
    assert.equal((await store.tasks.get(run.rootTaskId))!.waitingOn, 2);
    // Forged: both lanes finished as a lane's one-statement commit leaves them (PostgreSQL), with no one left to look at the parent.
    for (const c of children) await forge(store, `UPDATE tasks SET state = 'succeeded', output = ?, finished_at = ? WHERE id = ?`, [String(c.input), now, c.id]);
    assert.equal((await store.tasks.get(run.rootTaskId))!.waitingOn, 0);
    assert.equal(await store.tasks.expireJoins(now), 1);
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'queued');
    const joined = (await auditOf(store, run.id)).find((e) => e.kind === 'join.completed')!.data as { verdict: string; ok: number };
    assert.deepEqual([joined.verdict, joined.ok], ['met', 2]);
    assert.equal(await store.tasks.expireJoins(now), 0);
  });
});
