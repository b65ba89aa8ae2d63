// LLM agents against loopback servers speaking each provider's wire format: the
// request bodies the SDKs send, tool calls, usage and cost, streaming, structured
// output, and every failure the failover chain must handle.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TokenChunk } from '../src/agents/llm/types.ts';
import { Cooldowns } from '../src/agents/llm/failover.ts';
import { ENGINE_RECORDS_META } from '../src/agents/llm/agent.ts';
import { AgentError, AgentProtocolError, SpineError, TurnTimeoutError } from '../src/core/errors.ts';
import type { Json } from '../src/core/types.ts';
import { fakeAnthropic, fakeOpenAI, type FakeProvider } from './fixtures/llm-servers.ts';
import { catalog, llmAgent, signal, turnInput } from './fixtures/llm-helpers.ts';

type Flavor = 'openai' | 'anthropic';
const servers: Record<Flavor, FakeProvider> = {} as Record<Flavor, FakeProvider>;

before(async () => {
  servers.openai = await fakeOpenAI();
  servers.anthropic = await fakeAnthropic();
});
after(async () => {
  await servers.openai.close();
  await servers.anthropic.close();
});

let seq = 0;
/** A model name of its own per test, so scripts and cooldowns never meet. */
const fresh = (stem: string) => `${stem}-${++seq}`;
const model = (provider: Flavor, name: string, extra: Record<string, unknown> = {}) => ({ provider, model: name, baseURL: servers[provider].url, apiKey: 'test-key', ...extra });
const ctx = (timeoutMs = 5_000) => ({ signal: signal(), timeoutMs });

/** What a result's meta says (only when the engine records meta; otherwise the answer carries none). */
function metaOf(answer: { meta?: unknown }): Record<string, Json> {
  if (!ENGINE_RECORDS_META) {
    assert.equal(answer.meta, undefined, 'no meta until the engine accepts it');
    return {};
  }
  return answer.meta as Record<string, Json>;
}

