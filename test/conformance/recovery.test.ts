// Failure and recovery: retries with backoff, dead-lettering, replay, cancellation
// (with in-flight turns stopped and fenced) and per-turn timeouts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentContext } from '../../src/core/agent.ts';
import { InvalidInputError, InvalidStateError, NotFoundError, SpineError, TurnTimeoutError } from '../../src/core/errors.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import type { RetryPolicy } from '../../src/engine/options.ts';
import { backoffMs } from '../../src/core/backoff.ts';
import type { AuditEvent } from '../../src/store/store.ts';
import { auditOf, finished, gate, harness, registry, submit, until, type AgentDef } from '../helpers.ts';

const kinds = (events: AuditEvent[], kind: string) => events.filter((e) => e.kind === kind);

describe('backoffMs', () => {
  const policy: RetryPolicy = { maxAttempts: 10, initialMs: 100, maxMs: 1_000, factor: 2, jitter: 'none' };

  test('without jitter: initialMs · factor^(n−1), capped at maxMs', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(policy, n)),
      [100, 200, 400, 800, 1_000, 1_000, 1_000],
    );
    assert.equal(backoffMs({ ...policy, factor: 3 }, 3), 900);
    assert.equal(backoffMs(policy, 0), 100, 'no failure yet counts as the first');
  });

  test('full jitter: a uniform share of the capped backoff, from the random source', () => {
    const full: RetryPolicy = { ...policy, jitter: 'full' };
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoffMs(full, n, () => 0.5)),
      [50, 100, 200, 400, 500],
    );
    assert.equal(backoffMs(full, 3, () => 0), 0);
    const nearlyOne = () => 0.999_999;
    assert.equal(backoffMs(full, 3, nearlyOne), 399, 'never reaches the full backoff');
    assert.equal(backoffMs(full, 20, nearlyOne), 999, 'the cap applies before the jitter');
  });

  test('without jitter the random source is not consulted', () => {
    assert.equal(
      backoffMs(policy, 2, () => {
        throw new Error('random must not be called');
      }),
      200,
    );
  });
});

