// Approval tiers at work: auto, notify (operators told), deny, and approve — a durable
// request that parks the task without a worker until a human decides (who decided is
// recorded); expiry escalation (deny, reroute to other approvers, notify); standing
// grants; and a waiting task that survives a SIGKILL of its worker process.
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { storeFacts } from '../../src/policy/evaluate.ts';
import { InvalidStateError, type FieldIssue } from '../../src/core/errors.ts';
import type { Json, TurnInput } from '../../src/core/types.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import { compilePolicy, policySchema } from '../../src/policy/rules.ts';
import type { Approval, Store } from '../../src/store/store.ts';
import { readPayments, spine, startWorkerProcess, writeProject, type WorkerProcess } from '../fixtures/policy-project.ts';
import { auditOf, clocked, finished, harness, registry, submit, tempStore, until } from '../helpers.ts';

function policy(rules: Json[]) {
  const issues: FieldIssue[] = [];
  const compiled = compilePolicy(policySchema.parse({ rules }), issues);
  assert.deepEqual(issues, []);
  return compiled;
}

const HOUR = 3_600_000;

/** An agent that calls `payments.send` once and reports what came back; the tool counts its executions. */
function payments(rules: Json[]) {
  const ran: Json[] = [];
  const turns: number[] = [];
  const seen: TurnInput[] = [];
  const reg = registry(
    {
      payer: (input) => {
        turns.push(input.task.turn);
        seen.push(structuredClone(input));
        if (input.task.turn === 1) return { actions: [{ type: 'tool', tool: 'payments.send', input: { to: 'acme', amount: 120 } }] };
        const r = input.results[0]!;
        return { output: r.ok ? { paid: r.value } : { refused: r.error.code } };
      },
    },
    { 'payments.send': (input) => (ran.push(input), 'paid') },
    { policy: policy(rules) },
  );
  return { reg, ran, turns, seen };
}

const SIGN_OFF = (extra: Record<string, Json> = {}): Json => ({ id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h', ...extra });

async function pending(store: Store, runId: string, timeoutMs?: number): Promise<Approval> {
  await until('a pending approval', async () => (await store.approvals.list({ runId, state: 'pending', limit: 5 })).length > 0, timeoutMs);
  const list = await store.approvals.list({ runId, state: 'pending', limit: 5 });
  assert.equal(list.length, 1, 'exactly one pending approval');
  return list[0]!;
}

describe('approval tiers', () => {
  it('auto and notify proceed (notify audits operator.notified with its rule); deny refuses as the call’s result', async (t) => {
    const ran: string[] = [];
    const reg = registry(
      {
        a: (input) =>
          input.task.turn === 1
            ? { actions: ['crm.read', 'crm.write', 'crm.delete'].map((tool) => ({ type: 'tool' as const, tool })) }
            : { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) },
      },
      { 'crm.read': () => (ran.push('read'), 'r'), 'crm.write': () => (ran.push('write'), 'w'), 'crm.delete': () => (ran.push('delete'), 'd') },
      {
        policy: policy([
          { id: 'reads', kind: 'approval', actions: ['crm.read'], tier: 'auto' },
          { id: 'writes', kind: 'approval', actions: ['crm.write'], tier: 'notify' },
          { id: 'no-deletes', kind: 'approval', actions: ['crm.delete'], tier: 'deny' },
        ]),
      },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'a');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, ['r', 'w', 'POLICY_DENIED']);
    assert.deepEqual(ran, ['read', 'write']);
    const audit = await auditOf(store, run.id);
    const notified = audit.filter((e) => e.kind === 'operator.notified');
    assert.equal(notified.length, 1);
    assert.deepEqual([(notified[0]!.data as { ruleId: string }).ruleId, (notified[0]!.data as { action: string }).action], ['writes', 'tool:crm.write']);
    const denied = audit.find((e) => e.kind === 'policy.decision' && (e.data as { effect: string }).effect === 'deny');
    assert.equal((denied?.data as { ruleId: string }).ruleId, 'no-deletes');
    assert.deepEqual(await store.approvals.list({ runId: run.id, limit: 5 }), [], 'no tier asked a human');
  });
});

