// Circuit breakers shared by every worker (docs/validation.md), on the store the suite
// runs on: opened by failures, open work deferred without using attempts, a
// half-open probe that closes or re-opens, tools refused fast, and a breaker opened
// by one worker (its own store connection) seen by another.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentFunction } from '../../src/core/agent.ts';
import { ManualClock, systemClock } from '../../src/core/clock.ts';
import type { Registry } from '../../src/engine/options.ts';
import { openStore } from '../../src/runtime/open-store.ts';
import { BreakerBoard, DEFAULT_BREAKERS, type BreakerSettings } from '../../src/validation/breakers.ts';
import { auditOf, finished, harness, registry, startWorker, submit, tempStore, until } from '../helpers.ts';

const withBreakers = (reg: Registry, s: Partial<BreakerSettings>): Registry => ({ ...reg, breakers: { ...DEFAULT_BREAKERS, refreshMs: 10, ...s } });

describe('circuit breakers', () => {
  it('failures open the breaker; the retry waits out the cooldown without an attempt; the half-open probe closes it', async (t) => {
    let calls = 0;
    const flaky: AgentFunction = () => {
      calls++;
      if (calls <= 2) throw new Error(`down ${calls}`);
      return { output: 'up' };
    };
    const reg = withBreakers(registry({ flaky: { fn: flaky, retry: { maxAttempts: 3 } } }), { failures: 2, cooldownMs: 1_500 });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'flaky')).id);
    assert.equal(run.state, 'succeeded', 'the third attempt ran once the breaker let the probe through');
    assert.equal(calls, 3, 'the rejection called nothing and used no attempt');
    const kinds = (await auditOf(store, run.id)).map((e) => e.kind).filter((k) => k.startsWith('breaker.'));
    assert.deepEqual(kinds.slice(0, 1), ['breaker.rejected'], 'the retry came while the breaker was open');
    const all = await store.audit.list({ limit: 1000 });
    const transitions = all.filter((e) => e.kind.startsWith('breaker.') && e.kind !== 'breaker.rejected').map((e) => e.kind);
    assert.deepEqual(transitions, ['breaker.opened', 'breaker.half-open', 'breaker.closed']);
    const [b] = await store.breakers.list();
    assert.equal(b!.key, 'agent:flaky');
    assert.equal(b!.state, 'closed');
  });

  it('a failed half-open probe opens the breaker again; only one worker holds the probe', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const clock = new ManualClock(1_000_000);
    const s: BreakerSettings = { ...DEFAULT_BREAKERS, failures: 1, cooldownMs: 1_000, refreshMs: 0 };
    const a = new BreakerBoard(store.breakers, s, clock, 'wrk_a');
    const b = new BreakerBoard(store.breakers, s, clock, 'wrk_b');
    await a.record('tool:x', false, 'TOOL_FAILED');
    const rejected = await b.admit('tool:x');
    assert.equal(rejected.ok, false, 'the other worker sees it open');
    assert.equal(!rejected.ok && rejected.retryAt, 1_001_000);
    clock.advance(1_000);
    assert.deepEqual(await a.admit('tool:x'), { ok: true, probe: true });
    const second = await b.admit('tool:x');
    assert.equal(second.ok, false, 'one probe at a time');
    await a.record('tool:x', false, 'TOOL_FAILED');
    const reopened = await store.breakers.get('tool:x');
    assert.equal(reopened!.state, 'open');
    assert.equal(reopened!.retryAt, 1_002_000);
    const events = (await store.audit.list({ limit: 100 })).map((e) => [e.kind, (e.data as { why?: string }).why ?? null]);
    assert.deepEqual(events, [
      ['breaker.opened', '1 failures within 60000 ms'],
      ['breaker.half-open', null],
      ['breaker.opened', 'the half-open probe failed'],
    ]);
  });

  it('an error rate opens it too; successes on a quiet closed breaker write nothing', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const clock = new ManualClock(5_000);
    const board = new BreakerBoard(store.breakers, { ...DEFAULT_BREAKERS, failures: 100, errorRate: 0.5, minCalls: 4, refreshMs: 0 }, clock, 'w');
    await board.record('agent:a', true);
    assert.equal(await store.breakers.get('agent:a'), null, 'nothing written');
    await board.record('agent:a', false, 'AGENT_FAILED');
    await board.record('agent:a', true);
    await board.record('agent:a', false, 'AGENT_FAILED');
    assert.equal((await store.breakers.get('agent:a'))!.state, 'closed', '2 of 3: too few calls');
    await board.record('agent:a', false, 'AGENT_FAILED');
    assert.equal((await store.breakers.get('agent:a'))!.state, 'open', '3 of 4 failed');
  });

  it('a breaker opened by one worker is seen by another with its own connection: its task is deferred, the agent never called', async (t) => {
    const { store, url, cleanup } = await tempStore();
    let calls = 0;
    const reg = withBreakers(registry({ svc: () => (calls++, { output: 'ok' }) }), { failures: 1, cooldownMs: 60_000 });
    // Another worker (its own store connection and board) opens the breaker.
    const other = openStore({ url });
    await new BreakerBoard(other.breakers, reg.breakers!, systemClock, 'wrk_a').record('agent:svc', false, 'AGENT_FAILED');
    const worker = await startWorker(store, reg);
    t.after(async () => {
      await worker.stop();
      await other.close();
      await cleanup();
    });
    const run = await submit(store, reg, 'svc');
    await until('the task met the open breaker', async () => (await auditOf(store, run.id)).some((e) => e.kind === 'breaker.rejected'));
    assert.equal(calls, 0, 'the agent was never called');
    const [task] = await store.tasks.list({ runId: run.id, limit: 1 });
    assert.equal(task!.attempt, 0, 'no attempt used');
    assert.ok(task!.state === 'waiting' || task!.state === 'queued' || task!.state === 'retry-scheduled', task!.state);
  });

  it('fallback: a task whose attempts are spent is handed over to the fallback agent, with fresh attempts, audited', async (t) => {
    let primaryCalls = 0;
    const primary: AgentFunction = () => {
      primaryCalls++;
      throw new Error('primary is down');
    };
    const reg = registry({ primary: { fn: primary, retry: { maxAttempts: 2 }, fallback: 'backup' }, backup: (t) => ({ output: { by: 'backup', input: t.task.input } }) });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'primary', { q: 1 })).id);
    assert.equal(run.state, 'succeeded');
    assert.deepEqual(run.output, { by: 'backup', input: { q: 1 } });
    assert.equal(primaryCalls, 2, 'both attempts were spent first');
    const handed = (await auditOf(store, run.id)).find((e) => e.kind === 'task.handed-over');
    assert.deepEqual({ ...(handed!.data as object), error: undefined }, { from: 'primary', to: 'backup', why: 'attempts-spent', error: undefined });
    const [task] = await store.tasks.list({ runId: run.id, limit: 1 });
    assert.equal(task!.agent, 'backup');
  });

  it('fallback: work for an agent whose breaker is open goes to its fallback at once', async (t) => {
    const { store, cleanup } = await tempStore();
    let primaryCalls = 0;
    const reg = withBreakers(registry({ primary: { fn: () => (primaryCalls++, { output: 'primary' }), fallback: 'backup' }, backup: () => ({ output: 'backup' }) }), { failures: 1, cooldownMs: 60_000 });
    await new BreakerBoard(store.breakers, reg.breakers!, systemClock, 'wrk_a').record('agent:primary', false, 'AGENT_FAILED');
    const worker = await startWorker(store, reg);
    t.after(async () => {
      await worker.stop();
      await cleanup();
    });
    const run = await finished(store, (await submit(store, reg, 'primary')).id);
    assert.equal(run.output, 'backup');
    assert.equal(primaryCalls, 0);
    const handed = (await auditOf(store, run.id)).find((e) => e.kind === 'task.handed-over');
    assert.equal((handed!.data as { why: string }).why, 'breaker-open');
  });
});