for (const flavor of ['openai', 'anthropic'] as const) {
  describe(`${flavor}: one turn is one model call`, () => {
    for (const stream of [false, true]) {
      it(`${stream ? 'streamed' : 'plain'}: tool calls become tool and handoff actions; usage is priced from config`, async () => {
        const m = fresh('tools');
        servers[flavor].script(m, {
          reply: { text: 'Let me look.', calls: [{ name: 'crm_lookup', args: { who: 'ada' } }, { name: 'handoff_to_researcher', args: { topic: 'ada' } }], usage: { input: 1200, output: 300 } },
        });
        const { catalog: cat } = catalog({ tools: { 'crm.lookup': { description: 'Finds a customer' } }, agents: { researcher: { description: 'Digs deeper' } } });
        const tokens: TokenChunk[] = [];
        const agent = llmAgent({ stream, models: [model(flavor, m, { pricing: { inputPer1M: 3, outputPer1M: 15 } })] }, { catalog: cat, agentNames: ['writer', 'researcher'] });
        const answer = await agent.turn(turnInput({ grants: { tools: ['crm.lookup'], agents: ['researcher', 'writer'] } }), { ...ctx(), onToken: (c) => tokens.push(c as TokenChunk) });
        assert.deepEqual(answer.actions, [
          { type: 'tool', tool: 'crm.lookup', input: { who: 'ada' }, id: 'call_1_0' },
          { type: 'handoff', agent: 'researcher', input: { topic: 'ada' }, id: 'call_1_1' },
        ]);
        assert.equal(answer.output, undefined);
        assert.deepEqual(answer.usage, { inputTokens: 1200, outputTokens: 300, costUsd: (1200 * 3 + 300 * 15) / 1e6 });
        if (stream) assert.equal(tokens.map((t) => t.text).join(''), 'Let me look.', 'streamed text reaches the token hook');
        else assert.deepEqual(tokens, []);

        const [req] = servers[flavor].calls(m);
        assert.equal(req!.stream, stream);
        // (This Anthropic SDK sends the key as a bearer token; older ones used x-api-key.)
        assert.match(String(req!.headers['x-api-key'] ?? req!.headers.authorization), /^(Bearer )?test-key$/);
        const names = (req!.body.tools as Array<{ name?: string; function?: { name: string } }>).map((t) => t.function?.name ?? t.name);
        assert.deepEqual(names, ['crm_lookup', 'handoff_to_researcher'], 'granted tools (dots made wire-safe) and handoffs, not the agent itself');
        if (flavor === 'openai') {
          assert.equal(req!.body.tool_choice, 'auto');
          if (stream) assert.deepEqual(req!.body.stream_options, { include_usage: true });
          const msgs = req!.body.messages as Array<{ role: string; content: string }>;
          assert.deepEqual(msgs.map((x) => x.role), ['system', 'user']);
          assert.equal(msgs[1]!.content, 'hello');
        } else {
          assert.equal(req!.body.max_tokens, 4096);
          assert.match(String(req!.body.system), /handoff_to_<agent>/);
          assert.deepEqual(req!.body.messages, [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }]);
        }
        assert.deepEqual(metaOf(answer).model ?? `${flavor}:${m}`, `${flavor}:${m}`);
      });
    }

    it('a plain answer is the output; without pricing the usage has tokens only (the turn settles at its estimate for cost)', async () => {
      const m = fresh('plain');
      servers[flavor].script(m, { reply: { text: 'Ada is a customer since 2019.', usage: { input: 50, output: 9 } } });
      const answer = await llmAgent({ models: [model(flavor, m)] }).turn(turnInput(), ctx());
      assert.deepEqual({ output: answer.output, actions: answer.actions, usage: answer.usage }, { output: 'Ada is a customer since 2019.', actions: undefined, usage: { inputTokens: 50, outputTokens: 9 } });
    });

    it('the tool loop: the next turn replays the calls and their results, in the wire format', async () => {
      const m = fresh('loop');
      servers[flavor].script(m, { reply: { text: 'Done: 3 facts.' } });
      const history = [
        {
          turn: 1,
          actions: [
            { type: 'tool' as const, tool: 'crm.lookup', input: { who: 'ada' }, id: 'call_1_0' },
            { type: 'tool' as const, tool: 'crm.delete', input: { who: 'ada' }, id: 'call_1_1' },
          ],
          results: [
            { index: 0, type: 'tool' as const, id: 'call_1_0', ok: true as const, value: { facts: 3 } },
            { index: 1, type: 'tool' as const, id: 'call_1_1', ok: false as const, error: { code: 'POLICY_DENIED', message: 'refused by grants', retryable: false } },
          ],
        },
      ];
      const answer = await llmAgent({ models: [model(flavor, m)] }).turn(turnInput({ history, grants: { tools: ['crm.lookup'], agents: [] } }), ctx());
      assert.equal(answer.output, 'Done: 3 facts.');
      const body = servers[flavor].calls(m)[0]!.body;
      if (flavor === 'openai') {
        assert.deepEqual((body.messages as unknown[]).slice(1), [
          { role: 'user', content: 'hello' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call_1_0', type: 'function', function: { name: 'crm_lookup', arguments: '{"who":"ada"}' } },
              { id: 'call_1_1', type: 'function', function: { name: 'crm_delete', arguments: '{"who":"ada"}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1_0', content: '{"facts":3}' },
          { role: 'tool', tool_call_id: 'call_1_1', content: '{"error":{"code":"POLICY_DENIED","message":"refused by grants"}}' },
        ]);
      } else {
        assert.deepEqual(body.messages, [
          { role: 'user', content: [{ type: 'text', text: 'hello' }] },
          {
            role: 'assistant',
            content: [
              { type: 'tool_use', id: 'call_1_0', name: 'crm_lookup', input: { who: 'ada' } },
              { type: 'tool_use', id: 'call_1_1', name: 'crm_delete', input: { who: 'ada' } },
            ],
          },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'call_1_0', content: '{"facts":3}' },
              { type: 'tool_result', tool_use_id: 'call_1_1', content: '{"error":{"code":"POLICY_DENIED","message":"refused by grants"}}', is_error: true },
            ],
          },
        ]);
      }
    });

    it('structured output: the output contract is requested as a JSON Schema and the answer parsed', async () => {
      const m = fresh('structured');
      const schema = { type: 'object', properties: { points: { type: 'array', items: { type: 'string' } } }, required: ['points'], additionalProperties: false };
      const { catalog: cat } = catalog({ contracts: { 'brief.points@1': schema } });
      servers[flavor].script(m, flavor === 'openai' ? { reply: { text: '{"points": ["fast", "durable"]}' } } : { reply: { calls: [{ name: 'final_answer', args: { points: ['fast', 'durable'] } }] } });
      const answer = await llmAgent({ output: 'brief.points@1', models: [model(flavor, m)] }, { catalog: cat }).turn(turnInput(), ctx());
      assert.deepEqual(answer.output, { points: ['fast', 'durable'] });
      assert.equal(answer.actions, undefined);
      const body = servers[flavor].calls(m)[0]!.body;
      if (flavor === 'openai') {
        assert.deepEqual(body.response_format, { type: 'json_schema', json_schema: { name: 'brief_points_v1', schema, strict: true } });
      } else {
        assert.deepEqual(body.tools, [{ name: 'final_answer', description: 'Give your final answer. Calling this ends your task.', input_schema: schema }]);
        assert.deepEqual(body.tool_choice, { type: 'any' });
      }
    });

    it('structured output with a non-object schema is wrapped as {value} and unwrapped', async () => {
      const m = fresh('wrapped');
      const { catalog: cat } = catalog({ contracts: { 'list@1': { type: 'array', items: { type: 'string' } } } });
      servers[flavor].script(m, flavor === 'openai' ? { reply: { text: '{"value": ["a", "b"]}' } } : { reply: { calls: [{ name: 'final_answer', args: { value: ['a', 'b'] } }] } });
      const answer = await llmAgent({ output: 'list@1', models: [model(flavor, m)] }, { catalog: cat }).turn(turnInput(), ctx());
      assert.deepEqual(answer.output, ['a', 'b']);
    });

    it('JSON is required with an output contract: prose is an AGENT_PROTOCOL error listing the problem (code fences are tolerated)', async () => {
      const m = fresh('prose');
      servers[flavor].script(m, { reply: { text: 'Sure! Here are the points: fast, durable.' } }, { reply: { text: '```json\n{"points": []}\n```' } });
      const agent = llmAgent({ output: 'brief.points@1', structuredOutput: false, models: [model(flavor, m)] });
      await assert.rejects(agent.turn(turnInput(), ctx()), (err: unknown) => {
        assert.ok(err instanceof AgentProtocolError);
        assert.equal(err.retryable, true);
        assert.match(err.message, /must be JSON but is not: Sure! Here are/);
        assert.deepEqual((err.details as { violations: unknown[] }).violations, [{ path: 'output', message: 'the answer must be JSON but is not: Sure! Here are the points: fast, durable.' }]);
        return true;
      });
      assert.deepEqual((await agent.turn(turnInput(), ctx())).output, { points: [] });
      assert.equal(servers[flavor].calls(m)[0]!.body.response_format, undefined, 'structuredOutput: false asks for nothing provider-side');
    });

    it('an unknown tool or arguments that are not JSON: AGENT_PROTOCOL naming each, no action', async () => {
      const m = fresh('badcalls');
      const { catalog: cat } = catalog({ tools: { 'crm.lookup': {} } });
      servers[flavor].script(m, { reply: { calls: [{ name: 'launch_missiles', args: {} }, { name: 'crm_lookup', args: flavor === 'openai' ? '{"who": ' : {} }] } });
      const agent = llmAgent({ models: [model(flavor, m)] }, { catalog: cat });
      await assert.rejects(agent.turn(turnInput({ grants: { tools: ['crm.lookup'], agents: [] } }), ctx()), (err: unknown) => {
        assert.ok(err instanceof AgentProtocolError);
        const v = (err.details as { violations: Array<{ path: string; message: string }> }).violations;
        assert.equal(v[0]!.path, 'calls.0.name');
        assert.match(v[0]!.message, /unknown tool "launch_missiles" \(offered: crm_lookup\)/);
        if (flavor === 'openai') assert.match(v[1]!.message, /arguments of crm_lookup are not valid JSON/);
        return true;
      });
    });

    it('a known tool the agent holds no grant for is still asked for: the boundary refuses it and tells the model', async () => {
      const m = fresh('ungranted');
      const { catalog: cat } = catalog({ tools: { 'crm.lookup': {}, 'crm.delete': {} } });
      servers[flavor].script(m, { reply: { calls: [{ name: 'crm_delete', args: { who: 'ada' } }] } });
      const answer = await llmAgent({ models: [model(flavor, m)] }, { catalog: cat }).turn(turnInput({ grants: { tools: ['crm.lookup'], agents: [] } }), ctx());
      assert.deepEqual(answer.actions, [{ type: 'tool', tool: 'crm.delete', input: { who: 'ada' }, id: 'call_1_0' }]);
    });

    it('the previous attempt’s error is shown to the model', async () => {
      const m = fresh('lasterror');
      servers[flavor].script(m, { reply: { text: '{"points": ["x"]}' } });
      const lastError = { code: 'CONTRACT_VIOLATION', message: 'output violates brief.points@1', retryable: true, details: { contract: 'brief.points@1', violations: [{ path: '/points', message: 'must be array' }] } };
      await llmAgent({ output: 'brief.points@1', models: [model(flavor, m)] }).turn(turnInput({ lastError }), ctx());
      const body = JSON.stringify(servers[flavor].calls(m)[0]!.body.messages);
      assert.match(body, /Your previous reply could not be used \(CONTRACT_VIOLATION\)/);
      assert.match(body, /- \/points: must be array/);
    });
  });

  describe(`${flavor}: failover`, () => {
    it('429 → the next model at once when retry-after is longer than maxWaitMs; the limited model cools down for as long as it asked (OpenClaw’s bug)', async () => {
      const [a, b] = [fresh('limited'), fresh('backup')];
      servers[flavor].script(a, { status: 429, headers: { 'retry-after': '120' }, message: 'Rate limit reached' });
      servers[flavor].script(b, { reply: { text: 'from the backup', usage: { input: 10, output: 2 } } }, { reply: { text: 'again the backup' } });
      const cooldowns = new Cooldowns();
      const agent = llmAgent({ cooldownMs: 1_000, models: [model(flavor, a, { pricing: { inputPer1M: 100, outputPer1M: 100 } }), model(flavor, b, { pricing: { inputPer1M: 1, outputPer1M: 1 } })] }, { cooldowns });
      const t0 = Date.now();
      const answer = await agent.turn(turnInput(), ctx());
      assert.ok(Date.now() - t0 < 2_000, 'no 120 s wait');
      assert.equal(answer.output, 'from the backup');
      assert.deepEqual(answer.usage, { inputTokens: 10, outputTokens: 2, costUsd: 12 / 1e6 }, 'priced at the model that answered');
      assert.equal(servers[flavor].calls(a).length, 1, 'retry-after beyond maxWaitMs: no retry on the same model');
      const key = `${flavor}|${servers[flavor].url}|${a}`;
      assert.ok(cooldowns.get(key, Date.now()) > Date.now() + 100_000, 'cooldown honours the retry-after (120 s), not just cooldownMs (1 s)');
      const meta = metaOf(answer);
      if (ENGINE_RECORDS_META) {
        assert.deepEqual(meta.failovers, [{ from: `${flavor}:${a}`, to: `${flavor}:${b}`, reason: 'rate-limited', status: 429 }]);
        assert.equal(meta.model, `${flavor}:${b}`);
      }
      // The next turn skips the cooling model without calling it.
      const second = await agent.turn(turnInput(), ctx());
      assert.equal(second.output, 'again the backup');
      assert.equal(servers[flavor].calls(a).length, 1);
      if (ENGINE_RECORDS_META) assert.equal((metaOf(second).skipped as Array<{ reason: string }>)[0]!.reason, 'cooldown');
    });

    it('429 with a short retry-after: the same model is retried after the wait (seconds, as sent)', async () => {
      const a = fresh('brief-limit');
      servers[flavor].script(a, { status: 429, headers: { 'retry-after': '1' } }, { reply: { text: 'after the wait' } });
      const t0 = Date.now();
      const answer = await llmAgent({ models: [model(flavor, a), model(flavor, fresh('unused'))] }).turn(turnInput(), ctx());
      const waited = Date.now() - t0;
      assert.equal(answer.output, 'after the wait');
      assert.ok(waited >= 950, `waited ${waited} ms for retry-after: 1`);
      assert.equal(servers[flavor].calls(a).length, 2);
    });

    it('500 → next model; malformed JSON → retried, then next model', async () => {
      const [a, b, c] = [fresh('err500'), fresh('garbled'), fresh('sane')];
      servers[flavor].script(a, { status: 500 });
      servers[flavor].script(b, { malformed: true }, { malformed: true });
      servers[flavor].script(c, { reply: { text: 'ok' } });
      const answer = await llmAgent({ maxRetries: 0, models: [model(flavor, a), model(flavor, b, { maxRetries: 1 }), model(flavor, c)], retryBackoffMs: 1 }).turn(turnInput(), ctx());
      assert.equal(answer.output, 'ok');
      assert.deepEqual([a, b, c].map((x) => servers[flavor].calls(x).length), [1, 2, 1]);
      if (ENGINE_RECORDS_META) {
        const meta = metaOf(answer);
        assert.deepEqual(
          (meta.failovers as Array<{ reason: string }>).map((f) => f.reason),
          ['server-error', 'malformed-response'],
        );
        assert.deepEqual((meta.attempts as Array<{ ok: boolean; status?: number }>).map((x) => [x.ok, x.status ?? null]), [[false, 500], [false, null], [false, null], [true, null]]);
      }
    });

    it(`${flavor === 'anthropic' ? '529 and an overloaded_error event mid-stream' : 'a 503 and an error event mid-stream'} fail over`, async () => {
      const [a, b, c] = [fresh('overloaded'), fresh('overloaded-stream'), fresh('calm')];
      servers[flavor].script(a, { status: flavor === 'anthropic' ? 529 : 503 });
      servers[flavor].script(b, { streamError: flavor === 'anthropic' ? 'overloaded_error' : 'server_error', partial: { text: 'I was say' } });
      servers[flavor].script(c, { reply: { text: 'calm answer' } });
      const answer = await llmAgent({ stream: true, maxRetries: 0, models: [model(flavor, a), model(flavor, b), model(flavor, c)] }).turn(turnInput(), ctx());
      assert.equal(answer.output, 'calm answer');
      if (ENGINE_RECORDS_META) {
        const reasons = (metaOf(answer).failovers as Array<{ reason: string }>).map((f) => f.reason);
        assert.deepEqual(reasons, flavor === 'anthropic' ? ['overloaded', 'overloaded'] : ['server-error', 'server-error']);
      }
    });

    for (const cut of ['end', 'destroy'] as const) {
      it(`a stream cut mid-way (${cut === 'end' ? 'closed without its end' : 'socket killed'}) is retried; its tokens still count`, async () => {
        const a = fresh(`cut-${cut}`);
        servers[flavor].script(a, { cut, partial: { text: 'The answer is', usage: { input: 40, output: 7 } } }, { reply: { text: 'The answer is 42.', usage: { input: 40, output: 9 } } });
        const tokens: string[] = [];
        const agent = llmAgent({ stream: true, retryBackoffMs: 1, models: [model(flavor, a, { pricing: { inputPer1M: 1, outputPer1M: 1 } })] });
        const answer = await agent.turn(turnInput(), { ...ctx(), onToken: (c) => tokens.push(c.text) });
        assert.equal(answer.output, 'The answer is 42.');
        assert.equal(servers[flavor].calls(a).length, 2);
        // Anthropic reports input tokens at message_start, so the cut call's input is known; OpenAI sends usage only at the end.
        const cutInput = flavor === 'anthropic' ? 40 : 0;
        assert.equal(answer.usage?.inputTokens, 40 + cutInput);
        assert.ok(tokens.join('').endsWith('The answer is 42.'));
      });
    }

    it('a model that does not answer within requestTimeoutMs fails over', async () => {
      const [a, b] = [fresh('silent'), fresh('prompt')];
      servers[flavor].script(a, { hang: true });
      servers[flavor].script(b, { reply: { text: 'here' } });
      const t0 = Date.now();
      const answer = await llmAgent({ maxRetries: 0, models: [model(flavor, a, { requestTimeoutMs: 150 }), model(flavor, b)] }).turn(turnInput(), ctx());
      assert.equal(answer.output, 'here');
      // Far below the SDK's own 10-minute default, whatever the machine's load: requestTimeoutMs cut the call.
      assert.ok(Date.now() - t0 < 30_000);
      if (ENGINE_RECORDS_META) assert.equal((metaOf(answer).failovers as Array<{ reason: string }>)[0]!.reason, 'timeout');
    });

    it('the turn’s own timeout aborts the call and cools the model down, so the retry starts on the next one', async () => {
      const [a, b] = [fresh('slow'), fresh('quick')];
      servers[flavor].script(a, { hang: true });
      servers[flavor].script(b, { reply: { text: 'quick' } });
      const cooldowns = new Cooldowns();
      const agent = llmAgent({ models: [model(flavor, a), model(flavor, b)] }, { cooldowns });
      const ctl = new AbortController();
      const turn = agent.turn(turnInput(), { signal: ctl.signal, timeoutMs: 100 });
      // The engine's timeout fires once the slow model has the call (awaited, not raced against a fixed delay).
      while (servers[flavor].calls(a).length === 0) await new Promise((r) => setTimeout(r, 5));
      ctl.abort(new TurnTimeoutError('writer', 100));
      await assert.rejects(turn, TurnTimeoutError);
      const retry = await agent.turn(turnInput(), ctx());
      assert.equal(retry.output, 'quick');
      assert.equal(servers[flavor].calls(a).length, 1);
    });

    it('a pinned model never fails over: its failure goes to the retry policy', async () => {
      const a = fresh('pinned');
      servers[flavor].script(a, { status: 429, headers: { 'retry-after': '60' } });
      const agent = llmAgent({ pinned: true, models: [model(flavor, a)] });
      await assert.rejects(agent.turn(turnInput(), ctx()), (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.equal(err.retryable, true, 'the retry policy decides');
        assert.match(err.message, /pinned model .* failed: .*429/);
        assert.equal((err.details as { retryAfterMs: number }).retryAfterMs, 60_000);
        return true;
      });
      // Pinned: a cooldown does not stop it from being asked again.
      servers[flavor].script(a, { reply: { text: 'recovered' } });
      assert.equal((await agent.turn(turnInput(), ctx())).output, 'recovered');
    });

    it('every model failing is one retryable error listing each attempt', async () => {
      const [a, b] = [fresh('down-a'), fresh('down-b')];
      servers[flavor].script(a, { status: 502 });
      servers[flavor].script(b, { status: 429 });
      await assert.rejects(llmAgent({ maxRetries: 0, models: [model(flavor, a), model(flavor, b)] }).turn(turnInput(), ctx()), (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.equal(err.retryable, true);
        const d = err.details as { attempts: Array<{ model: string; status: number }>; failovers: Array<{ from: string; to: string }> };
        assert.deepEqual(d.attempts.map((x) => [x.model, x.status]), [[`${flavor}:${a}`, 502], [`${flavor}:${b}`, 429]]);
        assert.deepEqual(d.failovers, [{ from: `${flavor}:${a}`, to: `${flavor}:${b}`, reason: 'server-error', status: 502 }]);
        return true;
      });
    });

    it('a request the provider rejects (401, 400) does not fail over and is not retried', async () => {
      const [a, b] = [fresh('badkey'), fresh('never')];
      servers[flavor].script(a, { status: 401, errorType: flavor === 'anthropic' ? 'authentication_error' : 'invalid_api_key', message: 'invalid x-api-key' });
      await assert.rejects(llmAgent({ models: [model(flavor, a), model(flavor, b)] }).turn(turnInput(), ctx()), (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.equal(err.retryable, false);
        assert.match(err.message, /refused the request: 401/);
        return true;
      });
      assert.equal(servers[flavor].calls(b).length, 0);
    });
  });
}

