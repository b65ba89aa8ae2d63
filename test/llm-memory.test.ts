// An LLM agent with memory grants is offered `remember` and `recall` as tools, its
// recalled facts are in the conversation, and the model's calls become the memory
// actions of the turn protocol (checked there like any agent's).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRequest, offerTools, toTurnResult, type AgentInfo } from '../src/agents/llm/conversation.ts';
import type { TurnInput } from '../src/core/types.ts';
import { parseTurnResult } from '../src/engine/turn-result.ts';

const info: AgentInfo = { name: 'analyst', system: '', catalog: null, agentNames: [], output: { json: false, structured: false, schema: null, contractSchema: null, wrapped: false } as AgentInfo['output'] };

function input(memory: TurnInput['memory'], grants: TurnInput['grants']): TurnInput {
  return {
    protocol: 'spine.turn/1',
    task: { id: 't1', runId: 'r1', agent: 'analyst', parentId: null, depth: 0, input: { text: 'pricing?' }, turn: 1, attempt: 1, lastError: null },
    session: null,
    history: [],
    results: [],
    memory,
    grants,
  };
}

test('memory tools are offered only with memory grants; recalled facts are shown; calls become remember and recall actions', () => {
  const none = offerTools(input([], { tools: [], agents: [] }), info);
  assert.deepEqual(none.tools.map((t) => t.name), []);
  const fact = { id: 'fact_1', scope: 'team/research', key: 'pricing', version: 2, value: { usd: 10 } };
  const inp = input([fact], { tools: [], agents: [], memory: { read: ['team/research/*'], write: ['team/research/*'] } });
  const offer = offerTools(inp, info);
  assert.deepEqual(offer.tools.map((t) => t.name), ['remember', 'recall']);
  assert.match(offer.tools[0]!.description, /team\/research\/\*/);
  const req = buildRequest(inp, info, offer, 'openai');
  assert.ok(req.messages.some((m) => m.role === 'user' && m.text.includes('fact_1')), 'the recalled fact is in the conversation');
  assert.match(req.system, /remember/);
  const answer = toTurnResult(
    {
      text: '',
      calls: [
        { id: 'c1', name: 'remember', arguments: JSON.stringify({ scope: 'team/research', key: 'pricing', value: { usd: 12 }, expectedVersion: 2, sources: ['fact_1'] }) },
        { id: 'c2', name: 'recall', arguments: JSON.stringify({ query: 'vendors' }) },
      ],
      final: null,
      stop: 'tool',
      refusal: null,
      usage: null,
    },
    offer,
    info,
    inp,
  );
  const checked = parseTurnResult('analyst', answer);
  assert.deepEqual(
    checked.actions!.map((a) => a.type),
    ['remember', 'recall'],
  );
  assert.deepEqual(checked.actions![0], { type: 'remember', scope: 'team/research', key: 'pricing', value: { usd: 12 }, expectedVersion: 2, sources: ['fact_1'], id: checked.actions![0]!.id! });
  const bad = toTurnResult({ text: '', calls: [{ id: 'c', name: 'remember', arguments: '{"scope": 1}' }], final: null, stop: 'tool', refusal: null, usage: null }, offer, info, inp);
  assert.throws(() => parseTurnResult('analyst', bad), /AGENT_PROTOCOL|invalid turn result/);
});
