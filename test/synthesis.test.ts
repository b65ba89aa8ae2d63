// Synthesis as pure functions: the detector (property tests with fast-check), every
// resolution strategy, the chain, the digest, and config errors that name the field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Candidate, Claim, Comparator, Strategy } from '../src/core/brief.ts';
import type { Json } from '../src/core/types.ts';
import { briefDigest, startBrief } from '../src/synthesis/brief.ts';
import { canonical } from '../src/synthesis/canonical.ts';
import { compileSynthesis } from '../src/synthesis/config.ts';
import { detect, type Lane } from '../src/synthesis/detect.ts';
import { advance, applyRule, choiceOf, newConflict } from '../src/synthesis/resolve.ts';
import type { FieldIssue } from '../src/core/issues.ts';
import { ConfigError } from '../src/core/errors.ts';
import { loadConfig } from '../src/runtime/config.ts';

const keys = fc.constantFrom('price', 'price.eur', 'tags', 'risk', 'name');
const values: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: 0, max: 4 }),
  fc.constantFrom('a', 'b'),
  fc.constantFrom('x', 'xy', 'y').map((s) => s.split('')),
);
const claim: fc.Arbitrary<Claim> = fc.record(
  { key: keys, value: values, confidence: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }), evidence: fc.array(fc.record({ kind: fc.constantFrom('effect' as const, 'url' as const), ref: fc.constantFrom('r1', 'r2') }), { maxLength: 2 }) },
  { requiredKeys: ['key', 'value', 'evidence'] },
).map((c) => (c.confidence === undefined ? { key: c.key, value: c.value, evidence: c.evidence } : c));
const lanes: fc.Arbitrary<Lane[]> = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ agent: fc.constantFrom('research', 'finance', 'legal'), claims: fc.array(claim, { maxLength: 6 }) }).map((l) => ({ ...l, ok: true as const, turn: 1 })) },
      { weight: 1, arbitrary: fc.constantFrom('research', 'legal').map((agent) => ({ agent, ok: false as const, error: { code: 'AGENT_FAILED', message: 'x', retryable: false } })) },
    ),
    { maxLength: 6 },
  )
  .map((ls) => ls.map((l, i) => ({ ...l, task: `task_${String(i).padStart(2, '0')}` })));

const cmp = (key: string): Comparator => (key === 'tags' ? { kind: 'set' } : key.startsWith('price') ? { kind: 'numeric', tolerance: 1 } : { kind: 'equal' });

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('detect (properties)', () => {
  it('does not depend on the order of lanes or of claims', () => {
    fc.assert(
      fc.property(lanes, fc.integer({ min: 1, max: 1_000_000 }), (ls, seed) => {
        const reordered = shuffle(ls, seed).map((l) => (l.ok ? { ...l, claims: shuffle(l.claims ?? [], seed + 1) } : l));
        assert.equal(canonical(detect(reordered, cmp, ['risk']) as unknown as Json), canonical(detect(ls, cmp, ['risk']) as unknown as Json));
      }),
    );
  });

  it('a key every lane agrees on is never a conflict', () => {
    fc.assert(
      fc.property(lanes, keys, values, (ls, key, value) => {
        const same = ls.map((l) => (l.ok ? { ...l, claims: [...(l.claims ?? []).filter((c) => c.key !== key), { key, value, evidence: [] }] } : l));
        const d = detect(same, cmp);
        assert.ok(!d.conflicts.some((c) => c.key === key));
      }),
    );
  });

  it('every input claim is in the result exactly once, as a part source or a conflict candidate source', () => {
    fc.assert(
      fc.property(lanes, (ls) => {
        const d = detect(ls, cmp);
        const input = ls.flatMap((l) => (l.ok ? (l.claims ?? []).map((c) => `${l.task}|${c.key}`) : [])).sort();
        const out = [...d.parts.flatMap((p) => p.from.map((f) => `${f.task}|${p.key}`)), ...d.conflicts.flatMap((c) => c.candidates.flatMap((cand) => cand.from.map((f) => `${f.task}|${c.key}`)))].sort();
        assert.deepEqual(out, input);
      }),
    );
  });
});

