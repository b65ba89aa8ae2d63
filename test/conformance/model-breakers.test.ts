// Circuit breakers per LLM model endpoint (docs/validation.md), on the store the suite
// runs on: a fake provider that fails N times opens its endpoint's breaker; the next
// model of the chain takes over without a call to the open one; with every model open
// the task waits out the cooldown without using an attempt, or goes to the agent's
// fallback; the half-open probe closes the breaker. Time is a ManualClock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LlmAgent } from '../../src/agents/llm/agent.ts';
import { Cooldowns } from '../../src/agents/llm/failover.ts';
import { ProviderError, type ModelReply, type ProviderCall } from '../../src/agents/llm/types.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { Registry } from '../../src/engine/options.ts';
import { Worker } from '../../src/engine/worker.ts';
import { DEFAULT_BREAKERS } from '../../src/validation/breakers.ts';
import { llmConfig } from '../fixtures/llm-helpers.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import type { Store } from '../../src/store/store.ts';
import { auditOf, registry, tempStore } from '../helpers.ts';

const START = Date.UTC(2026, 0, 1);
const reply = (text: string): ModelReply => ({ text, calls: [], final: null, stop: 'end', refusal: null, usage: null });

/** A provider whose model `failing` answers 503 the first `n` calls (Infinity: always), and every other model answers. */
function flaky(failing: string, n: number) {
  const calls: string[] = [];
  const call: ProviderCall = async (target) => {
    calls.push(target.model);
    if (target.model === failing && calls.filter((m) => m === failing).length <= n) throw new ProviderError('server-error', 'HTTP 503', { status: 503 });
    return reply(`from ${target.model}`);
  };
  return { call, calls };
}

function agent(clock: ManualClock, models: string[], provider: ProviderCall, extra: Record<string, unknown> = {}): LlmAgent {
  return new LlmAgent({
    name: 'writer',
    path: 'agents.writer',
    config: llmConfig({ models: models.map((model) => ({ provider: 'openai', model, baseURL: 'http://models.test:8080/v1', apiKey: 'k', maxRetries: (extra.maxRetries as number | undefined) ?? 0 })), cooldownMs: 0, ...extra }),
    system: '',
    cooldowns: new Cooldowns(),
    env: {},
    providers: { openai: provider },
    now: () => clock.now(),
  });
}

async function submit(store: Store, reg: Registry, clock: ManualClock, input: { text: string }) {
  return (await submitRun(store, reg, { agent: 'writer', input, actor: 'test' }, clock.now())).run;
}

const withBreakers = (reg: Registry): Registry => ({ ...reg, breakers: { ...DEFAULT_BREAKERS, failures: 2, cooldownMs: 10_000, refreshMs: 0 } });

describe('model endpoint breakers', () => {
  it('N failures open the endpoint; the next model answers without a call to the open one', async (t) => {
    const clock = new ManualClock(START);
    const p = flaky('big', Infinity);
    const reg = withBreakers(registry({ writer: { agent: agent(clock, ['big', 'small'], p.call) } }));
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const worker = new Worker({ store, registry: reg, clock });
    for (let i = 0; i < 3; i++) {
      const run = await submit(store, reg, clock, { text: `q${i}` });
      await worker.runOnce();
      const done = await store.runs.get(run.id);
      assert.equal(done!.state, 'succeeded');
      assert.equal(done!.output, 'from small');
    }
    assert.deepEqual(p.calls, ['big', 'small', 'big', 'small', 'small'], 'the third turn skipped the open endpoint');
    const b = await store.breakers.get('model:openai:big@models.test:8080');
    assert.equal(b?.state, 'open');
    assert.equal(b?.lastError, 'server-error');
    assert.equal((await store.breakers.get('agent:writer'))?.state ?? 'closed', 'closed', "the agent's own breaker saw only successful turns");
  });

  it('every model open: the task waits out the cooldown without an attempt; the half-open probe closes it', async (t) => {
    const clock = new ManualClock(START);
    const p = flaky('only', 2);
    const reg = withBreakers(registry({ writer: { agent: agent(clock, ['only'], p.call, { pinned: true, maxRetries: 1, retryBackoffMs: 0 }), retry: { maxAttempts: 3 } } }));
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const worker = new Worker({ store, registry: reg, clock });
    const run = await submit(store, reg, clock, { text: 'q' });
    await worker.runOnce();
    assert.deepEqual(p.calls, ['only', 'only'], `one call and its retry, both 503: ${JSON.stringify(await store.tasks.list({ runId: run.id, limit: 5 }))}`);
    const key = 'model:openai:only@models.test:8080';
    assert.equal((await store.breakers.get(key))?.state, 'open');
    let [task] = await store.tasks.list({ runId: run.id, limit: 5 });
    assert.equal(task!.attempt, 1, 'the failed turn used one attempt');

    clock.advance(1_000); // past the retry's backoff, not the breaker's cooldown
    await worker.runOnce();
    assert.deepEqual(p.calls, ['only', 'only'], 'no call while the endpoint is open');
    [task] = await store.tasks.list({ runId: run.id, limit: 5 });
    assert.equal(task!.attempt, 1, 'the rejection used no attempt');
    assert.equal(task!.runAt, START + 10_000, 'deferred to the end of the cooldown');
    const rejected = (await auditOf(store, run.id)).filter((e) => e.kind === 'breaker.rejected');
    assert.deepEqual(
      rejected.map((e) => [(e.data as { breaker?: string }).breaker, (e.data as { code?: string }).code]),
      [[key, 'CIRCUIT_OPEN']],
    );

    clock.advance(10_000);
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    assert.deepEqual(p.calls, ['only', 'only', 'only'], 'the half-open probe was the one call');
    assert.equal((await store.breakers.get(key))?.state, 'closed');
    const kinds = (await store.audit.list({ limit: 1000 })).map((e) => e.kind).filter((k) => k.startsWith('breaker.') && k !== 'breaker.rejected');
    assert.deepEqual(kinds, ['breaker.opened', 'breaker.half-open', 'breaker.closed']);
  });

  it("every model open and a fallback agent: the task is handed over at once", async (t) => {
    const clock = new ManualClock(START);
    const p = flaky('only', Infinity);
    const reg = withBreakers(
      registry({
        writer: { agent: agent(clock, ['only'], p.call, { pinned: true, maxRetries: 1, retryBackoffMs: 0 }), retry: { maxAttempts: 5 }, fallback: 'backup' },
        backup: () => ({ output: 'from backup' }),
      }),
    );
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const worker = new Worker({ store, registry: reg, clock });
    const run = await submit(store, reg, clock, { text: 'q' });
    await worker.runOnce(); // two 503s: the endpoint opens; the attempt is retried later
    clock.advance(1_000);
    await worker.runOnce();
    const done = await store.runs.get(run.id);
    assert.equal(done!.state, 'succeeded');
    assert.equal(done!.output, 'from backup');
    assert.equal(p.calls.length, 2, 'the open endpoint was not called again');
    const handed = (await auditOf(store, run.id)).find((e) => e.kind === 'task.handed-over');
    assert.equal((handed?.data as { why?: string } | undefined)?.why, 'breaker-open');
  });
});
