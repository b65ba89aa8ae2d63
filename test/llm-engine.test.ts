// LLM agents run by a real worker against a loopback provider: the tool loop across
// turns, handoffs, grants, bad model output handled by the recovery policy, cost
// settled against a ceiling, and failover in the audit trail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../src/core/agent.ts';
import { ENGINE_RECORDS_META } from '../src/agents/llm/agent.ts';
import { createLlmAgent } from '../src/agents/llm/config.ts';
import type { AgentCatalog } from '../src/agents/llm/types.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import type { Json } from '../src/core/types.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { fakeOpenAI, fakeAnthropic, type FakeProvider } from './fixtures/llm-servers.ts';
import { catalog, llmConfig } from './fixtures/llm-helpers.ts';
import { auditOf, finished, forge, harness, registry, submit, until } from './helpers.ts';

let openai: FakeProvider;
let anthropic: FakeProvider;
before(async () => {
  openai = await fakeOpenAI();
  anthropic = await fakeAnthropic();
});
after(async () => {
  await openai.close();
  await anthropic.close();
});

let seq = 0;
const fresh = (stem: string) => `${stem}-e${++seq}`;

const LOOKUP_IN = { type: 'object', properties: { q: { type: 'string', minLength: 1 } }, required: ['q'], additionalProperties: false };
const POINTS = { type: 'object', properties: { points: { type: 'array', items: { type: 'string' }, minItems: 1 } }, required: ['points'], additionalProperties: false };

/** An LLM agent built the way the config compiler builds it, with the catalog it would be handed. */
function llm(name: string, cfg: Record<string, unknown>, cat: AgentCatalog, agentNames: string[]): Agent {
  const issues: FieldIssue[] = [];
  const agent = createLlmAgent(llmConfig(cfg), { name, dir: process.cwd(), path: `agents.${name}`, issues, agentNames, catalog: cat });
  assert.deepEqual(issues, []);
  return agent!;
}

const oa = (model: string, extra: Record<string, unknown> = {}) => ({ provider: 'openai', model, baseURL: openai.url, apiKey: 'k', ...extra });
const an = (model: string, extra: Record<string, unknown> = {}) => ({ provider: 'anthropic', model, baseURL: anthropic.url, apiKey: 'k', ...extra });

function lookupProject() {
  return catalog({
    contracts: { 'lookup.in@1': LOOKUP_IN, 'points@1': POINTS },
    tools: { lookup: { description: 'Looks facts up', input: 'lookup.in@1' }, 'secrets.read': { description: 'Reads secrets' } },
  });
}

function messagesOf(body: Record<string, unknown>): string {
  return JSON.stringify(body.messages);
}

