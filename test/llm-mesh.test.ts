// An LLM agent with mesh paths (docs/mesh.md) is offered one `call_agent` tool naming
// the agents it may call; the model's call becomes a `call_agent` action of the turn
// protocol, and a call without an agent is a protocol problem the model is shown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRequest, CALL_AGENT_TOOL, offerTools, toTurnResult, type AgentInfo } from '../src/agents/llm/conversation.ts';
import type { TurnInput } from '../src/core/types.ts';
import { parseTurnResult } from '../src/engine/turn-result.ts';

const info: AgentInfo = { name: 'lead', system: '', catalog: null, agentNames: [], output: { json: false, structured: false, schema: null, contractSchema: null, wrapped: false } as AgentInfo['output'] };

function input(grants: TurnInput['grants']): TurnInput {
  return {
    protocol: 'spine.turn/1',
    task: { id: 't1', runId: 'r1', agent: 'lead', parentId: null, depth: 0, input: 'price of a?', turn: 1, attempt: 1, lastError: null },
    session: null,
    history: [],
    results: [],
    memory: [],
    grants,
  };
}

test('call_agent is offered only with mesh paths, and the model’s call becomes a call_agent action', () => {
  assert.deepEqual(offerTools(input({ tools: [], agents: [] }), info).tools.map((t) => t.name), []);
  const inp = input({ tools: [], agents: [], mesh: ['pricer'] });
  const offer = offerTools(inp, info);
  assert.deepEqual(offer.tools.map((t) => t.name), [CALL_AGENT_TOOL]);
  assert.match(offer.tools[0]!.description, /pricer/);
  assert.match(buildRequest(inp, info, offer, 'openai').system, /call_agent/);

  const reply = (args: string) => ({ text: '', calls: [{ id: 'c1', name: CALL_AGENT_TOOL, arguments: args }], final: null, stop: 'tool' as const, refusal: null, usage: null });
  const checked = parseTurnResult('lead', toTurnResult(reply(JSON.stringify({ agent: 'pricer', input: { sku: 'a' } })), offer, info, inp));
  assert.deepEqual(checked.actions, [{ type: 'call_agent', agent: 'pricer', input: { sku: 'a' }, id: 'call_1_0' }]);
  assert.throws(() => toTurnResult(reply('{}'), offer, info, inp), /call_agent needs "agent"/);

  // On the next turn the call is replayed to the model under the same tool name, with its result.
  const next: TurnInput = { ...inp, task: { ...inp.task, turn: 2 }, history: [{ turn: 1, actions: checked.actions, results: [{ index: 0, type: 'call_agent', ok: true, value: { price: 42 } }] }] };
  const req = buildRequest(next, info, offerTools(next, info), 'openai');
  const call = req.messages.find((m) => m.role === 'assistant' && m.calls.length > 0);
  assert.ok(call && call.role === 'assistant');
  assert.equal(call.calls[0]!.name, CALL_AGENT_TOOL);
  assert.ok(req.messages.some((m) => m.role === 'tool' && m.content.includes('42')));
});
