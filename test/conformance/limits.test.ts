// Shared limits: rate limits (wait → deferred, fail → RATE_LIMITED), cost ceilings
// under concurrency (8 parallel branches, one ceiling, never overshot; the rest
// escalate), turn spend reserved then settled at actual usage, and reservations whose
// holder died: released on expiry with no leak and no overshoot — in the store, and
// through a real SIGKILL of a worker process in the middle of a priced tool call.
import assert from 'node:assert/strict';
import { describe, it, test, type TestContext } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { InvalidStateError, LeaseLostError, type FieldIssue } from '../../src/core/errors.ts';
import type { Json, TurnInput } from '../../src/core/types.ts';
import type { Registry } from '../../src/engine/options.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import { Worker } from '../../src/engine/worker.ts';
import { compilePolicy, policySchema } from '../../src/policy/rules.ts';
import type { LimitAcquire, Store } from '../../src/store/store.ts';
import { readPayments, startWorkerProcess, writeProject, type WorkerProcess } from '../fixtures/policy-project.ts';
import { FAST_WORKER, auditOf, finished, forge, gate, harness, registry, submit, tempStore, until } from '../helpers.ts';

function policy(rules: Json[]) {
  const issues: FieldIssue[] = [];
  const compiled = compilePolicy(policySchema.parse({ rules }), issues);
  assert.deepEqual(issues, []);
  return compiled;
}

/** A worker on an injected clock, driven by runOnce: deferrals come due when the test moves the clock, not by sleeping. */
async function clockedWorker(t: TestContext, reg: Registry, clock: ManualClock): Promise<{ store: Store; dir: string; worker: Worker }> {
  const { store, dir, cleanup } = await tempStore();
  const worker = new Worker({ store, registry: reg, clock, options: FAST_WORKER });
  t.after(async () => {
    await worker.stop();
    await cleanup();
  });
  return { store, dir, worker };
}

/** Calls `tool` once per turn for `calls` turns, then outputs the codes/values it got. */
function repeatCaller(tool: string, calls: number, log: TurnInput[] = []) {
  return (input: TurnInput) => {
    log.push(structuredClone(input));
    if (input.task.turn === 1) return { actions: Array.from({ length: calls }, () => ({ type: 'tool' as const, tool, input: { q: 'x' } })) };
    return { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) };
  };
}

