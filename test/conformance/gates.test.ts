// Gates at every crossing (docs/validation.md), on the store the suite runs on
// (SQLite, or PostgreSQL with SPINE_TEST_DB=postgres): each kind at each crossing,
// strictly before the effect, reasks bounded, fail-closed validators, shadow mode,
// and every verdict a queryable record.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentFunction, ToolFunction } from '../../src/core/agent.ts';
import type { FieldIssue } from '../../src/core/issues.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import { ContractRegistry } from '../../src/contracts/registry.ts';
import type { Registry } from '../../src/engine/options.ts';
import { compileGates, validationSchema } from '../../src/validation/config.ts';
import { auditOf, finished, harness, registry, submit, until } from '../helpers.ts';

/** A registry with gates compiled from `validation` config, as the config loader does. */
function withGates(reg: Registry, validation: unknown): Registry {
  const cfg = validationSchema.parse(validation);
  const issues: FieldIssue[] = [];
  const compiled = compileGates(cfg, { agents: [...reg.agents.keys()], tools: [...reg.tools.keys()], contracts: reg.contracts, agentOf: (n) => reg.agents.get(n)?.agent }, issues);
  assert.deepEqual(issues, []);
  return { ...reg, gates: compiled.gates, gatesVersion: compiled.version };
}

const answerIs = (rules: Json) => ({ kind: 'rule', rules: [{ path: '$.answer', ...(rules as object) }] });

/** An agent that calls `tool` once, then outputs what came back (or the error code). */
const callsTool =
  (tool: string, input: Json = null): AgentFunction =>
  (t: TurnInput) => {
    if (t.task.turn === 1) return { actions: [{ type: 'tool', tool, input }] };
    const r = t.results[0]!;
    return { output: r.ok ? { got: r.value } : { error: r.error.code } };
  };

const contracts = new ContractRegistry();
contracts.add('answer@1', { schema: { type: 'object', required: ['answer'], properties: { answer: { type: 'string' } } } });