describe('retries', () => {
  test('a retryable failure twice then success: succeeded, attempts and backoff visible in the audit', async (t) => {
    const calls: Array<{ at: number; turn: number; attempt: number }> = [];
    const reg = registry({
      flaky: {
        fn: (input) => {
          calls.push({ at: Date.now(), turn: input.task.turn, attempt: input.task.attempt });
          if (calls.length <= 2) throw new Error(`flaky failure ${calls.length}`);
          return { output: 'finally' };
        },
        retry: { maxAttempts: 3, initialMs: 40, maxMs: 1_000, factor: 2, jitter: 'none' },
      },
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'flaky')).id);
    assert.equal(run.state, 'succeeded');
    assert.equal(run.output, 'finally');
    assert.deepEqual(
      calls.map((c) => [c.turn, c.attempt]),
      [
        [1, 1],
        [1, 2],
        [1, 3],
      ],
    );

    const audit = await auditOf(store, run.id);
    const failed = kinds(audit, 'task.failed');
    const scheduled = kinds(audit, 'task.retry-scheduled');
    assert.deepEqual(
      failed.map((e) => e.data),
      [1, 2].map((n) => ({ error: { code: 'AGENT_FAILED', message: `flaky failure ${n}`, retryable: true }, attempt: n })),
    );
    assert.equal(scheduled.length, 2);
    // The retry is scheduled exactly one backoff after the failure (no jitter): 40 ms, then 80 ms.
    for (const [i, ev] of scheduled.entries()) {
      const data = ev.data as { runAt: number; attempt: number };
      assert.equal(data.attempt, i + 1);
      assert.equal(data.runAt - ev.at, backoffMs(reg.agents.get('flaky')!.retry, i + 1));
    }
    // …and the task was not leased again before it was due.
    assert.ok(calls[1]!.at - calls[0]!.at >= 40, `second attempt ${calls[1]!.at - calls[0]!.at} ms after the first`);
    assert.ok(calls[2]!.at - calls[1]!.at >= 80, `third attempt ${calls[2]!.at - calls[1]!.at} ms after the second`);

    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.state, 'succeeded');
    assert.equal(task.turns, 1);
    assert.equal(kinds(audit, 'task.dead').length, 0);
  });

  test('a non-retryable error goes dead after one attempt', async (t) => {
    let calls = 0;
    const reg = registry({
      picky: {
        fn: () => {
          calls++;
          throw new InvalidInputError('task.input.query', 'must not be empty');
        },
        retry: { maxAttempts: 5 },
      },
      denied: {
        fn: () => {
          calls++;
          throw new SpineError('POLICY_DENIED', 'not allowed today', { retryable: false });
        },
        retry: { maxAttempts: 5 },
      },
    });
    const { store } = await harness(t, reg);
    for (const [agent, code] of [
      ['picky', 'INVALID_INPUT'],
      ['denied', 'POLICY_DENIED'],
    ] as const) {
      calls = 0;
      const run = await finished(store, (await submit(store, reg, agent)).id);
      assert.equal(run.state, 'failed', agent);
      assert.equal(run.error!.code, code);
      assert.equal(calls, 1, `${agent} ran once`);
      const task = (await store.tasks.get(run.rootTaskId))!;
      assert.equal(task.state, 'dead');
      assert.equal(task.attempt, 1);
      const audit = await auditOf(store, run.id);
      assert.equal(kinds(audit, 'task.failed').length, 1);
      assert.equal(kinds(audit, 'task.retry-scheduled').length, 0);
    }
  });

  test('attempts exhausted: dead, run failed, listed among dead tasks; retries respect the jittered backoff', async (t) => {
    let calls = 0;
    const reg = registry({
      doomed: () => {
        calls++;
        throw new Error('always broken');
      },
      fine: () => ({ output: 1 }),
    });
    const policy = reg.agents.get('doomed')!.retry;
    assert.equal(policy.maxAttempts, 3);
    assert.equal(policy.jitter, 'full');
    const { store } = await harness(t, reg);
    const ok = await finished(store, (await submit(store, reg, 'fine')).id);
    const run = await finished(store, (await submit(store, reg, 'doomed')).id);
    assert.equal(ok.state, 'succeeded');
    assert.equal(run.state, 'failed');
    assert.equal(run.error!.code, 'AGENT_FAILED');
    assert.match(run.error!.message, /always broken/);
    assert.notEqual(run.finishedAt, null);
    assert.equal(calls, 3);

    const dead = await store.tasks.list({ state: 'dead', limit: 10 });
    assert.deepEqual(
      dead.map((d) => d.id),
      [run.rootTaskId],
    );
    assert.equal(dead[0]!.attempt, 3);
    assert.equal(dead[0]!.error!.code, 'AGENT_FAILED');
    assert.deepEqual(
      (await store.runs.list({ state: 'failed', limit: 10 })).map((r) => r.id),
      [run.id],
    );

    const audit = await auditOf(store, run.id);
    assert.deepEqual(
      kinds(audit, 'task.failed').map((e) => (e.data as { attempt: number }).attempt),
      [1, 2, 3],
    );
    const scheduled = kinds(audit, 'task.retry-scheduled');
    assert.equal(scheduled.length, 2);
    for (const [i, ev] of scheduled.entries()) {
      const { runAt } = ev.data as { runAt: number };
      const cap = policy.initialMs * policy.factor ** i;
      assert.ok(runAt >= ev.at && runAt < ev.at + cap, `retry ${i + 1} at +${runAt - ev.at} ms, within [0, ${cap})`);
    }
    assert.equal(kinds(audit, 'task.dead').length, 1);
    assert.equal(kinds(audit, 'run.failed').length, 1);
  });
});