describe('rate limits', () => {
  it('onExceeded fail: calls past the bucket get RATE_LIMITED as their result; the bucket is shared by every run', async (t) => {
    let calls = 0;
    const reg = registry(
      { a: repeatCaller('search.web', 3) },
      { 'search.web': () => ++calls },
      { policy: policy([{ id: 'search-rate', kind: 'rateLimit', actions: ['search.*'], capacity: 2, refillPerSecond: 0.0001, onExceeded: 'fail' }]) },
    );
    const { store } = await harness(t, reg);
    const first = await finished(store, (await submit(store, reg, 'a')).id);
    assert.deepEqual(first.output, [1, 2, 'RATE_LIMITED']);
    const second = await finished(store, (await submit(store, reg, 'a')).id);
    assert.deepEqual(second.output, ['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'], 'the bucket is durable and shared, not per run');
    assert.equal(calls, 2, 'refused calls never ran');
    const limited = (await auditOf(store, first.id)).filter((e) => e.kind === 'policy.rate-limited');
    assert.equal(limited.length, 1);
    assert.deepEqual([(limited[0]!.data as { ruleId: string }).ruleId, (limited[0]!.data as { onExceeded: string }).onExceeded], ['search-rate', 'fail']);
  });

  it('onExceeded wait: the task is deferred to when a token is due, then runs; its decided turn is replayed, not asked again', async (t) => {
    const clock = new ManualClock(Date.now());
    let calls = 0;
    const turns: Array<{ run: string; turn: number }> = [];
    const reg = registry(
      {
        a: (input) => {
          turns.push({ run: input.task.runId, turn: input.task.turn });
          return input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'search.web' }] } : { output: input.results[0]!.ok ? 'searched' : input.results[0]!.error.code };
        },
      },
      { 'search.web': () => ++calls },
      { policy: policy([{ id: 'api', kind: 'rateLimit', actions: ['search.web'], capacity: 1, refillPerSecond: 1, onExceeded: 'wait' }]) },
    );
    const { store, worker } = await clockedWorker(t, reg, clock);
    const t0 = clock.now();
    const { run: a } = await submitRun(store, reg, { agent: 'a', input: null }, t0);
    await worker.runOnce();
    assert.equal((await store.runs.get(a.id))?.state, 'succeeded');

    const { run: b } = await submitRun(store, reg, { agent: 'a', input: null }, t0);
    await worker.runOnce();
    assert.ok((await auditOf(store, b.id)).some((e) => e.kind === 'task.deferred'), 'run b deferred');
    const task = (await store.tasks.get(b.rootTaskId))!;
    assert.equal(task.state, 'queued');
    assert.equal(task.runAt, t0 + 1_000, 'due when the next token is');
    assert.equal(task.leaseOwner, null);
    assert.equal(calls, 1, 'the limited call did not run');
    const deferred = (await auditOf(store, b.id)).find((e) => e.kind === 'task.deferred');
    assert.equal((deferred?.data as { ruleId: string }).ruleId, 'api');

    clock.advance(999);
    assert.deepEqual((await worker.runOnce()).ran, [], 'not due yet: nothing claimed');
    assert.equal((await store.tasks.get(b.rootTaskId))?.state, 'queued');
    clock.advance(1);
    assert.deepEqual((await worker.runOnce()).ran.map((r) => r.runId), [b.id]);
    const done = (await store.runs.get(b.id))!;
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.output, 'searched');
    assert.equal(calls, 2);
    assert.deepEqual(
      turns.filter((x) => x.run === b.id).map((x) => x.turn),
      [1, 2],
      'turn 1 was decided once and replayed after the deferral',
    );
  });
});

test('a rate bucket raced by concurrent takers with stale and out-of-order clocks never admits more than capacity + refill × window', async (t) => {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const CAPACITY = 5;
  const PER_S = 5;
  const t0 = Date.now();
  // 60 takers whose clocks read anywhere in one second, arriving in a shuffled order (a loaded
  // worker computes `now`, then stalls before its transaction runs).
  const nows = Array.from({ length: 60 }, (_, i) => t0 + Math.floor((i * 1_000) / 60));
  for (let i = nows.length - 1; i > 0; i--) {
    const j = (i * 7919 + 13) % (i + 1);
    [nows[i], nows[j]] = [nows[j]!, nows[i]!];
  }
  const take = { ruleId: 'r', key: 'rate:race', capacity: CAPACITY, refillPerMs: PER_S / 1_000, onExceeded: 'fail' as const };
  const results = await Promise.all(
    nows.map(async (now, i) => ({ now, ok: (await store.limits.acquire({ takes: [take], budgets: [], micros: 0, tokens: 0, reservationId: `rsv_${i}`, runId: 'run_r', taskId: 'task_r', expiresAt: now + 60_000 }, now)).ok })),
  );
  const admitted = results.filter((r) => r.ok).map((r) => r.now).sort((a, b) => a - b);
  assert.ok(admitted.length >= CAPACITY, `at least the bucket's capacity went through (${admitted.length})`);
  for (let i = 0; i < admitted.length; i++) {
    for (let j = i; j < admitted.length; j++) {
      const allowed = CAPACITY + (PER_S * (admitted[j]! - admitted[i]!)) / 1_000;
      assert.ok(j - i + 1 <= allowed + 1e-9, `${j - i + 1} takes within ${admitted[j]! - admitted[i]!} ms of their clocks; the bucket allows ${allowed.toFixed(2)}`);
    }
  }
  t.diagnostic(`rate race: ${admitted.length} of ${nows.length} admitted over ${admitted.at(-1)! - admitted[0]!} ms`);
});

