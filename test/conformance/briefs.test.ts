// Synthesis in the engine on a real store (SQLite; PostgreSQL under `npm run test:pg`):
// lanes' claims → conflicts → resolution chains (rules, a judge agent, a human
// approval) → a brief the parent's next turn gets, with every decision audited.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Brief } from '../../src/core/brief.ts';
import type { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/issues.ts';
import type { Json, TurnInput } from '../../src/core/types.ts';
import type { Registry } from '../../src/engine/options.ts';
import type { Store } from '../../src/store/store.ts';
import { compileSynthesis } from '../../src/synthesis/config.ts';
import type { SynthesisConfig } from '../../src/synthesis/schema.ts';
import { auditOf, clocked, registry } from '../helpers.ts';
import { submitRun } from '../fixtures/submit-run.ts';

/** Starts a run at the manual clock's now (the run is due exactly when the worker's clock says so, however long set-up took). */
async function submitAt(store: Store, reg: Registry, clock: ManualClock, agent: string) {
  return (await submitRun(store, reg, { agent, input: null, actor: 'test' }, clock.now())).run;
}

const AGENTS = ['lead', 'research', 'finance', 'legal', 'judge'];
function synthesis(cfg: SynthesisConfig) {
  const issues: FieldIssue[] = [];
  const spec = compileSynthesis(cfg, AGENTS, 'synthesis', issues);
  assert.deepEqual(issues, []);
  return spec;
}

const claims = (...cs: Array<[string, Json, number?]>) => ({
  output: { claims: cs.map(([key, value, confidence]) => ({ key, value, evidence: [{ kind: 'url', ref: `https://example.com/${key}` }], ...(confidence === undefined ? {} : { confidence }) })) },
});

/** A lead that asks research, finance and legal, then answers with the brief it was handed. */
function specialists(seen: { brief: Brief | null; turns: number }, legal: () => unknown = () => claims(['price', 120], ['risk', 'high'], ['region', 'eu'])) {
  return {
    lead: (input: TurnInput) => {
      seen.turns++;
      if (input.task.turn === 1) return { actions: ['research', 'finance', 'legal'].map((agent) => ({ type: 'handoff' as const, agent, input: 'acme' })) };
      seen.brief = (input.brief ?? null) as Brief | null;
      return { output: { digest: (input.brief as { digest?: string } | undefined)?.digest ?? null } };
    },
    research: { fn: () => claims(['price', 100], ['risk', 'low', 0.6], ['region', 'eu']), output: 'spine/claims@1' },
    finance: { fn: () => claims(['price', 101], ['risk', 'high', 0.9]), output: 'spine/claims@1' },
    legal: { fn: legal as () => never, output: 'spine/claims@1', retry: { maxAttempts: 1 } },
  };
}

describe('briefs', () => {
  it('rules decide what they can (priority on price, a vote on risk); the parent gets a brief with provenance and a digest; each decision is audited', async (t) => {
    const seen = { brief: null as Brief | null, turns: 0 };
    const reg = registry({
      ...specialists(seen),
      lead: {
        fn: specialists(seen).lead,
        synthesis: synthesis({ compare: { price: { numeric: { tolerance: 2 } } }, resolve: [{ match: 'price', strategy: 'priority', order: ['finance', 'research'] }, { match: '*', chain: ['vote', 'keep-both'] }] }),
      },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    const done = (await store.runs.get(run.id))!;
    assert.equal(done.state, 'succeeded');
    const brief = seen.brief!;
    assert.equal(brief.state, 'done');
    assert.match(brief.digest!, /^[0-9a-f]{32}$/);
    assert.deepEqual(done.output, { digest: brief.digest });
    assert.deepEqual(brief.parts.map((p) => [p.key, p.status, p.value, p.from.map((f) => f.agent)]), [['region', 'agree', 'eu', ['legal', 'research']]]);
    const byKey = Object.fromEntries(brief.conflicts.map((c) => [c.key, c]));
    // price: 100 and 101 agree within tolerance, 120 does not → priority picks finance's cluster.
    assert.deepEqual(byKey.price!.candidates.map((c) => c.value), [100, 120]);
    assert.deepEqual(byKey.price!.decision, { strategy: 'priority', value: 100, decider: { kind: 'rule', rule: 'price → priority' } });
    assert.deepEqual(byKey.risk!.decision, { strategy: 'vote', value: 'high', decider: { kind: 'rule', rule: '* → vote' } });
    // Provenance: each source names its agent, task and the turn that produced it.
    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    for (const f of byKey.risk!.candidates.flatMap((c) => c.from)) assert.equal(tasks.find((x) => x.id === f.task)?.agent, f.agent);
    assert.ok(byKey.risk!.candidates.every((c) => c.from.every((f) => f.turn === 1)));
    const stored = await store.briefs.get(brief.id);
    assert.deepEqual({ ...stored, updatedAt: 0 }, { ...brief, updatedAt: 0 });
    assert.deepEqual((await store.briefs.list({ runId: run.id, limit: 10 })).map((b) => b.id), [brief.id]);
    const audit = await auditOf(store, run.id);
    assert.deepEqual(
      audit.filter((e) => e.kind.startsWith('conflict.') || e.kind.startsWith('brief.')).map((e) => [e.kind, (e.data as { key?: string }).key ?? null]),
      [
        ['brief.detected', null],
        ['conflict.decided', 'price'],
        ['conflict.decided', 'risk'],
        ['brief.done', null],
      ],
    );
    assert.equal(audit.find((e) => e.kind === 'brief.done')!.digest, brief.digest);
  });

  it('a tie goes on to a judge agent the hub dispatches once; its turn is the decider', async (t) => {
    const seen = { brief: null as Brief | null, turns: 0 };
    const asked: Json[] = [];
    const reg = registry({
      ...specialists(seen, () => claims(['risk', 'medium'])),
      lead: { fn: specialists(seen).lead, synthesis: synthesis({ judge: 'judge', resolve: [{ match: '*', chain: ['vote', 'judge', 'keep-both'] }] }) },
      judge: {
        fn: (input) => {
          asked.push(input.task.input);
          return { output: { decision: 'decided', value: 'high', rationale: 'the filings show leverage' } };
        },
        output: 'spine/judgement@1',
      },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    // Two keys tie (price: 100, 101, 120; risk): the judge is asked once about each, in parallel.
    assert.deepEqual(asked.map((a) => (a as { key: string }).key).sort(), ['price', 'risk'], 'the judge was asked once per key');
    const aboutRisk = asked.find((a) => (a as { key: string }).key === 'risk') as { candidates: Array<{ value: Json }> };
    assert.deepEqual(aboutRisk.candidates.map((c) => c.value), ['high', 'low', 'medium']);
    const risk = seen.brief!.conflicts.find((c) => c.key === 'risk')!;
    const judgeTask = (await store.tasks.list({ runId: run.id, limit: 10 })).find((x) => x.agent === 'judge' && (x.input as { key: string }).key === 'risk')!;
    assert.deepEqual(risk.steps.map((s) => [s.strategy, s.outcome]), [
      ['vote', 'tie'],
      ['judge', 'decided'],
    ]);
    assert.deepEqual(risk.decision, { strategy: 'judge', value: 'high', decider: { kind: 'agent', agent: 'judge', task: judgeTask.id, turn: 1 } });
    assert.equal(seen.turns, 2, 'the lead took two turns: the judge does not wake it for a turn of its own');
  });

  it('the judge dispatch crosses the boundary: a parent not granted the judge gets a failed step, and the chain goes on', async (t) => {
    const seen = { brief: null as Brief | null, turns: 0 };
    let asked = 0;
    const reg = registry({
      ...specialists(seen, () => claims(['risk', 'medium'])),
      lead: {
        fn: specialists(seen).lead,
        grants: { handoffs: { allow: ['research', 'finance', 'legal'], deny: [] } },
        synthesis: synthesis({ judge: 'judge', resolve: [{ match: 'risk', chain: ['vote', 'judge', 'keep-both'] }] }),
      },
      judge: () => {
        asked++;
        return { output: { decision: 'decided', value: 'x', rationale: '' } };
      },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    assert.equal(asked, 0);
    const risk = seen.brief!.conflicts.find((c) => c.key === 'risk')!;
    assert.deepEqual(risk.steps.map((s) => [s.strategy, s.outcome]), [
      ['vote', 'tie'],
      ['judge', 'failed'],
      ['keep-both', 'kept-both'],
    ]);
    assert.equal(risk.unresolved, true);
    const decision = (await auditOf(store, run.id)).find((e) => e.kind === 'policy.decision' && (e.data as { action: string }).action === 'handoff:judge');
    assert.equal((decision?.data as { effect: string } | undefined)?.effect, 'deny', 'the refusal is audited as the boundary decided it');
  });

  it('a human decides through an approval (the option picked by the reason); a failed lane is in the brief, and an expected key it would have given is missing', async (t) => {
    const seen = { brief: null as Brief | null, turns: 0 };
    const reg = registry({
      ...specialists(seen, () => {
        throw new Error('legal is down');
      }),
      lead: { fn: specialists(seen).lead, synthesis: synthesis({ expect: ['compliance'], resolve: [{ match: 'risk', chain: ['vote', 'human'] }] }) },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    const waiting = await store.approvals.list({ runId: run.id, limit: 10 });
    assert.equal(waiting.length, 1);
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'waiting');
    assert.deepEqual((waiting[0]!.action as { options: Array<{ value: Json }> }).options.map((o) => o.value), ['high', 'low']);
    // Running again while it waits asks nobody anything new.
    await worker.runOnce();
    assert.equal((await store.approvals.list({ runId: run.id, limit: 10 })).length, 1);
    await store.approvals.decide(waiting[0]!.id, { approve: true, actor: 'ana', reason: '2' }, clock.now());
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    const brief = seen.brief!;
    assert.deepEqual(brief.conflicts.find((c) => c.key === 'risk')!.decision, { strategy: 'human', value: 'low', decider: { kind: 'human', actor: 'ana', approval: waiting[0]!.id } });
    assert.deepEqual(brief.failedLanes.map((l) => [l.agent, l.error.code]), [['legal', 'AGENT_FAILED']]);
    assert.deepEqual(brief.missing.map((m) => m.key), ['compliance']);
    // Price conflicts (100 vs 101 with equal comparison) and no rule matches: kept both, unresolved.
    assert.equal(brief.conflicts.find((c) => c.key === 'price')!.unresolved, true);
  });

  it('a finished brief is delivered to a channel through the boundary: one outbox row, keyed by the brief, queued with it', async (t) => {
    const seen = { brief: null as Brief | null, turns: 0 };
    const reg = registry({
      ...specialists(seen),
      lead: { fn: specialists(seen).lead, synthesis: synthesis({ resolve: [{ match: '*', chain: ['vote', 'keep-both'] }], deliver: { channel: 'webhook', to: 'ops' } }) },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    const items = await store.outbox.list({ runId: run.id, limit: 10 });
    assert.equal(items.length, 1);
    assert.equal(items[0]!.idempotencyKey, `brief:${seen.brief!.id}`);
    assert.deepEqual([items[0]!.channel, items[0]!.target], ['webhook', { to: 'ops' }]);
    const text = (items[0]!.payload as { text: string }).text;
    assert.match(text, /- region: eu \(legal, research\)/);
    assert.match(text, /- risk: high \(decided by vote\)/);
    assert.match(text, new RegExp(`Digest ${seen.brief!.digest}`));
    assert.ok(!(await auditOf(store, run.id)).some((e) => e.kind === 'brief.delivery-refused'));
  });

  it('a malformed claims output is a contract violation naming the field', async (t) => {
    const reg = registry({
      lead: (input) => (input.task.turn === 1 ? { actions: [{ type: 'handoff', agent: 'research' }] } : { output: input.results.map((r) => (r.ok ? r.value : r.error.message)) as Json }),
      research: { fn: () => ({ output: { claims: [{ key: 'price', evidence: [] }] } }), output: 'spine/claims@1', retry: { maxAttempts: 1 } },
    });
    const { store, worker, clock } = await clocked(t, reg);
    const run = await submitAt(store, reg, clock, 'lead');
    await worker.runOnce();
    const out = (await store.runs.get(run.id))!.output as string[];
    assert.match(out[0]!, /violates spine\/claims@1: claims\.0 must have property "value"/);
  });
});