describe('detect (examples)', () => {
  const lane = (agent: string, task: string, claims: Claim[]): Lane => ({ agent, task, turn: 2, ok: true, claims });
  it('classifies agree, complementary, conflict and missing; failed lanes are kept', () => {
    const d = detect(
      [
        lane('research', 't1', [{ key: 'price', value: 100, evidence: [{ kind: 'effect', ref: 'run/t1/1/0' }] }, { key: 'tags', value: ['a'], evidence: [] }, { key: 'risk', value: 'low', evidence: [] }]),
        lane('finance', 't2', [{ key: 'price', value: 100.5, evidence: [] }, { key: 'tags', value: ['b'], evidence: [] }, { key: 'risk', value: 'high', evidence: [] }]),
        { agent: 'legal', task: 't3', ok: false, error: { code: 'AGENT_FAILED', message: 'down', retryable: false } },
      ],
      cmp,
      ['compliance'],
    );
    assert.deepEqual(
      d.parts.map((p) => [p.key, p.status, p.value]),
      [
        ['price', 'agree', 100],
        ['tags', 'complementary', ['a', 'b']],
      ],
    );
    assert.equal(d.parts[0]!.from[1]!.effect, 'run/t1/1/0');
    assert.deepEqual(d.conflicts.map((c) => [c.key, c.candidates.map((x) => x.value)]), [['risk', ['high', 'low']]]);
    assert.deepEqual(d.missing, [{ key: 'compliance', lanes: ['t3'] }]);
    assert.deepEqual(d.failedLanes.map((l) => l.task), ['t3']);
  });
});

function cand(value: Json, ...from: Array<[string, number?]>): Candidate {
  return { value, from: from.map(([agent, confidence], i) => ({ agent, task: `${agent}-${i}`, turn: 1, evidence: [], ...(confidence === undefined ? {} : { confidence }) })) };
}

describe('strategies', () => {
  const cands = [cand('high', ['finance', 0.9]), cand('low', ['research', 0.6], ['legal', 0.7])];
  it('priority: the first agent in the order that backs exactly one value', () => {
    assert.deepEqual(applyRule({ strategy: 'priority', order: ['finance', 'research'] }, cands), { decided: 'high', note: 'finance ranks first' });
    assert.equal('pass' in applyRule({ strategy: 'priority', order: ['ops'] }, cands) && 'no-match', 'no-match');
  });
  it('vote: a majority wins, a tie passes on', () => {
    assert.equal((applyRule({ strategy: 'vote' }, cands) as { decided: Json }).decided, 'low');
    assert.deepEqual(applyRule({ strategy: 'vote' }, [cand(1, ['a']), cand(2, ['b'])]), { pass: 'tie', note: '2 values with 1 claims each' });
  });
  it('confidence {min}: the most confident value at or above min', () => {
    assert.equal((applyRule({ strategy: 'confidence', min: 0.8 }, cands) as { decided: Json }).decided, 'high');
    assert.equal((applyRule({ strategy: 'confidence', min: 0.95 }, cands) as { pass: string }).pass, 'below-min');
  });
  it('a chain: vote ties, then a judge decides (asked once, answered later); keep-both leaves it unresolved', () => {
    const chain: Strategy[] = [{ strategy: 'vote' }, { strategy: 'judge', agent: 'judge' }, { strategy: 'human', approvers: 'operators', expiresInMs: null }];
    const c0 = newConflict('risk', [cand('high', ['finance']), cand('low', ['research'])], '*');
    const a = advance(c0, chain);
    assert.deepEqual(a.need, { judge: chain[1] });
    assert.deepEqual(a.conflict.steps.map((s) => s.outcome), ['tie']);
    const asked = { ...a.conflict, pending: { judge: 'task_j' } };
    assert.deepEqual(advance(asked, chain, { judge: { state: 'pending' } }).need, { wait: 'judge' });
    const decided = advance(asked, chain, { judge: { state: 'succeeded', output: { decision: 'decided', value: 'high', rationale: 'filings' }, agent: 'judge', task: 'task_j', turn: 1 } });
    assert.deepEqual(decided.conflict.decision, { strategy: 'judge', value: 'high', decider: { kind: 'agent', agent: 'judge', task: 'task_j', turn: 1 } });
    // A judge that abstains passes on to a human; approving option 2 picks the second candidate.
    const abstained = advance(asked, chain, { judge: { state: 'succeeded', output: { decision: 'abstain', rationale: 'unsure' }, agent: 'judge', task: 'task_j', turn: 1 } });
    assert.deepEqual(abstained.need, { human: chain[2] });
    const human = advance({ ...abstained.conflict, pending: { approval: 'k' } }, chain, { approval: { state: 'approved', id: 'apr_1', actor: 'ana', choice: 2 } });
    assert.deepEqual(human.conflict.decision, { strategy: 'human', value: 'low', decider: { kind: 'human', actor: 'ana', approval: 'apr_1' } });
    const denied = advance({ ...abstained.conflict, pending: { approval: 'k' } }, chain, { approval: { state: 'denied', id: 'apr_1', actor: 'ana' } });
    assert.equal(denied.conflict.unresolved, true);
    const kept = advance(c0, [{ strategy: 'keep-both' }]);
    assert.deepEqual([kept.conflict.unresolved, kept.conflict.decision, kept.need], [true, null, null]);
  });
  it('choiceOf reads the option from an approval reason', () => {
    assert.deepEqual([choiceOf('2', 3), choiceOf('option 3: legal is right', 3), choiceOf('pick #1', 3), choiceOf('9', 3), choiceOf(null, 3)], [2, 3, 1, null, null]);
  });
});