describe('cost ceilings', () => {
  it('8 parallel branches spend against one per-run ceiling: reservations stop the overshoot, the rest escalate', async (t) => {
    const CEILING = 1_000_000; // $1.00
    const PRICE = 0.25;
    const inTool = gate();
    let entered = 0;
    let ran = 0;
    const lead = (input: TurnInput) => {
      if (input.task.turn === 1) return { actions: Array.from({ length: 8 }, (_, i) => ({ type: 'handoff' as const, agent: 'branch', input: i })) };
      return { output: input.results.map((r) => (r.ok ? 'spent' : r.error.code)) };
    };
    const branch = (input: TurnInput) =>
      input.task.turn === 1 ? { actions: [{ type: 'tool' as const, tool: 'llm.complete', input: input.task.input }] } : { output: input.results[0]!.ok ? 'spent' : input.results[0]!.error.code };
    const reg = registry(
      { lead, branch },
      {
        'llm.complete': {
          cost: { micros: PRICE * 1e6, tokens: 0 },
          run: async () => {
            entered++;
            await inTool.promise;
            return ++ran;
          },
        },
      },
      { policy: policy([{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 1 }]) },
    );
    // Whatever happens, let blocked tool calls go before the worker is stopped.
    t.after(() => inTool.open());
    const { store } = await harness(t, reg, { concurrency: 9 });
    const run = await submit(store, reg, 'lead');
    const key = `cost:per-run:run:${run.id}`;
    let peak = 0;
    const sample = async () => {
      const [u] = await store.limits.usage([key]);
      if (u) peak = Math.max(peak, u.spentMicros + u.reservedMicros);
    };

    const branches = async () => (await store.tasks.list({ runId: run.id, limit: 20 })).filter((x) => x.agent === 'branch');
    await until('4 branches inside the tool and 4 escalated', async () => {
      await sample();
      return entered === 4 && (await branches()).filter((b) => b.state === 'escalated').length === 4;
    });
    const [held] = await store.limits.usage([key]);
    assert.deepEqual([held?.reservedMicros, held?.spentMicros], [CEILING, 0], 'four estimates reserved before anything was spent');

    inTool.open();
    await until('4 branches succeeded', async () => {
      await sample();
      return (await branches()).filter((b) => b.state === 'succeeded').length === 4;
    });
    const [settled] = await store.limits.usage([key]);
    assert.deepEqual([settled?.spentMicros, settled?.reservedMicros], [CEILING, 0], 'settled exactly the ceiling; nothing left reserved');
    assert.ok(peak <= CEILING, `spent + reserved peaked at ${peak}`);
    assert.equal(ran, 4);

    const escalated = (await branches()).filter((b) => b.state === 'escalated');
    assert.equal(escalated.length, 4);
    for (const b of escalated) {
      assert.equal(b.error?.code, 'BUDGET_EXCEEDED');
      assert.equal(b.leaseOwner, null, 'an escalated task holds no worker');
    }
    const approvals = await store.approvals.list({ runId: run.id, state: 'pending', limit: 20 });
    assert.deepEqual(
      approvals.map((a) => [a.kind, a.ruleId, a.approvers]),
      Array(4).fill(['escalation', 'per-run', 'operators']),
    );
    assert.deepEqual(approvals.map((a) => a.taskId).sort(), escalated.map((b) => b.id).sort());
    const audit = await auditOf(store, run.id);
    assert.equal(audit.filter((e) => e.kind === 'cost.ceiling-reached' && (e.data as { ruleId: string }).ruleId === 'per-run').length, 4);
    assert.equal(audit.filter((e) => e.kind === 'cost.reserved').length, 4);
    assert.equal(audit.filter((e) => e.kind === 'cost.settled').length, 4);

    // An operator lets one branch spend over the ceiling — and that spend is counted; the others are stopped.
    const [over, ...stop] = approvals;
    await store.approvals.decide(over!.id, { approve: true, actor: 'cfo', reason: 'worth it' }, Date.now());
    await until('approved branch finished', async () => (await store.tasks.get(over!.taskId))?.state === 'succeeded');
    for (const a of stop) await store.approvals.decide(a.id, { approve: false, actor: 'cfo' }, Date.now());
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual((done.output as string[]).filter((x) => x === 'spent').length, 5);
    assert.deepEqual((done.output as string[]).filter((x) => x === 'BUDGET_EXCEEDED').length, 3);
    assert.equal(ran, 5, 'the approved branch ran its tool once; denied ones never did');
    const [final] = await store.limits.usage([key]);
    assert.deepEqual([final?.spentMicros, final?.reservedMicros], [CEILING + PRICE * 1e6, 0], 'the approved overspend is on the books');
  });

  it('approving an approval tier does not lift the ceiling: the action still escalates when it would overshoot', async (t) => {
    let ran = 0;
    const reg = registry(
      { payer: repeatCaller('payments.send', 1) },
      { 'payments.send': { cost: { micros: 600_000, tokens: 0 }, run: () => ++ran } },
      {
        policy: policy([
          { id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve' },
          { id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 0.5 },
        ]),
      },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'payer');
    await until('approval requested', async () => (await store.approvals.list({ runId: run.id, state: 'pending', limit: 5 })).length === 1);
    const [ask] = await store.approvals.list({ runId: run.id, state: 'pending', limit: 5 });
    assert.equal(ask?.kind, 'approval');
    await store.approvals.decide(ask.id, { approve: true, actor: 'alice' }, Date.now());
    await until('escalated', async () => (await store.tasks.get(run.rootTaskId))?.state === 'escalated');
    assert.equal(ran, 0, 'the approved action still may not overshoot the ceiling');
    const [esc] = await store.approvals.list({ runId: run.id, state: 'pending', limit: 5 });
    assert.deepEqual([esc?.kind, esc?.ruleId], ['escalation', 'per-run']);
    await store.approvals.decide(esc!.id, { approve: true, actor: 'cfo' }, Date.now());
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, [1]);
    assert.equal(ran, 1);
    const [u] = await store.limits.usage([`cost:per-run:run:${run.id}`]);
    assert.deepEqual([u?.spentMicros, u?.reservedMicros], [600_000, 0]);
  });

  it('approving an escalation with a raise lifts the run’s ceiling: later steps do not escalate again, and the raise is audited', async (t) => {
    let ran = 0;
    const reg = registry(
      {
        // One priced call per turn, four turns: $1.60 in all, against a $0.50 ceiling.
        spender: (input) => (input.task.turn <= 4 ? { actions: [{ type: 'tool', tool: 'llm.call', input: { n: input.task.turn } }] } : { output: ran }),
      },
      { 'llm.call': { cost: { micros: 400_000, tokens: 0 }, run: () => ++ran } },
      { policy: policy([{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 0.5 }]) },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'spender');
    await until('escalated', async () => (await store.tasks.get(run.rootTaskId))?.state === 'escalated');
    assert.equal(ran, 1, 'the first call fitted; the second stopped at the ceiling');
    const [esc] = await store.approvals.list({ runId: run.id, state: 'pending', limit: 5 });
    assert.equal(esc?.kind, 'escalation');
    const key = `cost:per-run:run:${run.id}`;
    await assert.rejects(store.approvals.decide(esc.id, { approve: false, actor: 'cfo', raise: { budgetKey: key, ruleId: 'per-run', maxMicros: 2_000_000 } }, Date.now()), InvalidStateError, 'only approving raises');
    await store.approvals.decide(esc.id, { approve: true, actor: 'cfo', reason: 'worth it', raise: { budgetKey: key, ruleId: 'per-run', maxMicros: 2_000_000 } }, Date.now());
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.output, 4, 'every call ran');
    const escalations = (await store.approvals.list({ runId: run.id, limit: 50 })).filter((a) => a.kind === 'escalation');
    assert.equal(escalations.length, 1, 'one approval, not one per later step');
    const [u] = await store.limits.usage([key]);
    assert.deepEqual([u?.spentMicros, u?.reservedMicros], [1_600_000, 0]);
    assert.equal(await store.limits.raisedCeiling(key), 2_000_000);
    const raised = (await auditOf(store, run.id)).find((e) => e.kind === 'cost.ceiling-raised');
    assert.deepEqual([raised?.actor, (raised?.data as { toMicros: number; ruleId: string }).toMicros, (raised?.data as { ruleId: string }).ruleId], ['cfo', 2_000_000, 'per-run']);
    // Another run keeps the configured ceiling.
    ran = 0;
    const other = await submit(store, reg, 'spender');
    await until('the other run escalates at the configured ceiling', async () => (await store.tasks.get(other.rootTaskId))?.state === 'escalated');
    assert.equal(ran, 1);
    await store.runs.cancel(other.id, Date.now(), 'test');
  });

  it('an agent turn reserves its estimate before the call and settles its reported usage; at the ceiling the next turn escalates without calling the agent', async (t) => {
    const clock = new ManualClock(Date.now());
    const calls: Array<{ run: string; turn: number }> = [];
    const usage = new Map<string, number>();
    const thinker = (input: TurnInput) => {
      calls.push({ run: input.task.runId, turn: input.task.turn });
      const costUsd = usage.get(input.task.runId) ?? 0.02;
      if (input.task.turn < 3) return { actions: [], usage: { costUsd, inputTokens: 10, outputTokens: 5 } };
      return { output: 'thought', usage: { costUsd, inputTokens: 10, outputTokens: 5 } };
    };
    const reg = registry(
      { thinker: { fn: thinker, cost: { micros: 100_000, tokens: 1_000 } } },
      {},
      { policy: policy([{ id: 'daily', kind: 'cost', scope: 'agent', maxUsd: 0.25 }]) },
    );
    const { store, worker } = await clockedWorker(t, reg, clock);
    const key = `cost:daily:agent:thinker:${new Date(clock.now()).toISOString().slice(0, 10)}`;

    const { run: cheap } = await submitRun(store, reg, { agent: 'thinker', input: null }, clock.now());
    await worker.runOnce();
    assert.equal((await store.runs.get(cheap.id))?.state, 'succeeded');
    const [u1] = await store.limits.usage([key]);
    assert.deepEqual([u1?.spentMicros, u1?.spentTokens, u1?.reservedMicros, u1?.reservedTokens], [60_000, 45, 0, 0], 'three turns settled at their actual usage');

    // This run's turns cost $0.10: turn 1 brings the day to $0.16; turn 2 would reserve $0.10 more → over $0.25.
    const { run: dear } = await submitRun(store, reg, { agent: 'thinker', input: null }, clock.now());
    usage.set(dear.id, 0.1);
    await worker.runOnce();
    assert.equal((await store.tasks.get(dear.rootTaskId))?.state, 'escalated');
    assert.deepEqual(
      calls.filter((c) => c.run === dear.id).map((c) => c.turn),
      [1],
      'turn 2 was stopped before the agent was called',
    );
    const [u2] = await store.limits.usage([key]);
    assert.deepEqual([u2?.spentMicros, u2?.reservedMicros], [160_000, 0]);
    const [esc] = await store.approvals.list({ runId: dear.id, limit: 5 });
    assert.deepEqual([esc?.kind, esc?.ruleId, (esc?.action as { kind: string }).kind], ['escalation', 'daily', 'turn']);
  });
});

