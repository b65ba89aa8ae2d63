// Tool and handoff grants at the boundary: denied by default, deny wins over allow,
// namespace wildcards; a refused call is the action's result, audited, and the tool
// never runs; the turn input lists only what the agent may use.
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import { grantAllows, PolicyEngine } from '../../src/policy/evaluate.ts';
import { EMPTY_POLICY } from '../../src/policy/rules.ts';
import { auditOf, finished, harness, registry, submit } from '../helpers.ts';

const NONE = { tools: { allow: [], deny: [] } };

/** An agent that calls the given tools in one turn, then returns their results (and what it was told it may use). */
function caller(tools: string[], seen: TurnInput[] = []) {
  return (input: TurnInput) => {
    seen.push(structuredClone(input));
    if (input.task.turn === 1) return { actions: tools.map((tool) => ({ type: 'tool' as const, tool, input: { q: 1 } })) };
    return { output: input.results.map((r: ActionResult) => (r.ok ? r.value : r.error.code)) as Json };
  };
}

function counting(names: string[]) {
  const calls: string[] = [];
  const tools = Object.fromEntries(names.map((n) => [n, () => (calls.push(n), `${n}:ok`)]));
  return { calls, tools };
}

describe('grant matching', () => {
  it('deny wins over allow; `crm.*` covers the crm namespace and nothing else', () => {
    const g = { allow: ['crm.*', 'email.send'], deny: ['crm.delete', 'crm.admin.*'] };
    assert.equal(grantAllows(g, 'crm.read'), 'allow');
    assert.equal(grantAllows(g, 'crm.contacts.list'), 'allow', 'nested namespaces are covered');
    assert.equal(grantAllows(g, 'crm.delete'), 'deny');
    assert.equal(grantAllows(g, 'crm.admin.wipe'), 'deny');
    assert.equal(grantAllows(g, 'crm'), 'none', 'the bare namespace is not a tool in it');
    assert.equal(grantAllows(g, 'crmx.read'), 'none', 'a prefix is not a namespace');
    assert.equal(grantAllows(g, 'email.sendall'), 'none', 'exact grants are exact');
    assert.equal(grantAllows({ allow: ['*'], deny: ['*'] }, 'x'), 'deny');
  });

  it('an agent with no grants may call nothing; an unknown agent neither', () => {
    const e = new PolicyEngine(EMPTY_POLICY, new Map([['a', { ...NONE, handoffs: null }]]));
    assert.equal(e.toolGranted('a', 'crm.read'), false);
    assert.equal(e.toolGranted('ghost', 'crm.read'), false);
    assert.deepEqual(e.grantedTools('a', ['crm.read', 'x']), []);
  });
});

test('denied by default: the refusal is the call’s result, audited with rule "grants", and the tool never runs', async (t) => {
  const { calls, tools } = counting(['crm.read']);
  const seen: TurnInput[] = [];
  const reg = registry({ bare: { fn: caller(['crm.read'], seen), grants: NONE } }, tools);
  const { store } = await harness(t, reg);
  const run = await submit(store, reg, 'bare');
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(done.output, ['POLICY_DENIED']);
  assert.deepEqual(calls, [], 'the tool never ran');
  assert.deepEqual(await store.tasks.effects({ runId: run.id }), [], 'nothing in the effects ledger');

  const refused = seen[1]!.results[0]!;
  assert.equal(refused.ok, false);
  if (!refused.ok) {
    assert.equal(refused.error.code, 'POLICY_DENIED');
    assert.equal(refused.error.retryable, false);
    assert.deepEqual(refused.error.details, { ruleId: 'grants' });
    assert.match(refused.error.message, /bare holds no grant for crm\.read \(tools are denied by default\)/);
  }
  assert.deepEqual(seen[0]!.grants.tools, [], 'the turn input offers no tools');

  const audit = await auditOf(store, run.id);
  const decision = audit.find((e) => e.kind === 'policy.decision');
  assert.ok(decision, 'the decision is audited');
  assert.deepEqual(
    { effect: (decision.data as Record<string, Json>).effect, ruleId: (decision.data as Record<string, Json>).ruleId, action: (decision.data as Record<string, Json>).action },
    { effect: 'deny', ruleId: 'grants', action: 'tool:crm.read' },
  );
  const refusal = audit.find((e) => e.kind === 'action.refused');
  assert.deepEqual(refusal?.data, { index: 0, action: 'tool:crm.read', code: 'POLICY_DENIED' });
  assert.ok(refusal.seq > decision.seq, 'decision first, then the refusal');
});