describe('replay', () => {
  test('retryRun replays a failed run from its last committed turn', async (t) => {
    let healed = false;
    const turnCalls = new Map<number, number>();
    const inputs: TurnInput[] = [];
    let toolRuns = 0;
    const reg = registry(
      {
        phoenix: {
          fn: (input) => {
            const n = input.task.turn;
            turnCalls.set(n, (turnCalls.get(n) ?? 0) + 1);
            inputs.push(structuredClone(input));
            if (n === 1) return { actions: [{ type: 'tool', tool: 'fetch', input: 'page' }] };
            if (!healed) throw new Error('downstream unavailable');
            return { output: { turn: n, fetched: input.results[0]!.ok ? input.results[0]!.value : null } };
          },
          retry: { maxAttempts: 2 },
        },
      },
      { fetch: (x) => (toolRuns++, `contents of ${x as string}`) },
    );
    const { store } = await harness(t, reg);
    const first = await finished(store, (await submit(store, reg, 'phoenix')).id);
    assert.equal(first.state, 'failed');
    const deadTask = (await store.tasks.get(first.rootTaskId))!;
    assert.equal(deadTask.state, 'dead');
    assert.equal(deadTask.turns, 1, 'turn 1 stays committed');
    assert.deepEqual(Object.fromEntries(turnCalls), { 1: 1, 2: 2 });

    healed = true;
    const retried = await store.runs.retry(first.id, Date.now(), 'operator');
    assert.equal(retried.state, 'running');
    assert.equal(retried.error, null);
    const run = await finished(store, first.id);
    assert.equal(run.state, 'succeeded');
    assert.deepEqual(run.output, { turn: 2, fetched: 'contents of page' });

    // Turn 1 (and its tool) were not run again; turn 2 ran with a fresh attempt budget.
    assert.deepEqual(Object.fromEntries(turnCalls), { 1: 1, 2: 3 });
    assert.equal(toolRuns, 1);
    const last = inputs.at(-1)!;
    assert.equal(last.task.turn, 2);
    assert.equal(last.task.attempt, 1);
    assert.deepEqual(
      last.history.map((h) => h.turn),
      [1],
    );
    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.state, 'succeeded');
    assert.equal(task.turns, 2);
    assert.deepEqual(
      (await store.tasks.turns(task.id)).map((x) => x.turn),
      [1, 2],
    );

    const audit = await auditOf(store, run.id);
    assert.equal(kinds(audit, 'run.retried').length, 1);
    assert.equal(kinds(audit, 'run.retried')[0]!.actor, 'operator');
    assert.equal(kinds(audit, 'task.replayed').length, 1);
    assert.equal(kinds(audit, 'run.failed').length, 1);
    assert.equal(kinds(audit, 'run.succeeded').length, 1);
  });

  test('retryRun refuses a run that did not fail, and an unknown run, changing nothing', async (t) => {
    const reg = registry({ fine: () => ({ output: 'ok' }) });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'fine')).id);
    assert.equal(run.state, 'succeeded');
    await assert.rejects(store.runs.retry(run.id, Date.now(), 'operator'), (err: unknown) => {
      assert.ok(err instanceof InvalidStateError);
      assert.match(err.message, /succeeded; only a failed run can be retried/);
      return true;
    });
    await assert.rejects(store.runs.retry('run_nope', Date.now(), 'operator'), NotFoundError);
    assert.deepEqual(await store.runs.get(run.id), run);
    assert.equal(kinds(await auditOf(store, run.id), 'run.retried').length, 0);
  });
});

