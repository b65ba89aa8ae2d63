// The stuck-work sweep (docs/health.md), on the store the suite runs on: forged expired
// leases, overdue turns and joins, and runs past their SLA, with the ManualClock; one
// `stuck.<kind>` event per finding however often the sweep runs, and each action's
// effect (report, escalate: an operator's approval, cancel: the normal cancel path).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/issues.ts';
import { Worker } from '../../src/engine/worker.ts';
import type { Registry } from '../../src/engine/options.ts';
import type { Store } from '../../src/store/store.ts';
import { compileStuck, stuckSchema, sweepStuck, type StuckConfig } from '../../src/validation/stuck.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import { forge, registry, tempStore } from '../helpers.ts';

const START = Date.UTC(2026, 0, 1);

function settings(cfg: StuckConfig) {
  const issues: FieldIssue[] = [];
  const s = compileStuck(stuckSchema.parse(cfg), issues);
  assert.deepEqual(issues, []);
  return s!;
}

async function stuckEvents(store: Store) {
  return (await store.audit.list({ limit: 10_000 })).filter((e) => e.kind.startsWith('stuck.'));
}

async function setup(t: { after: (fn: () => Promise<void>) => void }, reg: Registry) {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const clock = new ManualClock(START);
  const submit = async () => (await submitRun(store, reg, { agent: 'a', input: null, actor: 'test' }, clock.now())).run;
  return { store, clock, submit };
}

const timeouts = { turnTimeoutMs: () => 10_000 };

describe('stuck-work sweep', () => {
  it('an expired lease: one stuck.lease-expired event from the worker\'s reaper tick, before the reaper takes the task back', async (t) => {
    const reg: Registry = { ...registry({ a: () => ({ output: 'done' }) }), stuck: settings({}) };
    const { store, clock, submit } = await setup(t, reg);
    const run = await submit();
    await forge(store, `UPDATE tasks SET state = 'running', lease_owner = 'wrk_ghost', lease_expires_at = ? WHERE id = ?`, [clock.now() - 5_000, run.rootTaskId]);
    const worker = new Worker({ store, registry: reg, clock });
    await worker.runOnce();
    const events = await stuckEvents(store);
    assert.deepEqual(
      events.map((e) => [e.kind, e.taskId, (e.data as { action: string }).action]),
      [['stuck.lease-expired', run.rootTaskId, 'report']],
    );
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded', 'report changes nothing: the reaper reclaimed it and it ran');
    clock.advance(60_000);
    await worker.runOnce();
    assert.equal((await stuckEvents(store)).length, 1);
    const [f] = await store.stuck.list(10);
    assert.equal(f?.kind, 'lease-expired');
  });

  it('a turn past its timeout, report: one event however many sweeps see it', async (t) => {
    const { store, clock, submit } = await setup(t, registry({ a: () => ({ output: 'x' }) }));
    const run = await submit();
    await forge(store, `UPDATE tasks SET state = 'running', lease_owner = 'wrk_slow', lease_expires_at = ?, updated_at = ? WHERE id = ?`, [clock.now() + 3_600_000, clock.now(), run.rootTaskId]);
    const s = settings({ overTimeout: 'report' });
    clock.advance(30_000); // within timeout + slack: nothing
    assert.deepEqual((await sweepStuck(store, s, timeouts, clock.now(), 'wrk_test')).raised, []);
    clock.advance(20_000);
    for (let i = 0; i < 3; i++) {
      await sweepStuck(store, s, timeouts, clock.now(), 'wrk_test');
      clock.advance(5_000);
    }
    const events = await stuckEvents(store);
    assert.deepEqual(events.map((e) => e.kind), ['stuck.turn-overdue']);
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'running', 'report only');
  });

  it('an overdue join, escalate: an approval for an operator, whose decision wakes nothing', async (t) => {
    const { store, clock, submit } = await setup(t, registry({ a: () => ({ output: 'x' }) }));
    const run = await submit();
    await forge(store, `UPDATE tasks SET state = 'waiting', waiting_on = 0, join_deadline_at = ? WHERE id = ?`, [clock.now() - 1_000, run.rootTaskId]);
    const s = settings({ joinOverdue: 'escalate', approvers: 'oncall' });
    await sweepStuck(store, s, timeouts, clock.now(), 'wrk_test');
    await sweepStuck(store, s, timeouts, clock.now() + 1_000, 'wrk_test');
    assert.deepEqual((await stuckEvents(store)).map((e) => e.kind), ['stuck.join-overdue']);
    const approvals = await store.approvals.list({ state: 'pending', limit: 10 });
    assert.equal(approvals.length, 1);
    const [a] = approvals;
    assert.equal(a!.ruleId, 'stuck:join-overdue');
    assert.equal(a!.approvers, 'oncall');
    assert.equal(a!.taskId, run.rootTaskId);
    assert.equal((await store.stuck.list(10))[0]?.approvalId, a!.id);
    await store.approvals.decide(a!.id, { approve: true, actor: 'op', reason: 'looking' }, clock.now());
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'waiting', 'acknowledging the finding does not wake the task');
  });

  it('a run past its SLA, cancel: the run is cancelled through the normal path, once', async (t) => {
    const { store, clock, submit } = await setup(t, registry({ a: () => ({ output: 'x' }) }));
    const run = await submit();
    const other = await submit();
    await forge(store, `UPDATE runs SET state = 'running' WHERE id IN (?, ?)`, [run.id, other.id]);
    await forge(store, `UPDATE runs SET created_at = ? WHERE id = ?`, [clock.now() + 3_000_000, other.id]);
    const s = settings({ runSla: { after: '1h', action: 'cancel' } });
    clock.advance(3_600_001);
    const { raised } = await sweepStuck(store, s, timeouts, clock.now(), 'wrk_test');
    assert.deepEqual(raised.map((f) => [f.kind, f.id, f.action]), [['run-over-sla', run.id, 'cancel']]);
    assert.equal((await store.runs.get(run.id))!.state, 'cancelled');
    assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'cancelled');
    assert.notEqual((await store.runs.get(other.id))!.state, 'cancelled', 'the younger run is within its SLA');
    await sweepStuck(store, s, timeouts, clock.now() + 1_000, 'wrk_test');
    assert.deepEqual((await stuckEvents(store)).map((e) => [e.kind, e.runId]), [['stuck.run-over-sla', run.id]]);
  });

  it('bad config names the field', () => {
    const issues: FieldIssue[] = [];
    compileStuck(stuckSchema.parse({ runSla: { after: 'soon' } }), issues);
    assert.deepEqual(issues.map((i) => i.path), ['health.stuck.runSla.after']);
    assert.throws(() => stuckSchema.parse({ overTimeout: 'panic' }));
  });
});
