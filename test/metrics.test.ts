// Metrics: GET /metrics on the gateway and `--metrics-port` for a worker, in the
// Prometheus text format (`promtool check metrics` passes where promtool is
// installed: Debian's prometheus package). Gauges are read from the store at the
// scrape; counters fold the audit log, so they move exactly when a change commits.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { systemClock } from '../src/core/clock.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import type { Json } from '../src/core/types.ts';
import { startMetricsServer } from '../src/observability/metrics-server.ts';
import { createProcessMetrics } from '../src/observability/index.ts';
import { PrometheusMeter } from '../src/observability/prometheus.ts';
import { registerSpineMetrics } from '../src/observability/spine-metrics.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { startTestGateway } from './fixtures/gateway-setup.ts';
import { finished, registry, tempStore, until } from './helpers.ts';

const PROMTOOL = '/usr/bin/promtool';

/** `name{labels} value` → value, for the sample whose labels include every given one. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string | undefined> = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x): [string, string] => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return null;
}

function promtool(text: string): void {
  if (!existsSync(PROMTOOL)) return;
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
}

describe('metrics', () => {
  it('the gateway serves /metrics to a token with read: queue, runs, turns, effects, policy, approvals — promtool-clean', async (t) => {
    const issues: FieldIssue[] = [];
    const rules: Json[] = [{ id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' }];
    const policy = compilePolicy(policySchema.parse({ rules }), issues);
    assert.deepEqual(issues, []);
    const reg = registry(
      {
        echo: () => ({ output: 'ok' }),
        lookup: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'crm.read', input: {} }] } : { output: 'done' }),
        payer: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'payments.send', input: { amount: 1 } }] } : { output: 'paid' }),
      },
      { 'crm.read': () => ({ n: 1 }), 'payments.send': () => ({ id: 'p' }) },
      { policy },
    );
    const g = await startTestGateway(t, { reg });
    assert.equal((await g.call('GET', '/metrics', { token: null })).status, 401);
    assert.equal((await g.call('GET', '/metrics', { token: 'ingressApi' })).status, 403);

    // Queued with no worker: the queue gauge shows it.
    const a = await g.call('POST', '/v1/envelopes', { token: 'operator', body: { text: 'x', agent: 'lookup' } });
    const b = await g.call('POST', '/v1/envelopes', { token: 'operator', body: { text: 'y', agent: 'payer' } });
    let m = await g.call('GET', '/metrics', { token: 'viewer' });
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(m.text, 'spine_queue_depth', { agent: 'lookup' }), 1);
    assert.equal(sample(m.text, 'spine_tasks', { state: 'queued' }), 2);
    assert.equal(sample(m.text, 'spine_runs', { state: 'running' }), 2);

    await g.startWorker(reg);
    assert.equal((await finished(g.store, a.body.run.id)).state, 'succeeded');
    await until('an approval', async () => (await g.store.approvals.list({ state: 'pending', limit: 5 })).length === 1, 20_000);
    m = await g.call('GET', '/metrics', { token: 'viewer' });
    assert.equal(sample(m.text, 'spine_queue_depth', { agent: 'lookup' }) ?? 0, 0, 'an agent with nothing queued has no or a zero series');
    assert.equal(sample(m.text, 'spine_turns_total', { agent: 'lookup', outcome: 'succeed' }), 1);
    assert.equal(sample(m.text, 'spine_effects_total', { tool: 'crm.read', outcome: 'completed' }), 1);
    assert.equal(sample(m.text, 'spine_actions_total', { kind: 'tool' }), 2);
    assert.ok((sample(m.text, 'spine_policy_decisions_total', { rule: 'sign-off' }) ?? 0) >= 1, m.text.split('\n').filter((l) => l.includes('policy')).join('\n'));
    assert.equal(sample(m.text, 'spine_approvals_pending'), 1);
    assert.equal(sample(m.text, 'spine_turn_duration_seconds_count', { agent: 'lookup' }), 2);
    assert.equal(sample(m.text, 'spine_runs_finished_total', { state: 'succeeded' }), 1);
    assert.equal(sample(m.text, 'spine_workers_alive'), 1);
    assert.ok(sample(m.text, 'spine_process_cpu_seconds_total') !== null);
    promtool(m.text);
    assert.equal((await g.store.runs.get(b.body.run.id))!.state, 'running', 'the payer waits for its approval');
  });

  it('spine worker --metrics-port: a bare /metrics server; only GET /metrics', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const server = await startMetricsServer(createProcessMetrics({ store, clock: systemClock, fromSeq: 0 }), { port: 0 });
    t.after(() => server.close());
    const r = await fetch(server.url);
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.equal(sample(text, 'spine_tasks', { state: 'queued' }), 0);
    promtool(text);
    assert.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404);
    assert.equal((await fetch(server.url, { method: 'POST' })).status, 405);
  });
});

describe('metrics from the layers', () => {
  it('gate verdicts and breaker transitions are counted from their audit events; breaker states are read from the store', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const meter = new PrometheusMeter({ processMetrics: false });
    const spine = registerSpineMetrics(meter, { store, clock: systemClock, fromSeq: 0 });
    spine.fold([
      { seq: 1, at: 1, kind: 'gate.verdict', data: { gate: 'no-pii', crossing: 'output', outcome: 'block' } },
      { seq: 2, at: 2, kind: 'gate.verdict', data: { gate: 'no-pii', crossing: 'output', outcome: 'pass' } },
      { seq: 3, at: 3, kind: 'breaker.opened', data: { breaker: 'tool:crm.read', state: 'open' } },
    ]);
    const text = await meter.render();
    assert.equal(sample(text, 'spine_gate_verdicts_total', { gate: 'no-pii', outcome: 'block' }), 1);
    assert.equal(sample(text, 'spine_gate_verdicts_total', { gate: 'no-pii', outcome: 'pass' }), 1);
    assert.equal(sample(text, 'spine_breaker_transitions_total', { breaker: 'tool:crm.read', event: 'opened' }), 1);
    promtool(text);
  });
});