describe('approve', () => {
  it('parks the task without a worker; approving runs the tool once and records who decided', async (t) => {
    const p = payments([SIGN_OFF()]);
    const { store } = await harness(t, p.reg);
    const before = Date.now();
    const run = await submit(store, p.reg, 'payer');
    const a = await pending(store, run.id);

    // What, why, which rule, who may decide, and when it expires.
    assert.deepEqual(
      { kind: a.kind, ruleId: a.ruleId, approvers: a.approvers, agent: a.agent, taskId: a.taskId, action: a.action, onExpiry: a.onExpiry },
      { kind: 'approval', ruleId: 'sign-off', approvers: 'finance', agent: 'payer', taskId: run.rootTaskId, action: { kind: 'tool', name: 'payments.send', input: { to: 'acme', amount: 120 } }, onExpiry: { action: 'deny' } },
    );
    assert.match(a.reason, /tool:payments\.send needs approval by finance/);
    assert.ok(a.requestedAt >= before);
    // Expiry is reckoned from the decision, a moment before the request is committed.
    assert.ok(a.expiresAt !== null && a.expiresAt <= a.requestedAt + HOUR && a.expiresAt > a.requestedAt + HOUR - 1_000, `${a.expiresAt} vs ${a.requestedAt}`);
    assert.equal(a.actionKey, `${run.id}/${run.rootTaskId}/1/0`);

    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.state, 'waiting');
    assert.equal(task.leaseOwner, null, 'the waiting task holds no worker');
    assert.equal(task.leaseExpiresAt, null);
    assert.deepEqual(p.ran, [], 'nothing ran before the decision');

    const decided = await store.approvals.decide(a.id, { approve: true, actor: 'alice', reason: 'invoice checked' }, Date.now());
    assert.deepEqual([decided.state, decided.decidedBy, decided.decisionReason], ['approved', 'alice', 'invoice checked']);
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { paid: 'paid' });
    assert.equal(p.ran.length, 1, 'the tool ran once');
    assert.deepEqual(p.turns, [1, 2], 'turn 1 was decided once, replayed after the approval');

    const stored = (await store.approvals.get(a.id))!;
    assert.deepEqual([stored.state, stored.decidedBy], ['approved', 'alice']);
    assert.ok(stored.decidedAt !== null && stored.decidedAt >= a.requestedAt);
    const audit = await auditOf(store, run.id);
    const requested = audit.find((e) => e.kind === 'approval.requested');
    const approved = audit.find((e) => e.kind === 'approval.approved');
    assert.equal((requested?.data as { ruleId: string }).ruleId, 'sign-off');
    assert.deepEqual([approved?.actor, (approved?.data as { ruleId: string }).ruleId], ['alice', 'sign-off']);
    await assert.rejects(store.approvals.decide(a.id, { approve: false, actor: 'bob' }, Date.now()), InvalidStateError, 'a decision is final');
  });

  it('denying hands the agent a refusal as the call’s result; the tool never runs', async (t) => {
    const p = payments([SIGN_OFF()]);
    const { store } = await harness(t, p.reg);
    const run = await submit(store, p.reg, 'payer');
    const a = await pending(store, run.id);
    await store.approvals.decide(a.id, { approve: false, actor: 'bob', reason: 'wrong vendor' }, Date.now());
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', 'the agent handled the refusal');
    assert.deepEqual(done.output, { refused: 'POLICY_DENIED' });
    assert.deepEqual(p.ran, []);
    const refusal = p.seen[1]!.results[0]!;
    // The agent is told who denied it and why, so it can act on the reason.
    assert.ok(!refusal.ok && refusal.error.message.includes('a human (bob) denied this action: wrong vendor'), JSON.stringify(refusal));
    const denied = (await auditOf(store, run.id)).find((e) => e.kind === 'approval.denied');
    assert.equal(denied?.actor, 'bob');
  });

  it('cancelling the run closes its open approval (cancelled, audited); deciding it afterwards is refused', async (t) => {
    const p = payments([SIGN_OFF()]);
    const { store } = await harness(t, p.reg);
    const run = await submit(store, p.reg, 'payer');
    const a = await pending(store, run.id);
    await store.runs.cancel(run.id, Date.now(), 'carol', 'customer withdrew');
    const closed = (await store.approvals.get(a.id))!;
    assert.deepEqual([closed.state, closed.decidedBy, closed.decisionReason], ['cancelled', 'carol', 'customer withdrew']);
    assert.deepEqual(await store.approvals.list({ runId: run.id, state: 'pending', limit: 5 }), [], 'nothing left pending');
    const audit = await auditOf(store, run.id);
    const event = audit.find((e) => e.kind === 'approval.cancelled');
    assert.deepEqual([event?.actor, (event?.data as { approval: string }).approval], ['carol', a.id]);
    await assert.rejects(
      store.approvals.decide(a.id, { approve: true, actor: 'alice' }, Date.now()),
      (err: unknown) => err instanceof InvalidStateError && err.status === 409 && err.exitCode === 3 && /already cancelled/.test(err.message),
    );
    assert.equal((await store.runs.get(run.id))!.state, 'cancelled', 'the run stays cancelled');
    assert.deepEqual(p.ran, []);
  });

  it('cancelling the waiting task alone also closes its approval', async (t) => {
    const p = payments([SIGN_OFF()]);
    const { store } = await harness(t, p.reg);
    const run = await submit(store, p.reg, 'payer');
    const a = await pending(store, run.id);
    await store.tasks.cancel(run.rootTaskId, Date.now(), 'carol');
    assert.equal((await store.approvals.get(a.id))!.state, 'cancelled');
    await assert.rejects(store.approvals.decide(a.id, { approve: false, actor: 'alice' }, Date.now()), InvalidStateError);
  });
});