describe('reservations whose holder died', () => {
  const BUDGET = 'cost:ceiling:run:run_crash';
  const acquire = (id: string, micros: number, now: number, extra: Partial<LimitAcquire> = {}): LimitAcquire => ({
    takes: [],
    budgets: [{ ruleId: 'ceiling', key: BUDGET, maxMicros: 1_000_000, maxTokens: null }],
    micros,
    tokens: 0,
    reservationId: id,
    runId: 'run_crash',
    taskId: 'task_crash',
    expiresAt: now + 60_000,
    ...extra,
  });
  const usage = async (store: Store) => {
    const [u] = await store.limits.usage([BUDGET]);
    return { spent: u?.spentMicros ?? 0, reserved: u?.reservedMicros ?? 0 };
  };

  it('an unsettled reservation holds its share until it expires, then is released: no leak, no overshoot', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const now = Date.now();
    assert.deepEqual(await store.limits.acquire(acquire('rsv_dead', 600_000, now), now), { ok: true, reservationId: 'rsv_dead' });
    // Its holder dies here: it never settles.
    assert.deepEqual(await usage(store), { spent: 0, reserved: 600_000 });
    const refused = await store.limits.acquire(acquire('rsv_2', 600_000, now), now);
    assert.deepEqual(refused, { ok: false, kind: 'cost', ruleId: 'ceiling', key: BUDGET }, 'the held share still counts: no overshoot');
    assert.equal(await store.limits.releaseExpired(now + 1_000), 0, 'not expired yet');
    assert.deepEqual(await usage(store), { spent: 0, reserved: 600_000 });

    // Forge the passage of time: the reservation's expiry is in the past.
    await forge(store, 'UPDATE reservations SET expires_at = ? WHERE id = ?', [now - 1, 'rsv_dead']);
    assert.equal(await store.limits.releaseExpired(now), 1);
    assert.deepEqual(await usage(store), { spent: 0, reserved: 0 }, 'released: nothing leaked, nothing spent');
    assert.equal(await store.limits.releaseExpired(now), 0, 'released once');

    // A later reservation fits again, and settles at its actual amount.
    assert.equal((await store.limits.acquire(acquire('rsv_3', 600_000, now), now)).ok, true);
    await store.limits.settle({ reservationId: 'rsv_3', micros: 550_000, tokens: 0 }, now);
    assert.deepEqual(await usage(store), { spent: 550_000, reserved: 0 });

    // Settling the released one (its holder woke up late) changes nothing; settling twice neither.
    await store.limits.settle({ reservationId: 'rsv_dead', micros: 600_000, tokens: 0 }, now);
    await store.limits.settle({ reservationId: 'rsv_3', micros: 550_000, tokens: 0 }, now);
    assert.deepEqual(await usage(store), { spent: 550_000, reserved: 0 });
    // … and releasing a settled one neither.
    assert.equal(await store.limits.releaseExpired(now + 10 * 60_000), 0);
    assert.deepEqual(await usage(store), { spent: 550_000, reserved: 0 });

    const audit = await store.audit.list({ runId: 'run_crash', limit: 100 });
    assert.deepEqual(
      audit.map((e) => e.kind),
      ['cost.released', 'cost.settled'],
    );
    assert.equal(audit[0]!.actor, 'reaper');
  });

  it('spend is reserved only under a held lease; a released or cancelled task gives its reservations back (no leak until expiry)', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const now = Date.now();
    const mine = async () => {
      const { run } = await store.runs.create({ agent: 'a', input: null, maxAttempts: 3 }, now);
      const [claimed] = await store.tasks.claim({ workerId: 'wrk_a', limit: 1, leaseMs: 60_000, now });
      assert.ok(claimed && claimed.task.runId === run.id);
      return { run, claimed };
    };
    const budget = (runId: string) => `cost:ceiling:run:${runId}`;
    const reserve = (id: string, runId: string, taskId: string, holder: string) =>
      store.limits.acquire({ ...acquire(id, 100_000, now), budgets: [{ ruleId: 'ceiling', key: budget(runId), maxMicros: 1_000_000, maxTokens: null }], runId, taskId, holder }, now);
    const reserved = async (runId: string) => (await store.limits.usage([budget(runId)]))[0]?.reservedMicros ?? 0;

    // 1. The lease was lost (expired and reclaimed) before the stalled holder reserved: refused, nothing held.
    const lost = await mine();
    await forge(store, 'UPDATE tasks SET lease_expires_at = ? WHERE id = ?', [now - 1, lost.claimed.task.id]);
    assert.equal(await store.tasks.reclaimExpired(now, 5), 1);
    await assert.rejects(reserve('rsv_lost', lost.run.id, lost.claimed.task.id, 'wrk_a'), LeaseLostError);
    assert.equal(await reserved(lost.run.id), 0, 'nothing reserved under a lost lease');
    await store.runs.cancel(lost.run.id, now, 'test');

    // 2. Handed back unfinished (a drain): its reservation is released with it.
    const drained = await mine();
    assert.equal((await reserve('rsv_drain', drained.run.id, drained.claimed.task.id, 'wrk_a')).ok, true);
    assert.equal(await reserved(drained.run.id), 100_000);
    await store.tasks.release([drained.claimed.lease], now);
    assert.equal(await reserved(drained.run.id), 0, 'released with the task');
    await store.runs.cancel(drained.run.id, now, 'test');

    // 3. Cancelled mid-turn: its reservation is released in the cancel's commit.
    const cancelled = await mine();
    assert.equal((await reserve('rsv_cancel', cancelled.run.id, cancelled.claimed.task.id, 'wrk_a')).ok, true);
    await store.runs.cancel(cancelled.run.id, now, 'carol');
    assert.equal(await reserved(cancelled.run.id), 0, 'released with the cancel');
    const kinds = (await store.audit.list({ runId: cancelled.run.id, limit: 100 })).map((e) => e.kind);
    assert.ok(kinds.includes('cost.released'), kinds.join(', '));
    assert.equal(await store.limits.releaseExpired(now + 10 * 60_000), 0, 'nothing left for the expiry reaper');
  });

  it('acquiring is all or nothing: a refused budget leaves the other budgets and the rate buckets untouched', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const now = Date.now();
    const other = 'cost:small:global:2026-01-15';
    assert.equal((await store.limits.acquire(acquire('rsv_a', 900_000, now), now)).ok, true);
    const req = acquire('rsv_b', 200_000, now, {
      takes: [{ ruleId: 'rate', key: 'rate:r', capacity: 1, refillPerMs: 0.000001, onExceeded: 'fail' }],
      budgets: [
        { ruleId: 'small', key: other, maxMicros: 5_000_000, maxTokens: null },
        { ruleId: 'ceiling', key: BUDGET, maxMicros: 1_000_000, maxTokens: null },
      ],
    });
    assert.deepEqual(await store.limits.acquire(req, now), { ok: false, kind: 'cost', ruleId: 'ceiling', key: BUDGET });
    const [o] = await store.limits.usage([other]);
    assert.equal(o?.reservedMicros ?? 0, 0, 'the budget that fitted was rolled back');
    // The token was not taken either: with capacity 1, a lone take still succeeds.
    const take = await store.limits.acquire({ ...req, budgets: [], reservationId: 'rsv_c' }, now);
    assert.deepEqual(take, { ok: true, reservationId: null });
    const again = await store.limits.acquire({ ...req, budgets: [], reservationId: 'rsv_d' }, now);
    assert.equal(again.ok, false);
    assert.equal(!again.ok && again.kind, 'rate');
  });

  it('tokens ceilings count too, and a reservation spanning several budgets releases from all of them', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const now = Date.now();
    const req: LimitAcquire = {
      takes: [],
      budgets: [
        { ruleId: 'a', key: 'cost:a', maxMicros: null, maxTokens: 1_000 },
        { ruleId: 'b', key: 'cost:b', maxMicros: 10, maxTokens: null },
      ],
      micros: 10,
      tokens: 800,
      reservationId: 'rsv_multi',
      runId: 'run_m',
      taskId: 'task_m',
      expiresAt: now - 1,
    };
    assert.deepEqual(await store.limits.acquire(req, now), { ok: true, reservationId: 'rsv_multi' });
    assert.deepEqual(
      (await store.limits.usage(['cost:a', 'cost:b'])).map((u) => [u.reservedMicros, u.reservedTokens]),
      [
        [10, 800],
        [10, 800],
      ],
    );
    assert.deepEqual(await store.limits.acquire({ ...req, reservationId: 'rsv_multi2' }, now), { ok: false, kind: 'cost', ruleId: 'a', key: 'cost:a' }, '800 + 800 tokens > 1000');
    assert.equal(await store.limits.releaseExpired(now), 1);
    const after = await store.limits.usage(['cost:a', 'cost:b']);
    assert.deepEqual(
      after.map((u) => [u.key, u.reservedMicros, u.reservedTokens, u.spentMicros, u.spentTokens]),
      [
        ['cost:a', 0, 0, 0, 0],
        ['cost:b', 0, 0, 0, 0],
      ],
    );
    const { rows } = await forge(store, 'SELECT id, state FROM reservations ORDER BY id');
    assert.deepEqual(
      rows,
      [{ id: 'rsv_multi', state: 'released' }],
    );
  });
});

