// Shared state across processes on PostgreSQL (issue 5): 8 real `spine worker`
// processes and 2 `spine gateway` processes on one schema.
//   - a global cost ceiling raced by 8 workers: the settled spend never exceeds it and
//     the calls over budget escalate;
//   - rate limits (onExceeded fail and wait): the tool never runs more often than the
//     bucket allows, counted from its real invocations;
//   - an approval requested through one gateway and decided on the other wakes the
//     waiting task in whichever worker process takes it;
//   - a per-second cron schedule in every worker process (8 schedulers): each fire
//     makes exactly one envelope, none missed, none doubled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json, Run } from '../src/core/types.ts';
import { Cluster, fnAgent, fnTool, http, type ClusterConfig, type SpineProcess } from './fixtures/pg-chaos-cluster.ts';
import { readCalls, type ToolCall } from './fixtures/pg-chaos-project.ts';
import { PG_ONLY, sql } from './fixtures/pg-env.ts';

const WORKERS = 8;
const CEILING_USD = 1;
const PRICE_USD = 0.01;
const FAIL_CAPACITY = 10;
const WAIT_CAPACITY = 5;
const WAIT_REFILL_PER_S = 5;
/**
 * A token is taken when the boundary decides (the worker's clock), the tool is entered
 * later (after the decision and the ledger row are committed). Windows over the tool's
 * entry times are widened by this much: on a loaded 2-core machine the lag from take to
 * entry reached 400 ms for one call and not the next (24 calls seen in a window that
 * allows 23.92). A limiter letting calls through at twice the rate still fails any
 * window longer than a second.
 */
const TAKE_TO_CALL_SLACK_MS = 1_000;

const CALLER_GRANTS = { tools: ['llm.*', 'search.*', 'payments.*'] };

function config(): ClusterConfig {
  return {
    agents: {
      caller: fnAgent('caller', { grants: CALLER_GRANTS, retry: { maxAttempts: 3, initialMs: 10, maxMs: 100 } }),
      ticker: fnAgent('ticker'),
    },
    tools: {
      'llm.complete': fnTool('llmComplete', { cost: { usd: PRICE_USD } }),
      'search.fail': fnTool('searchFail', { sideEffect: 'read' }),
      'search.wait': fnTool('searchWait', { sideEffect: 'read' }),
      'payments.send': fnTool('paymentsSend'),
    },
    policy: {
      rules: [
        { id: 'global-spend', kind: 'cost', scope: 'global', maxUsd: CEILING_USD },
        { id: 'search-fail', kind: 'rateLimit', actions: ['tool:search.fail'], capacity: FAIL_CAPACITY, refillPerSecond: 0.0001, onExceeded: 'fail' },
        { id: 'search-wait', kind: 'rateLimit', actions: ['tool:search.wait'], capacity: WAIT_CAPACITY, refillPerSecond: WAIT_REFILL_PER_S, onExceeded: 'wait' },
        { id: 'payments-need-ok', kind: 'approval', actions: ['tool:payments.send'], tier: 'approve', approvers: 'finance' },
      ],
    },
    // Every worker process runs the scheduler: 8 of them race for each fire.
    schedules: { tick: { cron: '* * * * * *', agent: 'ticker', text: 'tick', catchUp: 'all' } },
    // A lease outlives 4 s without a heartbeat: 8 worker processes on 2 loaded cores can stall for
    // seconds, and a lease lost that way leaves its spend reserved until the reservation's TTL.
    worker: { concurrency: 8, leaseMs: 5_000, heartbeatMs: 1_000, pollMs: 50, drainMs: 1_000 },
  };
}