describe('cancellation', () => {
  /**
   * An agent that stays in its turn until its signal fires, then answers anyway (too late).
   * Its timeout is far away, so only a cancel can end the turn.
   */
  function blocker(entered: string[], aborted: string[]): AgentDef {
    return {
      timeoutMs: 60_000,
      fn: async (input: TurnInput, ctx: AgentContext) => {
        entered.push(input.task.id);
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        assert.ok(!(ctx.signal.reason instanceof TurnTimeoutError));
        aborted.push(input.task.id);
        return { output: 'too late' };
      },
    };
  }

  test('cancelRun cancels every unfinished task; heartbeats stop the in-flight turns, which never commit', async (t) => {
    const entered: string[] = [];
    const aborted: string[] = [];
    const reg = registry({
      lead: () => ({ actions: [{ type: 'handoff', agent: 'quick' }, { type: 'handoff', agent: 'mid' }, { type: 'handoff', agent: 'block' }] }),
      mid: () => ({ actions: [{ type: 'handoff', agent: 'block' }] }),
      quick: () => ({ output: 'quick' }),
      block: blocker(entered, aborted),
    });
    const { store, worker } = await harness(t, reg, { heartbeatMs: 25 });
    const run = await submit(store, reg, 'lead');
    await until('both blockers in their turn', () => entered.length === 2);
    const quick = (await store.tasks.list({ runId: run.id, limit: 10 })).find((x) => x.agent === 'quick')!;
    await until('quick child done', async () => (await store.tasks.get(quick.id))!.state === 'succeeded');

    const cancelled = await store.runs.cancel(run.id, Date.now(), 'operator', 'changed my mind');
    assert.equal(cancelled, 4, 'lead and mid (waiting) and both blockers (running)');

    // The worker learns of it from its heartbeat and aborts both turns.
    await until('both in-flight turns aborted', () => aborted.length === 2, 2_000);
    assert.deepEqual([...aborted].sort(), [...entered].sort());
    await until('worker idle', () => worker.running === 0);

    const after = await store.runs.get(run.id);
    assert.equal(after!.state, 'cancelled');
    assert.equal(after!.error!.code, 'CANCELLED');
    assert.match(after!.error!.message, /cancelled by operator: changed my mind/);
    assert.equal(after!.output, null);
    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    assert.equal(tasks.length, 5);
    for (const task of tasks) {
      if (task.agent === 'quick') {
        assert.equal(task.state, 'succeeded', 'a finished task keeps its result');
        continue;
      }
      assert.equal(task.state, 'cancelled', task.agent);
      assert.equal(task.error!.code, 'CANCELLED');
      assert.equal(task.leaseOwner, null);
      assert.equal(task.output, null);
    }
    for (const id of entered) assert.deepEqual(await store.tasks.turns(id), [], 'the aborted turn was not committed');

    const audit = await auditOf(store, run.id);
    assert.equal(kinds(audit, 'task.cancelled').length, 4);
    assert.equal(kinds(audit, 'run.cancelled').length, 1);
    const blockerEvents = audit.filter((e) => entered.includes(e.taskId ?? ''));
    assert.deepEqual(
      blockerEvents.filter((e) => e.kind.startsWith('turn.') || e.kind === 'task.succeeded' || e.kind === 'task.failed'),
      [],
    );
    await assert.rejects(store.runs.cancel(run.id, Date.now(), 'operator'), InvalidStateError);
  });

  test('a turn that answers after its task was cancelled is fenced: no commit, no effect', async (t) => {
    const release = gate();
    const entered: string[] = [];
    let toolRuns = 0;
    const reg = registry(
      {
        lead: () => ({ actions: [{ type: 'handoff', agent: 'stubborn', input: 'output' }, { type: 'handoff', agent: 'stubborn', input: 'tool' }] }),
        // Ignores its signal and answers once released.
        stubborn: async (input) => {
          entered.push(input.task.id);
          await release.promise;
          return input.task.input === 'tool' ? { actions: [{ type: 'tool', tool: 'charge', input: 100 }], output: 'late' } : { output: 'late' };
        },
      },
      { charge: () => (toolRuns++, 'charged') },
    );
    // Heartbeats far apart: only the commit fence can stop these turns.
    const { store, worker } = await harness(t, reg, { heartbeatMs: 60_000, leaseMs: 120_000 });
    const run = await submit(store, reg, 'lead');
    await until('both children in their turn', () => entered.length === 2);
    assert.equal(await store.runs.cancel(run.id, Date.now(), 'operator'), 3);
    release.open();
    await until('worker idle', () => worker.running === 0);

    assert.equal(toolRuns, 0, 'the late tool action never ran');
    assert.deepEqual(await store.tasks.effects({ runId: run.id }), []);
    for (const id of entered) {
      const task = (await store.tasks.get(id))!;
      assert.equal(task.state, 'cancelled');
      assert.equal(task.output, null);
      assert.equal(task.turns, 0);
      assert.deepEqual(await store.tasks.turns(id), []);
    }
    assert.equal((await store.runs.get(run.id))!.state, 'cancelled');
    const audit = await auditOf(store, run.id);
    assert.equal(audit.filter((e) => entered.includes(e.taskId ?? '') && e.kind.startsWith('turn.')).length, 0);
  });

  test('cancelTask on children: the parent gets CANCELLED results for them and continues', async (t) => {
    const entered: string[] = [];
    const aborted: string[] = [];
    let joined: ActionResult[] = [];
    const reg = registry({
      lead: (input) => {
        if (input.task.turn === 1) {
          return { actions: [{ type: 'handoff', agent: 'block', id: 'slow' }, { type: 'handoff', agent: 'quick', id: 'fast' }, { type: 'handoff', agent: 'mid', id: 'deep' }] };
        }
        joined = structuredClone(input.results);
        return { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) };
      },
      mid: () => ({ actions: [{ type: 'handoff', agent: 'block' }] }),
      quick: () => ({ output: 'quick' }),
      block: blocker(entered, aborted),
    });
    const { store } = await harness(t, reg, { heartbeatMs: 25 });
    const run = await submit(store, reg, 'lead');
    await until('both blockers in their turn', () => entered.length === 2);
    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    const slow = tasks.find((x) => x.parentId === run.rootTaskId && x.agent === 'block')!;
    const mid = tasks.find((x) => x.agent === 'mid')!;
    const grandchild = tasks.find((x) => x.parentId === mid.id)!;

    assert.equal(await store.tasks.cancel(slow.id, Date.now(), 'operator'), 1);
    assert.equal((await store.runs.get(run.id))!.state, 'running', 'cancelling a child does not end the run');
    assert.equal(await store.tasks.cancel(mid.id, Date.now(), 'operator', 'not needed'), 2, 'mid and its child');

    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.output, ['CANCELLED', 'quick', 'CANCELLED']);
    assert.deepEqual(
      joined.map((r) => [r.id, r.ok, r.taskId]),
      [
        ['slow', false, slow.id],
        ['fast', true, tasks.find((x) => x.agent === 'quick')!.id],
        ['deep', false, mid.id],
      ],
    );
    assert.match(!joined[2]!.ok ? joined[2]!.error.message : '', /cancelled by operator: not needed/);
    for (const id of [slow.id, mid.id, grandchild.id]) assert.equal((await store.tasks.get(id))!.state, 'cancelled');

    // Both blocked turns were stopped by the heartbeat.
    await until('both in-flight turns aborted', () => aborted.length === 2, 2_000);
    assert.deepEqual([...aborted].sort(), [slow.id, grandchild.id].sort());
    await assert.rejects(store.tasks.cancel(slow.id, Date.now(), 'operator'), InvalidStateError);
  });
});