test('a worker SIGKILLed mid-tool leaves its reservation behind; after expiry it is released and the resumed call spends once', { timeout: 120_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const config = writeProject(dir, { toolCost: 0.6, policy: { rules: [{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 1 }] } });
  const workers: WorkerProcess[] = [];
  t.after(async () => {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    await cleanup();
  });
  const { run } = await store.runs.create({ agent: 'payer', input: { to: 'acme', amount: 5 }, maxAttempts: 2, actor: 'test' }, Date.now());
  const key = `cost:per-run:run:${run.id}`;

  // The worker dies right after the tool ran, before its outcome (and the settlement) was recorded.
  const doomed = startWorkerProcess(dir, ['--config', config, '--db', url, '--quiet'], { SPINE_FAULTS: 'after-effect-before-record' });
  workers.push(doomed);
  const exit = await doomed.exited;
  assert.equal(exit.signal, 'SIGKILL', doomed.output());
  assert.equal(readPayments(dir).length, 1, 'the tool ran');
  const [held] = await store.limits.usage([key]);
  assert.deepEqual([held?.reservedMicros, held?.spentMicros], [600_000, 0], 'the dead worker’s reservation is still held');

  // Forge the passage of time: the dead worker's lease and its reservation have expired.
  await forge(store, `UPDATE reservations SET expires_at = ? WHERE state = 'reserved'`, [Date.now() - 1]);
  await forge(store, `UPDATE tasks SET lease_expires_at = ? WHERE id = ?`, [Date.now() - 1, run.rootTaskId]);

  const next = startWorkerProcess(dir, ['--config', config, '--db', url, '--quiet']);
  workers.push(next);
  const done = await finished(store, run.id, 15_000);
  assert.equal(done.state, 'succeeded', `${JSON.stringify(done.error)}\n${next.output()}`);
  assert.deepEqual(done.output, { paid: { ok: true, amount: 5 } });

  const [u] = await store.limits.usage([key]);
  assert.deepEqual([u?.spentMicros, u?.reservedMicros], [600_000, 0], 'spent once; nothing leaked');
  const payments = readPayments(dir);
  assert.equal(payments.length, 2, 'the tool was re-executed once after the crash');
  assert.equal(payments[0]!.key, payments[1]!.key, 'under the same idempotency key');
  assert.equal(payments[1]!.maybeRepeated, true, 'and told it may be a repeat');
  const audit = await auditOf(store, run.id);
  assert.equal(audit.filter((e) => e.kind === 'cost.released').length, 1);
  assert.equal(audit.filter((e) => e.kind === 'cost.settled').length, 1);
});