test('deny wins over allow and wildcards cover a namespace; the turn input lists exactly the granted tools', async (t) => {
  const names = ['crm.read', 'crm.write', 'crm.delete', 'crm.contacts.list', 'crmx.read', 'email.send'];
  const { calls, tools } = counting(names);
  const seen: TurnInput[] = [];
  const reg = registry({ sales: { fn: caller(names, seen), grants: { tools: { allow: ['crm.*'], deny: ['crm.delete'] } } } }, tools);
  const { store } = await harness(t, reg);
  const run = await submit(store, reg, 'sales');
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(done.output, ['crm.read:ok', 'crm.write:ok', 'POLICY_DENIED', 'crm.contacts.list:ok', 'POLICY_DENIED', 'POLICY_DENIED']);
  assert.deepEqual(calls.sort(), ['crm.contacts.list', 'crm.read', 'crm.write']);
  assert.deepEqual(seen[0]!.grants.tools.sort(), ['crm.contacts.list', 'crm.read', 'crm.write']);
  const deleteResult = seen[1]!.results[2]!;
  assert.ok(!deleteResult.ok && /sales's grants deny crm\.delete/.test(deleteResult.error.message), JSON.stringify(deleteResult));

  const refusals = (await auditOf(store, run.id)).filter((e) => e.kind === 'action.refused').map((e) => (e.data as { action: string }).action);
  assert.deepEqual(refusals, ['tool:crm.delete', 'tool:crmx.read', 'tool:email.send']);
});

test('handoff grants: a target outside them is refused as the result and never runs; the turn input lists only allowed agents', async (t) => {
  let otherRan = false;
  let helperRan = false;
  const seen: TurnInput[] = [];
  const reg = registry({
    lead: {
      fn: (input) => {
        seen.push(structuredClone(input));
        if (input.task.turn === 1) {
          return {
            actions: [
              { type: 'handoff', agent: 'helper', input: 1 },
              { type: 'handoff', agent: 'other', input: 2 },
            ],
          };
        }
        return { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) };
      },
      grants: { tools: { allow: [], deny: [] }, handoffs: { allow: ['help*'], deny: [] } },
    },
    helper: () => ((helperRan = true), { output: 'helped' }),
    other: () => ((otherRan = true), { output: 'should not run' }),
  });
  const { store } = await harness(t, reg);
  const run = await submit(store, reg, 'lead');
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.deepEqual(done.output, ['helped', 'POLICY_DENIED']);
  assert.equal(helperRan, true);
  assert.equal(otherRan, false, 'the refused target never ran');
  const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
  assert.deepEqual(tasks.map((x) => x.agent).sort(), ['helper', 'lead'], 'no child task for the refused handoff');
  assert.deepEqual(seen[0]!.grants.agents, ['helper']);
  const decision = (await auditOf(store, run.id)).find((e) => e.kind === 'policy.decision' && (e.data as { effect: string }).effect === 'deny');
  assert.deepEqual([(decision?.data as { ruleId: string }).ruleId, (decision?.data as { action: string }).action], ['grants', 'handoff:other']);
});

test('with no rules at all, granted tools take the fast path (no policy audit) while ungranted ones are still refused and audited', async (t) => {
  const { calls, tools } = counting(['notes.save', 'notes.delete']);
  const reg = registry({ a: { fn: caller(['notes.save', 'notes.delete']), grants: { tools: { allow: ['notes.save'], deny: [] } } } }, tools);
  const { store } = await harness(t, reg);
  const run = await submit(store, reg, 'a');
  const done = await finished(store, run.id);
  assert.deepEqual(done.output, ['notes.save:ok', 'POLICY_DENIED']);
  assert.deepEqual(calls, ['notes.save']);
  const decisions = (await auditOf(store, run.id)).filter((e) => e.kind === 'policy.decision').map((e) => (e.data as { action: string }).action);
  assert.deepEqual(decisions, ['tool:notes.delete']);
});