describe('keys and the environment', () => {
  it('an unset key skips that model (reported), and no usable model at all is a config error naming the field', async () => {
    const b = fresh('keyed');
    servers.anthropic.script(b, { reply: { text: 'hi from anthropic' } });
    const cfg = {
      models: [
        { provider: 'openai', model: 'gpt-x', apiKey: { env: 'SPINE_TEST_OPENAI_KEY' } },
        { provider: 'anthropic', model: b, baseURL: servers.anthropic.url, apiKey: { env: 'SPINE_TEST_ANTHROPIC_KEY' } },
      ],
    };
    const answer = await llmAgent(cfg, { env: { SPINE_TEST_ANTHROPIC_KEY: 'k' } }).turn(turnInput(), ctx());
    assert.equal(answer.output, 'hi from anthropic');
    if (ENGINE_RECORDS_META) {
      assert.deepEqual(metaOf(answer).skipped, [{ model: 'openai:gpt-x', reason: 'unconfigured', detail: 'agents.writer.models.0.apiKey: environment variable SPINE_TEST_OPENAI_KEY is not set' }]);
    }
    await assert.rejects(llmAgent(cfg, { env: {} }).turn(turnInput(), ctx()), (err: unknown) => {
      assert.ok(err instanceof SpineError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.equal(err.retryable, false);
      assert.deepEqual(err.details, [
        { path: 'agents.writer.models.0.apiKey', message: 'environment variable SPINE_TEST_OPENAI_KEY is not set' },
        { path: 'agents.writer.models.1.apiKey', message: 'environment variable SPINE_TEST_ANTHROPIC_KEY is not set' },
      ]);
      return true;
    });
  });

  it('the default key variable; a local OpenAI-compatible server (Ollama) needs none; model and baseURL may come from the environment', async () => {
    const m = fresh('llama');
    servers.openai.script(m, { reply: { text: 'local answer' } });
    const agent = llmAgent({ models: [{ provider: 'openai', model: { env: 'SPINE_TEST_MODEL', default: 'nope' } }] }, { env: { OPENAI_BASE_URL: servers.openai.url, SPINE_TEST_MODEL: m } });
    assert.equal((await agent.turn(turnInput(), ctx())).output, 'local answer');
    assert.equal(servers.openai.calls(m)[0]!.headers.authorization, 'Bearer unused');
    await assert.rejects(llmAgent({ models: [{ provider: 'openai', model: 'gpt-4o' }] }).turn(turnInput(), ctx()), /models\.0\.apiKey: environment variable OPENAI_API_KEY is not set/);
  });
});

describe('the conversation', () => {
  it('a session’s earlier messages come first (this run’s own are left out); the agent is not offered a handoff to itself', async () => {
    const m = fresh('session');
    servers.openai.script(m, { reply: { text: 'Still Ada.' } });
    const input = turnInput({ input: { text: 'And now?' }, grants: { tools: [], agents: ['writer'] } });
    input.session = {
      key: 'agent:writer:main',
      history: [
        { role: 'user', runId: 'run_0', at: 1, text: 'Who is our best customer?' },
        { role: 'agent', runId: 'run_0', at: 2, output: { name: 'Ada' } },
        { role: 'user', runId: 'run_1', at: 3, text: 'And now?' },
      ],
    };
    await llmAgent({ models: [model('openai', m)] }).turn(input, ctx());
    const body = servers.openai.calls(m)[0]!.body;
    assert.deepEqual((body.messages as unknown[]).slice(1), [
      { role: 'user', content: 'Who is our best customer?' },
      { role: 'assistant', content: '{\n  "name": "Ada"\n}' },
      { role: 'user', content: 'And now?' },
    ]);
    assert.equal(body.tools, undefined, 'no tools, no tool_choice');
  });

  it('OpenAI strict mode only for schemas it takes; a refusal is a protocol error', async () => {
    const { strictCompatible } = await import('../src/agents/llm/openai.ts');
    const closed = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false };
    assert.equal(strictCompatible(closed), true);
    assert.equal(strictCompatible({ ...closed, required: [] }), false, 'every property must be required');
    assert.equal(strictCompatible({ ...closed, additionalProperties: true }), false);
    assert.equal(strictCompatible({ ...closed, properties: { a: { type: 'string', minLength: 1 } } }), false, 'unknown keyword → not strict');
    assert.equal(strictCompatible({ type: 'object', properties: { list: { type: 'array', items: closed } }, required: ['list'], additionalProperties: false }), true);

    const m = fresh('refusal');
    servers.openai.otherwise = (r) => (r.model === m ? { reply: { text: '', finish: 'content_filter' } } : { status: 500 });
    await assert.rejects(llmAgent({ models: [model('openai', m)] }).turn(turnInput(), ctx()), /refused|empty answer/);
    servers.openai.otherwise = null;
  });
});
