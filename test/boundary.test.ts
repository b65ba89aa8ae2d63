// Law 5, one boundary: every crossing passes the stages of engine/boundary.ts, in
// order, and no contract or policy check lives anywhere else.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { CROSSING_STAGES, STAGES } from '../src/core/crossing.ts';
import type { Gate, GateSubject } from '../src/validation/gate.ts';
import { ContractRegistry } from '../src/contracts/registry.ts';
import { Boundary, taskCrossing } from '../src/engine/boundary.ts';
import { systemClock } from '../src/core/clock.ts';
import type { Task } from '../src/core/types.ts';
import { registry, tempStore } from './helpers.ts';

const SRC = join(import.meta.dirname, '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('one boundary', () => {
  it('no contract or policy check lives outside engine/boundary.ts', () => {
    // The registries define the checks; only the boundary calls them.
    // The gate kinds (validation/kinds.ts) define gates' checks; only the boundary's gates stage runs them and decides.
    const allowed = new Set(['engine/boundary.ts', 'contracts/registry.ts', 'policy/evaluate.ts', 'validation/kinds.ts', 'validation/outcome.ts']);
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      if (allowed.has(rel)) continue;
      const text = readFileSync(file, 'utf8');
      for (const [pattern, what] of [
        [/\.violations\(/, 'a contract check (contracts.violations)'],
        [/\bpolicy\.evaluate\(/, 'a policy decision (policy.evaluate)'],
        [/\bdecideOutcome\(/, 'a gate decision (decideOutcome)'],
        [/\.check\(\s*[\w.]+\.(input|output)\b/, 'a contract check'],
      ] as const) {
        if (pattern.test(text)) offenders.push(`${rel}: ${what}`);
      }
    }
    assert.deepEqual(offenders, [], 'checks belong in the boundary');
  });

  it('every crossing passes its stages in the one fixed order', () => {
    for (const [kind, stages] of Object.entries(CROSSING_STAGES)) {
      const order = stages.map((s) => STAGES.indexOf(s));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `${kind}: stages out of order`);
      assert.ok(stages.includes('audit'), `${kind}: every crossing is audited`);
    }
  });

  it('contract before policy before gates: a refused payload never reaches policy, a denied action never reaches the gates', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const contracts = new ContractRegistry();
    contracts.add('note@1', { schema: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } });
    const seen: GateSubject[] = [];
    const gate: Gate = { id: 'watch', on: 'tool', applies: () => true, check: async (s) => (seen.push(s), { verdict: 'fail', reasons: ['no'] }) };
    const reg = registry(
      { a: { fn: () => ({ output: null }), grants: { tools: { allow: ['*'], deny: ['notes.secret'] }, handoffs: null } } },
      { 'notes.save': { run: () => null, input: 'note@1' }, 'notes.secret': { run: () => null } },
      { contracts },
    );
    const boundary = new Boundary(store, { ...reg, gates: [gate] }, systemClock);
    const task = { id: 'task_1', runId: 'run_1', agent: 'a' } as Task;
    const ctx = (key: string) => taskCrossing(task, 'default', 'test', key);

    const bad = await boundary.tool(ctx('k1'), reg.tools.get('notes.save')!, { text: 3 });
    assert.equal(bad.effect, 'deny');
    assert.deepEqual(bad.audit.map((a) => a.kind), ['contract.rejected']);

    const denied = await boundary.tool(ctx('k2'), reg.tools.get('notes.secret')!, null);
    assert.equal(denied.effect, 'deny');
    assert.deepEqual(denied.audit.map((a) => a.kind), ['policy.decision']);
    assert.equal(seen.length, 0, 'the gate never saw refused crossings');

    const gated = await boundary.tool(ctx('k3'), reg.tools.get('notes.save')!, { text: 'hi' });
    assert.equal(gated.effect, 'deny');
    assert.equal(seen.length, 1);
    assert.deepEqual(gated.audit.map((a) => a.kind), ['gate.verdict']);
  });
});