describe('expiry escalates as configured', () => {
  it('deny: the expired request comes back to the agent as a refusal', async (t) => {
    const clock = new ManualClock(Date.now());
    const p = payments([SIGN_OFF({ onExpiry: { action: 'deny' } })]);
    const { store, worker } = await clocked(t, p.reg, clock);
    const { run } = await submitRun(store, p.reg, { agent: 'payer', input: null }, clock.now());
    await worker.runOnce();
    const a = await pending(store, run.id);
    clock.advance(HOUR - 1);
    assert.equal((await worker.runOnce()).expired, 0);
    assert.equal((await store.approvals.get(a.id))?.state, 'pending', 'not expired before its time');
    clock.advance(1_000);
    assert.equal((await worker.runOnce()).expired, 1);
    const done = (await store.runs.get(run.id))!;
    assert.deepEqual(done.output, { refused: 'POLICY_DENIED' });
    assert.deepEqual(p.ran, []);
    const expired = (await store.approvals.get(a.id))!;
    assert.deepEqual([expired.state, expired.decidedBy], ['expired', 'expiry']);
    const ev = (await auditOf(store, run.id)).find((e) => e.kind === 'approval.expired');
    assert.deepEqual([ev?.actor, (ev?.data as { escalation: string }).escalation, (ev?.data as { ruleId: string }).ruleId], ['reaper', 'deny', 'sign-off']);
  });

  it('reroute: a new request for the other approvers supersedes the expired one; approving it lets the task go on', async (t) => {
    const clock = new ManualClock(Date.now());
    const p = payments([SIGN_OFF({ onExpiry: { action: 'reroute', approvers: 'cfo', expiresIn: '2h' } })]);
    const { store, worker } = await clocked(t, p.reg, clock);
    const { run } = await submitRun(store, p.reg, { agent: 'payer', input: null }, clock.now());
    await worker.runOnce();
    const first = await pending(store, run.id);
    clock.advance(HOUR + 1);
    await worker.runOnce();
    assert.equal((await store.approvals.get(first.id))?.state, 'expired', 'rerouted');
    const second = await pending(store, run.id);
    assert.notEqual(second.id, first.id);
    assert.deepEqual(
      { approvers: second.approvers, supersedes: second.supersedes, kind: second.kind, ruleId: second.ruleId, actionKey: second.actionKey, expiresAt: second.expiresAt, onExpiry: second.onExpiry },
      { approvers: 'cfo', supersedes: first.id, kind: 'approval', ruleId: 'sign-off', actionKey: first.actionKey, expiresAt: clock.now() + 2 * HOUR, onExpiry: { action: 'deny' } },
    );
    assert.match(second.reason, /rerouted from finance after expiry/);
    assert.equal((await store.tasks.get(run.rootTaskId))?.state, 'waiting', 'still waiting, for the new approvers');
    await assert.rejects(store.approvals.decide(first.id, { approve: true, actor: 'late-finance' }, clock.now()), InvalidStateError, 'the superseded request cannot be decided');

    await store.approvals.decide(second.id, { approve: true, actor: 'the-cfo' }, clock.now());
    await worker.runOnce();
    const done = (await store.runs.get(run.id))!;
    assert.deepEqual(done.output, { paid: 'paid' });
    assert.equal(p.ran.length, 1);
  });

  it('notify: operators are told, the request stays open (no longer expiring) and can still be decided', async (t) => {
    const clock = new ManualClock(Date.now());
    const p = payments([SIGN_OFF({ onExpiry: { action: 'notify' } })]);
    const { store, worker } = await clocked(t, p.reg, clock);
    const { run } = await submitRun(store, p.reg, { agent: 'payer', input: null }, clock.now());
    await worker.runOnce();
    const a = await pending(store, run.id);
    clock.advance(HOUR + 1);
    await worker.runOnce();
    assert.ok((await auditOf(store, run.id)).some((e) => e.kind === 'operator.notified'), 'operators notified');
    const after = (await store.approvals.get(a.id))!;
    assert.deepEqual([after.state, after.expiresAt], ['pending', null]);
    const audit = await auditOf(store, run.id);
    assert.deepEqual((audit.find((e) => e.kind === 'approval.expired')?.data as { escalation: string }).escalation, 'notify');
    assert.equal((audit.find((e) => e.kind === 'operator.notified')?.data as { ruleId: string }).ruleId, 'sign-off');
    clock.advance(10 * HOUR);
    assert.equal(await store.approvals.expire(clock.now()), 0, 'notified once, not on every sweep');
    assert.equal((await store.tasks.get(run.rootTaskId))?.state, 'waiting');
    assert.deepEqual(p.ran, []);
    await store.approvals.decide(a.id, { approve: true, actor: 'alice' }, clock.now());
    await worker.runOnce();
    assert.deepEqual((await store.runs.get(run.id))?.output, { paid: 'paid' });
  });
});