async function count(schema: string, query: string, params: unknown[] = []): Promise<number> {
  return Number((await sql<{ n: string }>(schema, query, params))[0]!.n);
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number, onTimeout: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${onTimeout()}`);
    await sleep(50);
  }
}

describe('shared state across 8 worker processes on PostgreSQL', { skip: PG_ONLY }, () => {
  let cluster: Cluster;
  let workers: Array<SpineProcess & { workerId: string }> = [];
  let gateways: Array<SpineProcess & { base: string }> = [];
  let token = '';
  const output = () => [...workers, ...gateways].map((p) => `── ${p.role} ${p.pid}\n${p.output()}`).join('\n');

  before(async () => {
    cluster = new Cluster(config(), { pool: 3 });
    await cluster.migrate();
    token = await cluster.operatorToken('finance-lead');
    [gateways, workers] = await Promise.all([
      Promise.all([cluster.startGateway(), cluster.startGateway()]),
      Promise.all(Array.from({ length: WORKERS }, () => cluster.startWorker())),
    ]);
  });
  after(() => cluster?.close());

  /** Creates runs of `caller` for `tool` directly in the store (as any process could). */
  async function submitCalls(tool: string, n: number): Promise<Run[]> {
    const now = Date.now();
    const made = await Promise.all(Array.from({ length: n }, () => cluster.store.runs.create({ agent: 'caller', input: { tool }, maxAttempts: 3, actor: 'test' }, now)));
    return made.map((m) => m.run);
  }

  /** Root-task states of the given runs, counted. */
  async function rootStates(runs: Run[]): Promise<Record<string, number>> {
    const rows = await sql<{ state: string; n: string }>(cluster.schema, 'SELECT state, count(*) AS n FROM tasks WHERE id = ANY($1) GROUP BY state', [runs.map((r) => r.rootTaskId)]);
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  function pidsOf(calls: ToolCall[]): number {
    return new Set(calls.map((c) => c.pid)).size;
  }

  it(`a global cost ceiling raced by ${WORKERS} workers: settled spend never exceeds it; the calls over it escalate`, { timeout: 60_000 }, async (t) => {
    const CALLS = 200;
    const ceiling = CEILING_USD * 1e6;
    const price = PRICE_USD * 1e6;
    const fit = Math.floor(ceiling / price);
    const runs = await submitCalls('llm.complete', CALLS);
    const usage = async () => sql<{ key: string; spent: string; reserved: string }>(cluster.schema, `SELECT key, spent_micros AS spent, reserved_micros AS reserved FROM budgets WHERE key LIKE 'cost:global-spend:%'`);
    let peak = 0;
    let samples = 0;
    await waitFor(
      `${CALLS} priced calls spent or escalated`,
      async () => {
        for (const u of await usage()) peak = Math.max(peak, Number(u.spent) + Number(u.reserved));
        samples++;
        const s = await rootStates(runs);
        return (s.succeeded ?? 0) + (s.escalated ?? 0) === CALLS;
      },
      45_000,
      output,
    );

    const budgets = await usage();
    for (const b of budgets) {
      assert.ok(Number(b.spent) <= ceiling, `${b.key}: spent ${b.spent} > ceiling ${ceiling}`);
      assert.equal(Number(b.reserved), 0, `${b.key}: nothing left reserved`);
    }
    assert.ok(peak <= ceiling, `spent + reserved peaked at ${peak} > ${ceiling}`);
    const calls = readCalls(cluster.dir, 'llm.complete');
    const states = await rootStates(runs);
    const spent = budgets.reduce((n, b) => n + Number(b.spent), 0);
    // If not, whether calls ran again after a lease was lost (a process stalled past leaseMs) says which way to look.
    const retaken = await sql<{ kind: string; n: string }>(cluster.schema, `SELECT kind, count(*) AS n FROM audit_events WHERE kind IN ('task.reclaimed', 'effect.restarted') GROUP BY kind`);
    const seen = { calls: calls.length, keys: new Set(calls.map((c) => c.key)).size, maybeRepeated: calls.filter((c) => c.maybeRepeated).length, retaken };
    assert.equal(spent, calls.length * price, `every call that ran was settled at its price, and nothing else: ${JSON.stringify(seen)}`);
    assert.equal(new Set(calls.map((c) => c.key)).size, calls.length, 'no call ran twice');
    assert.equal(states.succeeded, calls.length, 'the calls that ran are the runs that went through');
    const escalated = await sql<{ id: string; error: string }>(cluster.schema, `SELECT id, error FROM tasks WHERE id = ANY($1) AND state = 'escalated'`, [runs.map((r) => r.rootTaskId)]);
    for (const e of escalated) assert.equal((JSON.parse(e.error) as { code: string }).code, 'BUDGET_EXCEEDED');
    const approvals = (await cluster.store.approvals.list({ state: 'pending', limit: 1_000 })).filter((a) => a.ruleId === 'global-spend');
    assert.equal(approvals.length, escalated.length, 'each escalated call waits for a human');
    assert.deepEqual(new Set(approvals.map((a) => a.kind)), new Set(['escalation']));
    const reached = await count(cluster.schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'cost.ceiling-reached'`);
    assert.equal(reached, escalated.length);
    if (budgets.length === 1) {
      // One day's budget (the test did not straddle midnight UTC): exactly what fits ran.
      assert.equal(calls.length, fit, `exactly ${fit} calls fit the ceiling`);
      assert.equal(escalated.length, CALLS - fit);
    }
    assert.ok(pidsOf(calls) >= 2, `the calls were spread over several worker processes (${pidsOf(calls)})`);
    t.diagnostic(`postgres limits: cost ${JSON.stringify({ calls: CALLS, ran: calls.length, escalated: escalated.length, spentMicros: spent, peakMicros: peak, samples, processes: pidsOf(calls) })}`);
  });

  it(`a rate limit with onExceeded fail: of many racing calls exactly the bucket's ${FAIL_CAPACITY} run`, { timeout: 60_000 }, async (t) => {
    const CALLS = 80;
    const runs = await submitCalls('search.fail', CALLS);
    await waitFor('rate-limited runs finished', async () => (await rootStates(runs)).succeeded === CALLS, 45_000, output);
    const calls = readCalls(cluster.dir, 'search.fail');
    // The bucket refills 0.0001/s: well under one token over the test.
    assert.equal(calls.length, FAIL_CAPACITY, `the tool ran exactly ${FAIL_CAPACITY} times`);
    assert.equal(new Set(calls.map((c) => c.key)).size, calls.length);
    const outputs = await Promise.all(runs.map(async (r) => (await cluster.store.runs.get(r.id))!.output as { ok?: Json; refused?: string }));
    assert.equal(outputs.filter((o) => o.ok !== undefined).length, FAIL_CAPACITY);
    assert.equal(outputs.filter((o) => o.refused === 'RATE_LIMITED').length, CALLS - FAIL_CAPACITY);
    const limited = await count(cluster.schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'policy.rate-limited' AND data LIKE '%search-fail%'`);
    assert.equal(limited, CALLS - FAIL_CAPACITY);
    t.diagnostic(`postgres limits: rate fail ${JSON.stringify({ calls: CALLS, ran: calls.length, processes: pidsOf(calls) })}`);
  });

  it(`a rate limit with onExceeded wait: every call runs once, never faster than ${WAIT_CAPACITY} + ${WAIT_REFILL_PER_S}/s`, { timeout: 60_000 }, async (t) => {
    const CALLS = 40;
    const started = Date.now();
    const runs = await submitCalls('search.wait', CALLS);
    await waitFor('deferred runs finished', async () => (await rootStates(runs)).succeeded === CALLS, 45_000, output);
    const elapsed = Date.now() - started;
    const calls = readCalls(cluster.dir, 'search.wait').sort((a, b) => a.at - b.at);
    assert.equal(calls.length, CALLS, 'each call ran once');
    assert.equal(new Set(calls.map((c) => c.key)).size, CALLS);
    for (const r of runs) assert.deepEqual(Object.keys(((await cluster.store.runs.get(r.id))!.output as object) ?? {}), ['ok']);
    // In every window [calls[i], calls[j]]: j - i + 1 calls ≤ capacity + refill × (window + slack).
    let tightest = -Infinity;
    for (let i = 0; i < calls.length; i++) {
      for (let j = i; j < calls.length; j++) {
        const allowed = WAIT_CAPACITY + (WAIT_REFILL_PER_S * (calls[j]!.at - calls[i]!.at + TAKE_TO_CALL_SLACK_MS)) / 1000;
        tightest = Math.max(tightest, j - i + 1 - allowed);
        assert.ok(j - i + 1 <= allowed, `${j - i + 1} calls within ${calls[j]!.at - calls[i]!.at} ms; the bucket allows ${allowed.toFixed(2)}`);
      }
    }
    // The bucket really held them back: the last call could not come before the tokens did.
    const span = calls.at(-1)!.at - calls[0]!.at;
    assert.ok(span + TAKE_TO_CALL_SLACK_MS >= ((CALLS - WAIT_CAPACITY) / WAIT_REFILL_PER_S) * 1000, `${CALLS} calls in ${span} ms`);
    const deferred = await count(cluster.schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'task.deferred' AND task_id = ANY($1)`, [runs.map((r) => r.rootTaskId)]);
    assert.ok(deferred >= CALLS - WAIT_CAPACITY, `calls past the bucket were deferred (${deferred})`);
    t.diagnostic(`postgres limits: rate wait ${JSON.stringify({ calls: CALLS, spanMs: span, elapsedMs: elapsed, deferrals: deferred, closestToLimit: Number(tightest.toFixed(2)), processes: pidsOf(calls) })}`);
  });

  it('an approval requested through one gateway and decided on the other wakes the task in a worker process', { timeout: 60_000 }, async (t) => {
    const [a, b] = gateways as [SpineProcess & { base: string }, SpineProcess & { base: string }];
    // Two customers, two sessions: neither waits behind the other's lane.
    const submit = async (key: string) => {
      const body = { agent: 'caller', sender: { id: key }, text: 'pay', data: { tool: 'payments.send' } };
      const res = await http<{ run: Run }>(a.base, token, 'POST', '/v1/envelopes', body, { 'idempotency-key': key });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      return res.body.run;
    };
    const approved = await submit('pay-approve');
    const denied = await submit('pay-deny');
    type Approval = { id: string; state: string; taskId: string; decidedBy: string | null; ruleId: string };
    const pendingOn = async (run: Run) => (await http<{ approvals: Approval[] }>(b.base, token, 'GET', `/v1/approvals?run=${run.id}`)).body.approvals;
    await waitFor('both approvals requested', async () => (await pendingOn(approved)).length === 1 && (await pendingOn(denied)).length === 1, 20_000, () => JSON.stringify([approved, denied]) + output());
    const [ask] = await pendingOn(approved);
    const [ask2] = await pendingOn(denied);
    assert.equal(ask!.ruleId, 'payments-need-ok');
    const waiting = (await cluster.store.tasks.get(approved.rootTaskId))!;
    assert.equal(waiting.state, 'waiting', 'the task waits durably');
    assert.equal(waiting.leaseOwner, null, 'holding no worker');
    assert.equal(readCalls(cluster.dir, 'payments.send').length, 0, 'nothing paid before the decision');

    const decidedAt = Date.now();
    const yes = await http<{ approval: Approval }>(b.base, token, 'POST', `/v1/approvals/${ask!.id}/decision`, { approve: true, reason: 'ok for this customer' });
    assert.equal(yes.status, 200, JSON.stringify(yes.body));
    assert.equal(yes.body.approval.decidedBy, 'finance-lead');
    const no = await http<{ approval: Approval }>(a.base, token, 'POST', `/v1/approvals/${ask2!.id}/decision`, { approve: false, reason: 'not this one' });
    assert.equal(no.status, 200, JSON.stringify(no.body));

    const runOn = async (base: string, run: Run) => (await http<{ run: Run }>(base, token, 'GET', `/v1/runs/${run.id}`)).body.run;
    await waitFor('both runs finished', async () => (await runOn(a.base, approved)).state === 'succeeded' && (await runOn(b.base, denied)).state === 'succeeded', 20_000, output);
    const wokeMs = Date.now() - decidedAt;
    assert.deepEqual((await runOn(b.base, approved)).output, { ok: { receipt: `rcpt:${approved.id}` } });
    assert.deepEqual((await runOn(a.base, denied)).output, { refused: 'POLICY_DENIED' });
    const paid = readCalls(cluster.dir, 'payments.send');
    assert.equal(paid.length, 1, 'the approved payment ran once; the denied one never');
    assert.ok(
      workers.some((w) => w.pid === paid[0]!.pid),
      'a worker process ran it',
    );
    // Resumed by a worker lease taken after the decision (no gateway runs tasks).
    const leases = await sql<{ actor: string }>(cluster.schema, `SELECT actor FROM audit_events WHERE task_id = $1 AND kind = 'task.leased' ORDER BY seq`, [approved.rootTaskId]);
    const ids = new Set(workers.map((w) => w.workerId));
    assert.ok(leases.length >= 2 && leases.every((l) => ids.has(l.actor)), `leased by the workers: ${JSON.stringify(leases)}`);
    t.diagnostic(`postgres limits: approval ${JSON.stringify({ decidedOn: 'the other gateway', finishedWithinMs: wokeMs, requestedBy: leases[0]!.actor, resumedBy: leases.at(-1)!.actor })}`);
  });

  it(`a per-second cron in all ${WORKERS} worker processes: one envelope per fire, none missed`, { timeout: 60_000 }, async (t) => {
    // Let the schedule fire for a while on top of what the tests above did.
    await waitFor('at least 5 cron fires', async () => (await count(cluster.schema, `SELECT count(*) AS n FROM envelopes WHERE channel = 'cron'`)) >= 5, 20_000, output);
    const ids = await sql<{ id: string }>(cluster.schema, `SELECT run_id AS id FROM envelopes WHERE channel = 'cron'`);
    await waitFor('the fires so far ran', async () => (await count(cluster.schema, `SELECT count(*) AS n FROM runs WHERE id = ANY($1) AND state = 'succeeded'`, [ids.map((r) => r.id)])) === ids.length, 20_000, output);

    // Stop every process (SIGTERM: graceful), so the schedule's record is final.
    const exits = await Promise.all([...workers, ...gateways].map((p) => cluster.kill(p, 'SIGTERM')));
    exits.forEach((e, i) => assert.deepEqual(e, { code: 0, signal: null }, `graceful exit of process ${i}\n${output()}`));

    const envelopes = await sql<{ idempotency_key: string; data: string; run_id: string }>(cluster.schema, `SELECT idempotency_key, data, run_id FROM envelopes WHERE channel = 'cron'`);
    const times = envelopes.map((e) => Date.parse((JSON.parse(e.data) as { fireAt: string }).fireAt)).sort((x, y) => x - y);
    assert.equal(new Set(envelopes.map((e) => e.idempotency_key)).size, envelopes.length, 'no fire doubled');
    assert.equal(new Set(times).size, times.length, 'no fire time twice');
    times.forEach((t, i) => i > 0 && assert.equal(t - times[i - 1]!, 1_000, `a gap or a double between ${new Date(times[i - 1]!).toISOString()} and ${new Date(t).toISOString()}`));
    assert.equal(new Set(envelopes.map((e) => e.run_id)).size, envelopes.length, 'one run per fire');
    assert.equal(await count(cluster.schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'schedule.fired'`), envelopes.length);
    assert.equal(await count(cluster.schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'schedule.skipped'`), 0);
    const state = await cluster.store.schedules.get('tick');
    assert.equal(state?.fires, envelopes.length);
    assert.equal(state?.claim, null, 'no claim left open');
    t.diagnostic(`postgres limits: schedules ${JSON.stringify({ processes: WORKERS, fires: envelopes.length, firstFire: new Date(times[0]!).toISOString(), lastFire: new Date(times.at(-1)!).toISOString() })}`);
  });
});