describe('digest', () => {
  it('the same inputs and decisions give the same digest; another decision gives another', () => {
    const ls: Lane[] = [
      { agent: 'a', task: 't1', turn: 1, ok: true, claims: [{ key: 'k', value: 1, evidence: [] }] },
      { agent: 'b', task: 't2', turn: 1, ok: true, claims: [{ key: 'k', value: 2, evidence: [] }] },
    ];
    const spec = compileSynthesis({ resolve: [{ match: '*', strategy: 'priority', order: ['a'] }] }, ['a', 'b'], 's', []);
    const one = startBrief(ls, spec);
    const two = startBrief([...ls].reverse(), spec);
    assert.equal(briefDigest(one), briefDigest(two));
    const decide = (b: typeof one, who: string) => ({ ...b, conflicts: b.conflicts.map((c) => advance(c, [{ strategy: 'priority', order: [who] }]).conflict) });
    assert.equal(briefDigest(decide(one, 'a')), briefDigest(decide(two, 'a')));
    assert.notEqual(briefDigest(decide(one, 'a')), briefDigest(decide(one, 'b')));
  });
});

describe('config', () => {
  it('an unknown strategy or agent is refused with the field named', () => {
    const issues: FieldIssue[] = [];
    compileSynthesis(
      {
        judge: 'nobody',
        resolve: [
          { match: 'price.*', strategy: 'priority', order: ['finance', 'ghost'] },
          { match: '*', chain: ['vote', 'coin-flip', { strategy: 'judge', agent: 'phantom' }] },
          { match: 'x' },
        ],
      },
      ['finance', 'research'],
      'agents.lead.synthesis',
      issues,
    );
    assert.deepEqual(issues, [
      { path: 'agents.lead.synthesis.judge', message: 'unknown agent "nobody"' },
      { path: 'agents.lead.synthesis.resolve.0.order', message: 'unknown agent "ghost"' },
      { path: 'agents.lead.synthesis.resolve.1.chain.1', message: 'unknown strategy "coin-flip" (known: priority, vote, confidence, judge, human, keep-both)' },
      { path: 'agents.lead.synthesis.resolve.1.chain.2.agent', message: 'unknown agent "phantom"' },
      { path: 'agents.lead.synthesis.resolve.2', message: 'give either "strategy" (one) or "chain" (several, in order)' },
    ]);
  });
});

describe('config at load', () => {
  it('a resolve naming an unknown strategy or agent, a bad join mode and a reserved contract id are refused, each field named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spine-synthesis-config-'));
    try {
      writeFileSync(join(dir, 'agent.ts'), 'export default () => ({ output: null });\n');
      const file = join(dir, 'spine.config.json5');
      writeFileSync(
        file,
        JSON.stringify({
          contracts: { 'spine/claims@1': { schema: { type: 'object' } } },
          agents: {
            lead: {
              kind: 'function',
              module: './agent.ts',
              join: { mode: 'most' },
              synthesis: { resolve: [{ match: '*', chain: ['vote', 'coin-flip'] }, { match: 'price', strategy: 'judge', agent: 'ghost' }] },
            },
            worker: { kind: 'function', module: './agent.ts', output: 'spine/claims@1', join: { mode: 'quorum:2', onChildFailure: 'sometimes' } },
          },
        }),
      );
      let issues: FieldIssue[] = [];
      try {
        await loadConfig(file);
        assert.fail('expected a ConfigError');
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        issues = err.issues;
      }
      assert.deepEqual(
        issues.map((i) => i.path).sort(),
        ['agents.lead.join.mode', 'agents.worker.join.onChildFailure'],
        'the schema stage names the join fields first',
      );
      // With the join fields fixed, the synthesis block and the reserved contract are named.
      writeFileSync(file, readFileSync(file, 'utf8').replace('"most"', '"first"').replace('"sometimes"', '"fail"'));
      try {
        await loadConfig(file);
        assert.fail('expected a ConfigError');
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        issues = err.issues;
      }
      assert.deepEqual(issues.map((i) => [i.path, i.message]).sort(), [
        ['agents.lead.synthesis.resolve.0.chain.1', 'unknown strategy "coin-flip" (known: priority, vote, confidence, judge, human, keep-both)'],
        ['agents.lead.synthesis.resolve.1.agent', 'unknown agent "ghost"'],
        ['contracts.spine/claims@1', 'the spine/ namespace is reserved for built-in contracts'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