describe('gates at every crossing', () => {
  it('rule, schema and agent gates on output: pass and warn continue, block fails the task without retry, and every verdict is a record', async (t) => {
    const validator: AgentFunction = (t) => {
      const v = (t.task.input as { value: { answer?: string } }).value;
      return { output: v.answer === 'good' ? { verdict: 'pass' } : { verdict: 'warn', reasons: ['odd answer'] } };
    };
    const base = registry({ good: () => ({ output: { answer: 'good' } }), odd: () => ({ output: { answer: 'meh' } }), bad: () => ({ output: { answer: 7 } }), validator }, {}, { contracts });
    const reg = withGates(base, {
      gates: [
        { id: 'shape', on: 'output', agents: ['good', 'odd', 'bad'], kind: 'schema', contract: 'answer@1' },
        { id: 'short', on: 'output', agents: ['good', 'odd'], ...answerIs({ maxLength: 10 }) },
        { id: 'judge', on: 'output', agents: ['good', 'odd'], kind: 'agent', agent: 'validator' },
      ],
    });
    const { store } = await harness(t, reg);
    const good = await finished(store, (await submit(store, reg, 'good')).id);
    assert.equal(good.state, 'succeeded');
    const odd = await finished(store, (await submit(store, reg, 'odd')).id);
    assert.equal(odd.state, 'succeeded', 'a warning is recorded and the output goes on');
    const bad = await finished(store, (await submit(store, reg, 'bad')).id);
    assert.equal(bad.state, 'failed');
    assert.equal(bad.error?.code, 'GATE_BLOCKED');

    const goodV = await store.verdicts.list({ runId: good.id, limit: 10 });
    assert.deepEqual(goodV.map((v) => [v.gate, v.outcome]), [['shape', 'pass'], ['short', 'pass'], ['judge', 'pass']]);
    const oddV = await store.verdicts.list({ runId: odd.id, gate: 'judge', limit: 10 });
    assert.deepEqual(oddV.map((v) => [v.verdict, v.outcome, v.reasons]), [['warn', 'warn', ['odd answer']]]);
    const badV = await store.verdicts.list({ runId: bad.id, limit: 10 });
    assert.equal(badV.length, 1, 'a non-retryable block: one attempt, the first failing gate decides');
    assert.deepEqual([badV[0]!.gate, badV[0]!.verdict, badV[0]!.outcome], ['shape', 'fail', 'block']);
    assert.match(badV[0]!.reasons[0]!, /answer/);
    assert.equal(badV[0]!.configVersion, reg.gatesVersion);
    assert.match(badV[0]!.inputDigest, /^[0-9a-f]{32}$/);
    // The record and the audit event are one fact, written together.
    const events = (await auditOf(store, bad.id)).filter((e) => e.kind === 'gate.verdict');
    assert.equal(events.length, 1);
    assert.equal((events[0]!.data as { gate: string }).gate, 'shape');
  });

  it('ordering: a blocking gate on toolResult keeps the result from the agent, one on deliver writes no outbox row', async (t) => {
    let ran = 0;
    const lookup: ToolFunction = () => (ran++, { secret: 'sk-123' });
    const talker: AgentFunction = (t) => {
      if (t.task.turn === 1) return { actions: [{ type: 'tool', tool: 'lookup' }, { type: 'deliver', channel: 'slack', to: 'C1', text: 'the key is sk-123' }] };
      return { output: { results: t.results as unknown as Json } };
    };
    const reg = withGates(registry({ talker }, { lookup }), {
      gates: [
        { id: 'no-secrets-in', on: 'toolResult', tools: ['lookup'], kind: 'rule', rules: [{ notRegex: 'sk-[0-9]+' }] },
        { id: 'no-secrets-out', on: 'deliver', kind: 'rule', rules: [{ path: '$.text', notRegex: 'sk-[0-9]+' }] },
      ],
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'talker')).id);
    assert.equal(run.state, 'succeeded');
    assert.equal(ran, 1, 'the tool ran (toolResult guards what comes back)');
    const results = (run.output as { results: ActionResult[] }).results;
    assert.equal(results[0]!.ok, false);
    assert.equal(!results[0]!.ok && results[0]!.error.code, 'GATE_BLOCKED');
    assert.doesNotMatch(JSON.stringify(run.output), /sk-123/, "the tool's result never reached the agent");
    assert.equal(!results[1]!.ok && results[1]!.error.code, 'GATE_BLOCKED');
    assert.deepEqual(await store.outbox.list({ runId: run.id, limit: 10 }), [], 'no outbox row');
    const kinds = (await auditOf(store, run.id)).map((e) => e.kind);
    assert.ok(kinds.indexOf('gate.verdict') > kinds.indexOf('effect.completed'), 'the toolResult gate ran after the tool');
  });

  it('gates on tool, handoff and handoffResult; a human gate asks for an approval and the decision stands', async (t) => {
    let saved = 0;
    const parent: AgentFunction = (t) => {
      if (t.task.turn === 1) return { actions: [{ type: 'handoff', agent: 'child', input: { topic: 'x' } }, { type: 'handoff', agent: 'child', input: { topic: 'forbidden' } }] };
      return { output: t.results.map((r) => (r.ok ? r.value : r.error.code)) as Json };
    };
    const child: AgentFunction = (t) => ({ output: { says: (t.task.input as { topic: string }).topic === 'x' ? 'fine' : 'never' } });
    const saver: AgentFunction = callsTool('notes.save', { text: 'hi' });
    const reg = withGates(registry({ parent, child, saver }, { 'notes.save': () => (saved++, 'ok') }), {
      gates: [
        { id: 'topic', on: 'handoff', kind: 'rule', rules: [{ path: '$.topic', notRegex: '^forbidden$' }] },
        { id: 'says', on: 'handoffResult', kind: 'rule', rules: [{ path: '$.says', equals: 'fine' }] },
        { id: 'ask', on: 'tool', tools: ['notes.save'], kind: 'human', approvers: 'editors' },
      ],
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'parent')).id);
    assert.deepEqual(run.output, [{ says: 'fine' }, 'GATE_BLOCKED']);
    const v = await store.verdicts.list({ runId: run.id, limit: 20 });
    assert.deepEqual(
      v.map((r) => [r.gate, r.crossing, r.outcome]),
      [
        ['topic', 'handoff', 'pass'],
        ['topic', 'handoff', 'block'],
        ['says', 'handoffResult', 'pass'],
      ],
    );

    const held = await submit(store, reg, 'saver');
    let approval: Awaited<ReturnType<typeof store.approvals.list>>[number] | undefined;
    await until('the human gate asked', async () => {
      [approval] = await store.approvals.list({ runId: held.id, limit: 5 });
      return approval !== undefined;
    });
    assert.equal(approval!.approvers, 'editors');
    assert.equal(approval!.ruleId, 'gate:ask');
    assert.equal(saved, 0, 'nothing ran while waiting');
    await store.approvals.decide(approval!.id, { approve: true, actor: 'ed' }, Date.now());
    const done = await finished(store, held.id);
    assert.deepEqual(done.output, { got: 'ok' });
    assert.equal(saved, 1);
    assert.deepEqual(
      (await store.verdicts.list({ runId: held.id, limit: 10 })).map((r) => r.outcome),
      ['escalate', 'pass'],
      'asked once, then the approval decided',
    );
  });

  it('reask sends the reasons back at most maxReasks times, then blocks', async (t) => {
    const seen: (string | null)[] = [];
    const writer: AgentFunction = (t) => {
      seen.push(t.task.lastError?.code ?? null);
      return { output: { answer: 'way too long an answer' } };
    };
    const reg = withGates(registry({ writer: { fn: writer, retry: { maxAttempts: 5 } } }), {
      gates: [{ id: 'brief', on: 'output', ...answerIs({ maxLength: 5 }), onFail: 'reask', maxReasks: 2 }],
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'writer')).id);
    assert.equal(run.state, 'failed');
    assert.equal(run.error?.code, 'GATE_BLOCKED');
    assert.deepEqual(seen, [null, 'GATE_REASK', 'GATE_REASK'], 'the reasons came back twice, then no more turns');
    const v = await store.verdicts.list({ runId: run.id, limit: 10 });
    assert.deepEqual(v.map((r) => r.outcome), ['reask', 'reask', 'block']);
    assert.match(v[2]!.reasons.join(' '), /no reasks left/);
  });

  it('a validator agent that crashes or times out blocks by default; onError warn lets it through', async (t) => {
    const crash: AgentFunction = () => {
      throw new Error('validator exploded');
    };
    const mute: AgentFunction = () => ({ actions: [] });
    const reg = withGates(registry({ strict: () => ({ output: 1 }), lenient: () => ({ output: 2 }), odd: () => ({ output: 3 }), crash, mute }), {
      gates: [
        { id: 'closed', on: 'output', agents: ['strict'], kind: 'agent', agent: 'crash' },
        { id: 'open', on: 'output', agents: ['lenient'], kind: 'agent', agent: 'crash', onError: 'warn' },
        { id: 'malformed', on: 'output', agents: ['odd'], kind: 'agent', agent: 'mute' },
      ],
    });
    const { store } = await harness(t, reg);
    const strict = await finished(store, (await submit(store, reg, 'strict')).id);
    assert.equal(strict.state, 'failed');
    assert.equal(strict.error?.code, 'GATE_BLOCKED');
    const [v] = await store.verdicts.list({ runId: strict.id, limit: 5 });
    assert.deepEqual([v!.verdict, v!.outcome], ['error', 'block']);
    assert.match(v!.reasons[0]!, /validator exploded/);
    const lenient = await finished(store, (await submit(store, reg, 'lenient')).id);
    assert.equal(lenient.state, 'succeeded');
    const odd = await finished(store, (await submit(store, reg, 'odd')).id);
    assert.equal(odd.state, 'failed', 'an answer that is not a verdict is an error too');
  });

  it('an agent gate fixes the output: the replacement goes on and the changed paths are audited', async (t) => {
    const redactor: AgentFunction = (t) => {
      const v = (t.task.input as { value: { text: string } }).value;
      return { output: { verdict: 'fail', reasons: ['contains a phone number'], fix: { text: v.text.replace(/\d/g, '#') } } };
    };
    const reg = withGates(registry({ writer: () => ({ output: { text: 'call 555' } }), redactor }), {
      gates: [{ id: 'redact', on: 'output', agents: ['writer'], kind: 'agent', agent: 'redactor', onFail: 'fix' }],
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'writer')).id);
    assert.deepEqual(run.output, { text: 'call ###' });
    const ev = (await auditOf(store, run.id)).find((e) => e.kind === 'gate.verdict')!;
    assert.deepEqual((ev.data as { fix: { changed: string[] } }).fix.changed, ['$.text']);
    assert.equal((ev.data as { outcome: string }).outcome, 'fix');
  });

  it('shadow mode records verdicts and never blocks', async (t) => {
    let ran = 0;
    const reg = withGates(registry({ a: callsTool('t', { q: 'DROP TABLE' }) }, { t: () => (ran++, 'done') }), {
      gates: [
        { id: 'sql', on: 'tool', kind: 'rule', rules: [{ forbidden: ['drop table'] }], mode: 'shadow' },
        { id: 'out', on: 'output', kind: 'rule', rules: [{ equals: 'never' }], mode: 'shadow', onFail: 'reask' },
      ],
    });
    const { store } = await harness(t, reg);
    const run = await finished(store, (await submit(store, reg, 'a')).id);
    assert.equal(run.state, 'succeeded');
    assert.equal(ran, 1);
    const v = await store.verdicts.list({ runId: run.id, limit: 10 });
    assert.deepEqual(v.map((r) => [r.gate, r.mode, r.verdict, r.outcome]), [
      ['sql', 'shadow', 'fail', 'block'],
      ['out', 'shadow', 'fail', 'reask'],
    ]);
    assert.equal((await store.verdicts.list({ mode: 'shadow', gate: 'sql', limit: 10 })).length, 1, 'queryable by mode and gate');
  });
});