describe('per-turn timeout', () => {
  test('an agent that never answers: TURN_TIMEOUT, retried, then dead', async (t) => {
    const signals: AbortSignal[] = [];
    const starts: number[] = [];
    const reg = registry({
      silent: {
        fn: (_input, ctx) => {
          signals.push(ctx.signal);
          starts.push(Date.now());
          return new Promise<Json>(() => {});
        },
        timeoutMs: 100,
        retry: { maxAttempts: 2, initialMs: 5, jitter: 'none' },
      },
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'silent')).id);
    assert.equal(run.state, 'failed');
    assert.equal(run.error!.code, 'TURN_TIMEOUT');
    assert.match(run.error!.message, /within 100 ms/);
    assert.equal(signals.length, 2);
    // The agent is told: its signal fires with the timeout error.
    for (const s of signals) {
      assert.ok(s.aborted);
      assert.equal((s.reason as SpineError).code, 'TURN_TIMEOUT');
    }
    const audit = await auditOf(store, run.id);
    const failed = kinds(audit, 'task.failed');
    assert.deepEqual(
      failed.map((e) => (e.data as { error: { code: string } }).error.code),
      ['TURN_TIMEOUT', 'TURN_TIMEOUT'],
    );
    assert.equal(kinds(audit, 'task.retry-scheduled').length, 1);
    for (const [i, ev] of failed.entries()) assert.ok(ev.at - starts[i]! >= 95, `attempt ${i + 1} failed after ${ev.at - starts[i]!} ms`);
    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.state, 'dead');
    assert.equal(task.attempt, 2);
    assert.equal(task.turns, 0);
  });
});