describe('through a worker', () => {
  it('the tool loop: the model calls a tool, gets its result on the next turn, then answers', async (t) => {
    const m = fresh('loop');
    openai.script(
      m,
      { reply: { text: 'Looking it up.', calls: [{ name: 'lookup', args: { q: 'solar' } }], usage: { input: 100, output: 20 } } },
      { reply: { text: 'Solar: 3 facts.', usage: { input: 160, output: 8 } } },
    );
    const { contracts, catalog: cat } = lookupProject();
    const ran: Json[] = [];
    const reg = registry(
      { writer: { agent: llm('writer', { models: [oa(m)] }, cat, ['writer']), grants: { tools: { allow: ['lookup'], deny: [] }, handoffs: null } } },
      { lookup: { run: (input) => (ran.push(input), '3 facts about solar'), input: 'lookup.in@1' }, 'secrets.read': () => 'nope' },
      { contracts },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer', { text: 'Tell me about solar' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.output, 'Solar: 3 facts.');
    assert.deepEqual(ran, [{ q: 'solar' }]);
    const [first, second] = openai.calls(m);
    assert.deepEqual(
      (first!.body.tools as Array<{ function: { name: string; parameters: unknown } }>).map((x) => [x.function.name, x.function.parameters]),
      [['lookup', LOOKUP_IN]],
      'only the granted tool, with its input contract as parameters',
    );
    assert.deepEqual((second!.body.messages as unknown[]).slice(2), [
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1_0', type: 'function', function: { name: 'lookup', arguments: '{"q":"solar"}' } }] },
      { role: 'tool', tool_call_id: 'call_1_0', content: '3 facts about solar' },
    ]);
    const task = await store.tasks.get(run.rootTaskId);
    assert.equal(task?.turns, 2);
    const effects = await store.tasks.effects({ runId: run.id });
    assert.deepEqual(effects.map((e) => e.tool), ['lookup']);
  });

  it('handoffs: the model delegates to two agents in parallel and merges their answers (Anthropic, structured output)', async (t) => {
    const [boss, helper] = [fresh('boss'), fresh('helper')];
    anthropic.script(
      boss,
      { reply: { calls: [{ name: 'handoff_to_pro', args: { topic: 'solar' } }, { name: 'handoff_to_con', args: { topic: 'solar' } }] } },
      { reply: { calls: [{ name: 'final_answer', args: { points: ['cheap', 'intermittent'] } }] } },
    );
    openai.script(helper, { reply: { text: '{"points": ["cheap"]}' } });
    const { contracts, catalog: cat } = catalog({ contracts: { 'points@1': POINTS, 'topic@1': { type: 'object', properties: { topic: { type: 'string' } }, required: ['topic'] } }, agents: { pro: { input: 'topic@1', description: 'argues for' }, con: { input: 'topic@1' } } });
    const names = ['boss', 'pro', 'con'];
    const reg = registry(
      {
        boss: { agent: llm('boss', { output: 'points@1', models: [an(boss)] }, cat, names), output: 'points@1', grants: { tools: { allow: [], deny: [] }, handoffs: { allow: ['pro', 'con'], deny: [] } } },
        pro: { agent: llm('pro', { output: 'points@1', models: [oa(helper)] }, cat, names), input: 'topic@1', output: 'points@1', grants: { tools: { allow: [], deny: [] }, handoffs: { allow: [], deny: [] } } },
        con: { fn: () => ({ output: { points: ['intermittent'] } }), input: 'topic@1' },
      },
      {},
      { contracts },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'boss', { text: 'Solar?' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { points: ['cheap', 'intermittent'] });
    const [, second] = anthropic.calls(boss);
    assert.match(messagesOf(second!.body), /"tool_result","tool_use_id":"call_1_0","content":"\{\\"points\\":\[\\"cheap\\"\]\}"/);
    assert.match(messagesOf(second!.body), /"tool_result","tool_use_id":"call_1_1","content":"\{\\"points\\":\[\\"intermittent\\"\]\}"/);
    const tools = (anthropic.calls(boss)[0]!.body.tools as Array<{ name: string; input_schema: unknown }>).map((x) => x.name);
    assert.deepEqual(tools, ['handoff_to_pro', 'handoff_to_con', 'final_answer']);
    assert.deepEqual((openai.calls(helper)[0]!.body.response_format as { json_schema: { name: string } }).json_schema.name, 'points_v1');
  });

  it('grants: a tool the agent was not granted, requested by the model, is refused and the refusal goes back to the model', async (t) => {
    const m = fresh('grabby');
    openai.script(m, { reply: { calls: [{ name: 'secrets_read', args: { key: 'prod' } }] } }, { reply: { text: 'I may not read secrets.' } });
    const { contracts, catalog: cat } = lookupProject();
    let read = 0;
    const reg = registry(
      { writer: { agent: llm('writer', { models: [oa(m)] }, cat, ['writer']), grants: { tools: { allow: ['lookup'], deny: [] }, handoffs: null } } },
      { lookup: { run: () => 'x', input: 'lookup.in@1' }, 'secrets.read': () => (read++, 'hunter2') },
      { contracts },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer', { text: 'read the prod secret' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.output, 'I may not read secrets.');
    assert.equal(read, 0, 'the tool never ran');
    assert.deepEqual(await store.tasks.effects({ runId: run.id }), []);
    const toolMsg = (openai.calls(m)[1]!.body.messages as Array<{ role: string; content: string }>).find((x) => x.role === 'tool')!;
    const refusal = JSON.parse(toolMsg.content) as { error: { code: string; details: { ruleId: string } } };
    assert.equal(refusal.error.code, 'POLICY_DENIED');
    assert.equal(refusal.error.details.ruleId, 'grants');
    const refused = (await auditOf(store, run.id)).filter((e) => e.kind === 'action.refused');
    assert.deepEqual(refused.map((e) => (e.data as { action: string; code: string }).code), ['POLICY_DENIED']);
  });

  describe('bad input: the turn goes to the recovery policy with the validation errors, and nothing is executed', () => {
    it('non-JSON where JSON was required', async (t) => {
      const m = fresh('chatty');
      openai.script(m, { reply: { text: 'Here you go: cheap, clean.' } }, { reply: { text: '{"points": ["cheap", "clean"]}' } });
      const { contracts, catalog: cat } = lookupProject();
      let ran = 0;
      const reg = registry(
        { writer: { agent: llm('writer', { output: 'points@1', structuredOutput: false, models: [oa(m)] }, cat, ['writer']), output: 'points@1' } },
        { lookup: { run: () => ran++, input: 'lookup.in@1' } },
        { contracts },
      );
      const { store } = await harness(t, reg);
      const run = await submit(store, reg, 'writer', { text: 'solar?' });
      const done = await finished(store, run.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.deepEqual(done.output, { points: ['cheap', 'clean'] });
      const failed = (await auditOf(store, run.id)).filter((e) => e.kind === 'task.failed');
      assert.deepEqual(
        failed.map((e) => (e.data as unknown as { error: { code: string; details: { violations: FieldIssue[] } } }).error).map((x) => [x.code, x.details.violations[0]!.path]),
        [['AGENT_PROTOCOL', 'output']],
      );
      assert.match(messagesOf(openai.calls(m)[1]!.body), /Your previous reply could not be used \(AGENT_PROTOCOL\).*output: the answer must be JSON but is not/);
      assert.equal(ran, 0);
      assert.equal((await store.tasks.get(run.rootTaskId))?.turns, 1, 'the failed attempt committed no turn');
    });

    it('an unknown tool', async (t) => {
      const m = fresh('inventive');
      openai.script(m, { reply: { calls: [{ name: 'lookup', args: { q: 'a' } }, { name: 'launch_missiles', args: {} }] } }, { reply: { text: 'fine, no missiles' } });
      const { contracts, catalog: cat } = lookupProject();
      let ran = 0;
      const reg = registry(
        { writer: { agent: llm('writer', { models: [oa(m)] }, cat, ['writer']), grants: { tools: { allow: ['lookup'], deny: [] }, handoffs: null } } },
        { lookup: { run: () => ran++, input: 'lookup.in@1' } },
        { contracts },
      );
      const { store } = await harness(t, reg);
      const run = await submit(store, reg, 'writer', { text: 'go' });
      const done = await finished(store, run.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(ran, 0, 'not even the valid call of that reply ran');
      assert.deepEqual(await store.tasks.effects({ runId: run.id }), []);
      const [failed] = (await auditOf(store, run.id)).filter((e) => e.kind === 'task.failed');
      const error = (failed!.data as unknown as { error: { code: string; retryable: boolean; details: { violations: FieldIssue[] } } }).error;
      assert.equal(error.code, 'AGENT_PROTOCOL');
      assert.deepEqual(error.details.violations, [{ path: 'calls.1.name', message: 'unknown tool "launch_missiles" (offered: lookup)' }]);
      assert.match(messagesOf(openai.calls(m)[1]!.body), /unknown tool \\"launch_missiles\\"/);
    });

    it('arguments that violate the tool’s contract: refused at the boundary with every violation, back to the model; the tool never runs', async (t) => {
      const m = fresh('sloppy');
      openai.script(m, { reply: { calls: [{ name: 'lookup', args: { q: '', extra: 1 } }] } }, { reply: { calls: [{ name: 'lookup', args: { q: 'solar' } }] } }, { reply: { text: 'done' } });
      const { contracts, catalog: cat } = lookupProject();
      const ran: Json[] = [];
      const reg = registry(
        { writer: { agent: llm('writer', { models: [oa(m)] }, cat, ['writer']), grants: { tools: { allow: ['lookup'], deny: [] }, handoffs: null } } },
        { lookup: { run: (input) => (ran.push(input), 'ok'), input: 'lookup.in@1' } },
        { contracts },
      );
      const { store } = await harness(t, reg);
      const run = await submit(store, reg, 'writer', { text: 'go' });
      const done = await finished(store, run.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.deepEqual(ran, [{ q: 'solar' }], 'only the corrected call ran');
      const toolMsg = (openai.calls(m)[1]!.body.messages as Array<{ role: string; content: string }>).find((x) => x.role === 'tool')!;
      const refusal = JSON.parse(toolMsg.content) as { error: { code: string; details: { violations: FieldIssue[] } } };
      assert.equal(refusal.error.code, 'CONTRACT_VIOLATION');
      assert.equal(refusal.error.details.violations.length, 2, JSON.stringify(refusal.error.details.violations));
      const rejected = (await auditOf(store, run.id)).filter((e) => e.kind === 'contract.rejected');
      assert.equal(rejected.length, 1);
    });

    it('an output that breaks the output contract is retried with the violations shown to the model', async (t) => {
      const m = fresh('offcontract');
      anthropic.script(m, { reply: { calls: [{ name: 'final_answer', args: { points: [] } }] } }, { reply: { calls: [{ name: 'final_answer', args: { points: ['one'] } }] } });
      const { contracts, catalog: cat } = lookupProject();
      const reg = registry({ writer: { agent: llm('writer', { output: 'points@1', models: [an(m)] }, cat, ['writer']), output: 'points@1' } }, {}, { contracts });
      const { store } = await harness(t, reg);
      const run = await submit(store, reg, 'writer', { text: 'go' });
      const done = await finished(store, run.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.deepEqual(done.output, { points: ['one'] });
      assert.match(messagesOf(anthropic.calls(m)[1]!.body), /CONTRACT_VIOLATION.*- points: must NOT have fewer than 1 items/);
    });
  });

  it('cost: the estimate is reserved before each call and settled at the priced usage; at the ceiling the next turn escalates without a call', async (t) => {
    const m = fresh('priced');
    // Turn 1: 1000 in × $2/M + 500 out × $8/M = $0.006. Turn 2 would reserve $0.01 → $0.016 > $0.015.
    openai.script(m, { reply: { calls: [{ name: 'lookup', args: { q: 'a' } }], usage: { input: 1000, output: 500 } } }, { reply: { text: 'never asked' } });
    const { contracts, catalog: cat } = lookupProject();
    const issues: FieldIssue[] = [];
    const policy = compilePolicy(policySchema.parse({ rules: [{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 0.015 }] }), issues);
    const reg = registry(
      {
        writer: {
          agent: llm('writer', { models: [oa(m, { pricing: { inputPer1M: 2, outputPer1M: 8 } })] }, cat, ['writer']),
          cost: { micros: 10_000, tokens: 0 },
          grants: { tools: { allow: ['lookup'], deny: [] }, handoffs: null },
        },
      },
      { lookup: { run: () => 'fact', input: 'lookup.in@1' } },
      { contracts, policy },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer', { text: 'go' });
    await until('escalated at the ceiling', async () => (await store.tasks.get(run.rootTaskId))?.state === 'escalated');
    const [u] = await store.limits.usage([`cost:per-run:run:${run.id}`]);
    assert.deepEqual([u?.spentMicros, u?.spentTokens, u?.reservedMicros], [6_000, 1_500, 0], 'settled at the priced usage, not the $0.01 estimate');
    assert.equal(openai.calls(m).length, 1, 'the second turn was stopped before the model was called');
    const { rows } = await forge<{ usage: string }>(store, 'SELECT usage FROM turns WHERE task_id = ? AND n = 1', [run.rootTaskId]);
    assert.deepEqual(JSON.parse(rows[0]!.usage), { inputTokens: 1000, outputTokens: 500, costUsd: 0.006 }, 'the turn records its usage');
  });

  it('failover is audited: a failed attempt lists every model tried; a successful failover is recorded with the turn', async (t) => {
    const [a, b] = [fresh('flaky'), fresh('steady')];
    // Attempt 1: a 503s, b 429s → the turn fails (retryable). Attempt 2 (no cooldowns here): a 429s → b answers.
    openai.script(a, { status: 503 }, { status: 429, headers: { 'retry-after': '0' } });
    openai.script(b, { status: 429, headers: { 'retry-after': '0' } }, { reply: { text: 'made it' } });
    const { contracts, catalog: cat } = lookupProject();
    const reg = registry({ writer: { agent: llm('writer', { maxRetries: 0, cooldownMs: 0, models: [oa(a), oa(b)] }, cat, ['writer']) } }, {}, { contracts });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer', { text: 'go' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const events = await auditOf(store, run.id);
    const [failed] = events.filter((e) => e.kind === 'task.failed');
    const error = (failed!.data as { error: { code: string; message: string; details: { failovers: unknown[]; attempts: Array<{ model: string; status: number }> } } }).error;
    assert.equal(error.code, 'AGENT_FAILED');
    assert.deepEqual(error.details.failovers, [{ from: `openai:${a}`, to: `openai:${b}`, reason: 'server-error', status: 503 }]);
    assert.deepEqual(error.details.attempts.map((x) => [x.model, x.status]), [[`openai:${a}`, 503], [`openai:${b}`, 429]]);
    if (ENGINE_RECORDS_META) {
      const answered = events.find((e) => e.kind === 'turn.answered')!;
      const meta = (answered.data as { meta: { model: string; failovers: unknown[] } }).meta;
      assert.equal(meta.model, `openai:${b}`);
      assert.deepEqual(meta.failovers, [{ from: `openai:${a}`, to: `openai:${b}`, reason: 'rate-limited', status: 429 }]);
    }
  });
});