test('a standing grant: no approval while it is active; needed again after it is revoked', async (t) => {
  const p = payments([SIGN_OFF()]);
  const { store } = await harness(t, p.reg);
  const g = await store.grants.grant({ agent: 'payer', action: 'tool:payments.*', durationMs: 7 * 24 * HOUR, actor: 'alice', reason: 'quarter close' }, Date.now());
  assert.equal(g.grantedBy, 'alice');
  // A grant for another agent or another action does not count.
  await store.grants.grant({ agent: 'someone-else', action: 'tool:payments.*', durationMs: HOUR, actor: 'alice' }, Date.now());
  assert.equal(await storeFacts(store).standingGrant('payer', 'tool:refunds.send', Date.now()), false);
  assert.equal(await storeFacts(store).standingGrant('payer', 'tool:payments.send', g.expiresAt + 1), false, 'it lapses');

  const granted = await submit(store, p.reg, 'payer');
  const done = await finished(store, granted.id);
  assert.deepEqual(done.output, { paid: 'paid' });
  assert.deepEqual(await store.approvals.list({ runId: granted.id, limit: 5 }), [], 'no approval was requested');
  const decision = (await auditOf(store, granted.id)).find((e) => e.kind === 'policy.decision');
  assert.deepEqual((decision?.data as { rules: Json[] }).rules, [
    { ruleId: 'grants', outcome: 'pass' },
    { ruleId: 'sign-off', outcome: 'granted' },
  ]);

  await store.grants.revoke(g.id, 'bob', Date.now());
  assert.deepEqual(
    (await store.grants.list({ activeAt: Date.now() })).map((x) => x.agent),
    ['someone-else'],
  );
  const after = await submit(store, p.reg, 'payer');
  await pending(store, after.id);
  assert.equal((await store.tasks.get(after.rootTaskId))?.state, 'waiting');
  assert.equal(p.ran.length, 1, 'only the granted run paid');
  await assert.rejects(store.grants.revoke(g.id, 'bob', Date.now()), /not found/, 'revoked once');
});

test('a task waiting for approval survives a SIGKILL of its worker process and continues after the decision', { timeout: 120_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const config = writeProject(dir, { policy: { rules: [SIGN_OFF({ expiresIn: '2h' })] } });
  const workers: WorkerProcess[] = [];
  t.after(async () => {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    await cleanup();
  });
  const { run } = await store.runs.create({ agent: 'payer', input: { to: 'acme', amount: 7 }, maxAttempts: 2, actor: 'test' }, Date.now());

  // Readiness is awaited (its start line), never raced against a fixed timeout: on a loaded machine a start takes seconds.
  const first = startWorkerProcess(dir, ['--config', config, '--db', url]);
  workers.push(first);
  await first.ready;
  const a = await pending(store, run.id, 60_000);
  const parked = (await store.tasks.get(run.rootTaskId))!;
  assert.deepEqual([parked.state, parked.leaseOwner], ['waiting', null], 'parked without a worker');
  assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
  assert.deepEqual(readPayments(dir), []);

  // Decided through the CLI while no worker runs at all.
  const approve = await spine(dir, ['approvals', 'approve', a.id, '--reason', 'ok after crash', '--as', 'carol', '--db', url, '--config', config]);
  assert.equal(approve.code, 0, approve.stderr);
  assert.match(approve.stdout, new RegExp(`${a.id} approved by carol`));
  assert.equal((await store.tasks.get(run.rootTaskId))?.state, 'queued', 'the decision queued the task durably');

  const second = startWorkerProcess(dir, ['--config', config, '--db', url]);
  workers.push(second);
  await second.ready;
  const done = await finished(store, run.id, 60_000);
  assert.equal(done.state, 'succeeded', `${JSON.stringify(done.error)}\n${second.output()}`);
  assert.deepEqual(done.output, { paid: { ok: true, amount: 7 } });
  assert.equal(readPayments(dir).length, 1, 'paid exactly once');
  const decided = (await store.approvals.get(a.id))!;
  assert.deepEqual([decided.state, decided.decidedBy, decided.decisionReason], ['approved', 'carol', 'ok after crash']);
});
