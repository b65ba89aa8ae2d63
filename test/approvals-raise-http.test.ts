// Approving an escalation with a higher ceiling over HTTP (`raiseTo`), as the CLI's
// `--raise-to` does: the run goes on past its configured ceiling, the raise is audited,
// and a raise that does not fit (a denial, a lower amount) is bad input that changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FieldIssue } from '../src/core/errors.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { startTestGateway } from './fixtures/gateway-setup.ts';
import { auditOf, finished, registry, until } from './helpers.ts';

test('POST /v1/approvals/{id}/decision with raiseTo lifts the run’s ceiling; a denial or a lower amount with raiseTo is 400 INVALID_INPUT', async (t) => {
  const issues: FieldIssue[] = [];
  const policy = compilePolicy(policySchema.parse({ rules: [{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 0.5 }] }), issues);
  assert.deepEqual(issues, []);
  let ran = 0;
  const reg = registry(
    // One priced call per turn, three turns: $1.20 against a $0.50 ceiling.
    { spender: (input) => (input.task.turn <= 3 ? { actions: [{ type: 'tool', tool: 'llm.call', input: { n: input.task.turn } }] } : { output: ran }) },
    { 'llm.call': { cost: { micros: 400_000, tokens: 0 }, run: () => ++ran } },
    { policy },
  );
  const g = await startTestGateway(t, { reg, bindings: [{ id: 'api', match: { channel: 'api' }, agent: 'spender' }] });
  await g.startWorker(reg);
  const runId = (await g.call('POST', '/v1/envelopes', { body: { text: 'spend' } })).body.run.id;
  const rootTaskId = (await g.store.runs.get(runId))!.rootTaskId;
  await until('escalated at the ceiling', async () => (await g.store.tasks.get(rootTaskId))?.state === 'escalated', 20_000);
  const [esc] = await g.store.approvals.list({ runId, state: 'pending', limit: 5 });
  assert.equal(esc?.kind, 'escalation');
  const decide = (body: unknown) => g.call('POST', `/v1/approvals/${esc.id}/decision`, { token: 'operator', body });

  const denied = await decide({ approve: false, raiseTo: 2 });
  assert.equal(denied.status, 400);
  assert.equal(denied.body.error.code, 'INVALID_INPUT');
  assert.match(denied.body.error.message, /^raiseTo: a ceiling is raised only when approving/);
  const lower = await decide({ approve: true, raiseTo: 0.25 });
  assert.equal(lower.status, 400);
  assert.match(lower.body.error.message, /^raiseTo: must be above per-run's ceiling of \$0\.5, got \$0\.25/);
  assert.equal((await g.store.approvals.get(esc.id))!.state, 'pending', 'bad input changed nothing');

  const ok = await decide({ approve: true, reason: 'worth it', raiseTo: 2 });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const done = await finished(g.store, runId);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.output, 3, 'every call ran under the raised ceiling');
  const raised = (await auditOf(g.store, runId)).find((e) => e.kind === 'cost.ceiling-raised');
  assert.equal((raised?.data as { toMicros: number }).toMicros, 2_000_000);
  assert.equal(raised?.actor, 'operator');
});
