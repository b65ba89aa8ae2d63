// Heartbeat schedules on both backends, driven by a ManualClock (no sleeps): idle fires
// take no turn and are counted; activity in a watched scope takes exactly one; the
// heartbeat's own writes are not activity; no-op and identical-output streaks pause it
// until resumed; its maxCostUsd stops its turns (and only its); runs carry their origin,
// and memory.durableWritesFrom refuses their durable writes.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { FunctionAgent } from '../../src/agents/function-agent.ts';
import type { AgentFunction } from '../../src/core/agent.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import type { Action, Json, TurnInput } from '../../src/core/types.ts';
import { createRegistry } from '../../src/engine/registry.ts';
import { Worker } from '../../src/engine/worker.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileSchedules, type SchedulesConfig } from '../../src/intake/schedules/config.ts';
import { Scheduler } from '../../src/intake/schedules/scheduler.ts';
import { ALL_DURABLE_WRITES, DEFAULT_MEMORY, type DurableWritesFrom } from '../../src/memory/settings.ts';
import { EMPTY_POLICY, compilePolicy, heartbeatCeiling, policySchema, withCeilings } from '../../src/policy/rules.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import type { AuditEvent, Store } from '../../src/store/store.ts';
import { FAST_WORKER, forge, tempStore } from '../helpers.ts';

const M = 60_000;
/** Monday 2026-01-05 08:10 UTC: the next `every: '30m'` fire is 08:30. */
const T0 = Date.UTC(2026, 0, 5, 8, 10);
const BY = { agent: 'someone', run: null, task: null, turn: null, actor: 'test' };

interface World {
  store: Store;
  clock: ManualClock;
  scheduler: Scheduler;
  worker: Worker;
  calls: TurnInput[];
  /** Submits work to the commander through intake, as any channel would (no schedule origin). */
  send(text: string): Promise<string>;
  /** Moves to the next fire (every 30 min), ticks the scheduler and runs what it made. */
  beat(): Promise<Awaited<ReturnType<Scheduler['tick']>>>;
  audit(kind: string): Promise<AuditEvent[]>;
}

async function world(t: TestContext, raw: SchedulesConfig, agent: AgentFunction, opts: { cost?: { micros: number; tokens: number }; durableWritesFrom?: DurableWritesFrom; rules?: Json[] } = {}): Promise<World> {
  const { store, cleanup } = await tempStore();
  const clock = new ManualClock(T0);
  const calls: TurnInput[] = [];
  const issues: FieldIssue[] = [];
  const schedules = compileSchedules(raw, issues, ['commander']);
  assert.deepEqual(issues, []);
  const ceilings = schedules.flatMap((s) => (s.heartbeat?.maxCostUsd == null ? [] : [heartbeatCeiling(s.id, s.heartbeat.maxCostUsd)]));
  const registry = createRegistry({
    agents: {
      commander: {
        agent: new FunctionAgent((input, ctx) => (calls.push(input), agent(input, ctx))),
        timeoutMs: 5_000,
        retry: { maxAttempts: 1 },
        grants: { tools: { allow: ['*'], deny: [] }, handoffs: null, memory: { read: ['*'], write: ['*'] } },
        ...(opts.cost ? { cost: opts.cost } : {}),
      },
    },
    tools: { 'accounts.list': { run: () => ['acme'], sideEffect: 'read' } },
    policy: withCeilings(opts.rules ? compilePolicy(policySchema.parse({ rules: opts.rules }), issues) : EMPTY_POLICY, ceilings),
    memory: { ...DEFAULT_MEMORY, durableWritesFrom: opts.durableWritesFrom ?? ALL_DURABLE_WRITES },
  });
  const intake = new Intake(store, registry, { bindings: [], sessions: compileSessions(undefined, issues) }, clock);
  const scheduler = new Scheduler({ store, intake, schedules, clock });
  const worker = new Worker({ store, registry, clock, options: FAST_WORKER });
  t.after(async () => {
    await scheduler.stop();
    await worker.stop();
    await cleanup();
  });
  await scheduler.sync();
  return {
    store,
    clock,
    scheduler,
    worker,
    calls,
    async send(text) {
      const e = { channel: 'api', account: 'default', peer: { kind: 'dm' as const, id: 'me' }, parentPeer: null, sender: null, thread: null, text, data: null, idempotencyKey: `k-${text}`, replyTo: null };
      const r = await intake.accept(e, { actor: 'test', agent: 'commander' });
      await worker.runOnce();
      return r.run!.id;
    },
    async beat() {
      clock.set((Math.floor(clock.now() / (30 * M)) + 1) * 30 * M);
      const report = await scheduler.tick();
      await worker.runOnce();
      return report;
    },
    audit: async (kind) => (await store.audit.list({ limit: 10_000 })).filter((e) => e.kind === kind),
  };
}

const output = (text: string) => () => ({ output: text });

describe('heartbeats', () => {
  it('a heartbeat over an idle scope takes no turn; a new fact in it takes exactly one; its own writes are not activity', async (t) => {
    const w = await world(t, { watch: { every: '30m', agent: 'commander', heartbeat: { watch: ['team/accounts/*'] } } }, (input: TurnInput) =>
      input.task.turn === 1 ? { actions: [{ type: 'remember', scope: 'team/accounts/acme', key: 'checked', value: input.task.turn }] } : { output: 'looked' },
    );
    for (let i = 0; i < 4; i++) {
      const r = await w.beat();
      assert.deepEqual(r.fired, []);
      assert.deepEqual(r.idle.map((x) => x.reason), ['idle']);
    }
    assert.equal(w.calls.length, 0, 'no turn taken');
    assert.deepEqual(await w.store.runs.list({ limit: 10 }), [], 'no run created');
    const skipped = await w.audit('heartbeat.skipped');
    assert.equal(skipped.length, 4);
    assert.ok(skipped.every((e) => (e.data as { reason: string }).reason === 'idle'));
    const row = (await w.store.schedules.get('watch'))!;
    assert.equal(row.heartbeat.skipped, 4);
    assert.equal(row.heartbeat.skippedAt, w.clock.now());
    assert.equal(row.fires, 0);

    // A fact outside the watched scopes is not activity; one inside is.
    await w.store.memory.write({ tenant: 'default', scope: 'team/sales', key: 'x', value: 1, trust: 'owner', writtenBy: BY, onConflict: 'last-writer-wins' }, w.clock.now());
    assert.deepEqual((await w.beat()).fired, []);
    await w.store.memory.write({ tenant: 'default', scope: 'team/accounts/acme', key: 'status', value: 'late payment', trust: 'owner', writtenBy: BY, onConflict: 'last-writer-wins' }, w.clock.now());
    const fired = await w.beat();
    assert.equal(fired.fired.length, 1);
    assert.equal(w.calls.length, 2, 'exactly one run: a turn that remembers, then one that answers');
    const runs = await w.store.runs.list({ limit: 10 });
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.state, 'succeeded');
    const [{ origin }] = (await forge<{ origin: string }>(w.store, 'SELECT origin FROM runs WHERE id = ?', [runs[0]!.id])).rows as [{ origin: string }];
    assert.equal(origin, 'heartbeat:watch');

    // The run wrote into the watched scope itself: that is not new activity (no heartbeat loop).
    assert.deepEqual((await w.beat()).fired, []);
    assert.equal(w.calls.length, 2);
    assert.equal((await w.store.schedules.get('watch'))!.heartbeat.skipped, 6);
  });

  it('watches runs of an agent and envelopes on a channel, not its own', async (t) => {
    const w = await world(t, { watch: { every: '30m', agent: 'commander', heartbeat: { watch: ['agent:commander', 'channel:cron'] } } }, output('ok'));
    assert.deepEqual((await w.beat()).fired, []);
    await w.send('from a person');
    assert.equal((await w.beat()).fired.length, 1, 'a run of the watched agent is activity');
    assert.deepEqual((await w.beat()).fired, [], 'its own run and its own cron envelope are not');
  });

  it('pauses after N no-op runs in a row (HEARTBEAT_OK counts), stays paused, and resumes by hand (audited)', async (t) => {
    let n = 0;
    const w = await world(t, { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, pauseAfterNoops: 3 } } }, (input: TurnInput) =>
      // A tool call each time (an effect), but the answer says there was nothing to do.
      input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'accounts.list' } as Action] } : { output: n++ === 0 ? 'HEARTBEAT_OK' : { text: 'HEARTBEAT_OK', n } },
    );
    for (let i = 0; i < 3; i++) assert.equal((await w.beat()).fired.length, 1);
    assert.equal(w.calls.length, 6);
    const pausing = await w.beat();
    assert.deepEqual(pausing.fired, []);
    assert.deepEqual(pausing.paused.map((p) => p.schedule), ['hb']);
    assert.match(pausing.paused[0]!.reason, /3 no-op runs in a row \(pauseAfterNoops 3\)/);
    const paused = await w.audit('heartbeat.paused');
    assert.equal(paused.length, 1);
    assert.match((paused[0]!.data as { reason: string }).reason, /no-op/);
    assert.ok((await w.store.schedules.get('hb'))!.heartbeat.paused);

    for (let i = 0; i < 3; i++) assert.deepEqual((await w.beat()).fired, [], 'a paused heartbeat makes nothing');
    assert.equal(w.calls.length, 6);
    assert.equal((await w.audit('heartbeat.paused')).length, 1, 'and records nothing while paused');

    await w.scheduler.resume('hb', 'cli:ops');
    const resumed = await w.audit('heartbeat.resumed');
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]!.actor, 'cli:ops');
    const row = (await w.store.schedules.get('hb'))!;
    assert.equal(row.heartbeat.paused, null);
    assert.equal(row.heartbeat.noops, 0);
    assert.equal((await w.beat()).fired.length, 1);
    assert.equal(w.calls.length, 8);
    await assert.rejects(w.scheduler.resume('hb', 'cli:ops'), { code: 'INVALID_STATE' });
    await assert.rejects(w.scheduler.resume('nope', 'cli:ops'), { code: 'NOT_FOUND' });
  });

  it('a run with an effect and a real answer is not a no-op; N identical outputs in a row pause it', async (t) => {
    let mode: 'same' | 'varied' = 'varied';
    let n = 0;
    const w = await world(t, { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, pauseAfterNoops: 2, pauseAfterIdenticalOutputs: 3 } } }, (input: TurnInput) =>
      input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'accounts.list' } as Action] } : { output: mode === 'same' ? 'acme is fine' : `report ${n++}` },
    );
    for (let i = 0; i < 4; i++) assert.equal((await w.beat()).fired.length, 1, 'varied reports with effects never pause');
    mode = 'same';
    for (let i = 0; i < 3; i++) assert.equal((await w.beat()).fired.length, 1);
    const pausing = await w.beat();
    assert.deepEqual(pausing.fired, []);
    assert.match(pausing.paused[0]?.reason ?? '', /3 identical outputs in a row \(pauseAfterIdenticalOutputs 3\)/);
    assert.equal(w.calls.length, 14);
    const judged = await w.audit('heartbeat.judged');
    assert.equal(judged.length, 7);
    assert.ok(judged.every((e) => (e.data as { noop: boolean }).noop === false));
  });

  it('a plain turn with no action at all is a no-op', async (t) => {
    let n = 0;
    const w = await world(t, { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, pauseAfterNoops: 2 } } }, () => ({ output: `nothing new ${n++}` }));
    assert.equal((await w.beat()).fired.length, 1);
    assert.equal((await w.beat()).fired.length, 1);
    assert.equal((await w.beat()).paused.length, 1);
    assert.equal(w.calls.length, 2);
  });

  it('maxCostUsd stops a heartbeat turn whose estimate does not fit, without paging anyone; other runs of the agent are not bound by it', async (t) => {
    const w = await world(t, { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, maxCostUsd: 0.05 } } }, output('done'), { cost: { micros: 100_000, tokens: 0 } });
    assert.equal((await w.beat()).fired.length, 1);
    assert.equal(w.calls.length, 0, 'the turn was refused before the agent was called');
    const [run] = await w.store.runs.list({ limit: 10 });
    assert.equal(run!.state, 'failed');
    assert.equal(run!.error?.code, 'BUDGET_EXCEEDED');
    assert.match(run!.error?.message ?? '', /heartbeat:hb.*the turn is stopped/);
    assert.deepEqual(await w.store.approvals.list({ limit: 10 }), [], 'no escalation: a heartbeat pages nobody');
    const other = await w.send('by hand');
    assert.equal((await w.store.runs.get(other))!.state, 'succeeded', 'the same agent outside the heartbeat is not bound by it');
    const reached = await w.audit('cost.ceiling-reached');
    assert.equal((reached[0]!.data as { ruleId: string }).ruleId, 'heartbeat:hb');
  });

  it('maxCostUsd counts what its turns reported: the turn after the spend passed it is stopped; the spend counts on other ceilings too', async (t) => {
    const w = await world(
      t,
      { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false, maxCostUsd: 0.05 } } },
      () => ({ actions: [{ type: 'tool', tool: 'accounts.list' } as Action], usage: { costUsd: 0.03 } }),
      { rules: [{ id: 'daily', kind: 'cost', scope: 'agent', maxUsd: 10 }] },
    );
    await w.beat();
    assert.equal(w.calls.length, 2, 'turn 1 ($0.03) and turn 2 ($0.06 spent) ran; turn 3 did not');
    const [run] = await w.store.runs.list({ limit: 10 });
    assert.equal(run!.state, 'failed');
    assert.equal(run!.error?.code, 'BUDGET_EXCEEDED');
    const budgets = (await forge<{ key: string; spent_micros: number | string }>(w.store, 'SELECT key, spent_micros FROM budgets ORDER BY key')).rows;
    assert.deepEqual(
      budgets.map((b) => [b.key.replace(/:\d{4}-\d{2}-\d{2}$/, ''), Number(b.spent_micros)]),
      [
        ['cost:daily:agent:commander', 60_000],
        [`cost:heartbeat:hb:run:${run!.id}`, 60_000],
      ],
      'the agent\'s daily ceiling counted the heartbeat spend too',
    );
  });
});

describe('memory.durableWritesFrom', () => {
  const writes = (input: TurnInput) =>
    input.task.turn === 1
      ? {
          actions: [
            { type: 'remember', scope: 'team/accounts', key: 'status', value: 'ok' },
            { type: 'remember', scope: 'run/self', key: 'scratch', value: 'ok' },
          ] as Action[],
        }
      : { output: input.results.map((r) => (r.ok ? 'ok' : r.error.code)) };

  it('heartbeat: false refuses a heartbeat run durable writes (POLICY_DENIED, audited, nothing written); run scope stays writable', async (t) => {
    const w = await world(t, { hb: { every: '30m', agent: 'commander', heartbeat: { skipIfIdle: false } } }, writes, { durableWritesFrom: { schedule: true, heartbeat: false } });
    await w.beat();
    const [run] = await w.store.runs.list({ limit: 10 });
    assert.deepEqual(run!.output, ['POLICY_DENIED', 'ok'], 'the agent sees the refusal as the write’s result');
    const second = w.calls[1]!.results[0]!;
    assert.ok(!second.ok && /memory\.durableWritesFrom\.heartbeat is false/.test(second.error.message));
    assert.equal(await w.store.memory.get({ tenant: 'default', grants: [{ all: true }], scope: 'team/accounts', key: 'status' }, w.clock.now()), null);
    assert.ok(await w.store.memory.get({ tenant: 'default', grants: [{ all: true }], scope: `run/${run!.id}`, key: 'scratch' }, w.clock.now()));
    const denied = (await w.audit('policy.decision')).filter((e) => (e.data as { effect: string }).effect === 'deny');
    assert.deepEqual(denied.map((e) => (e.data as { ruleId: string }).ruleId), ['memory.durableWritesFrom']);
  });

  it('schedule: false covers plain schedules and heartbeats; runs from other doors still write', async (t) => {
    const w = await world(t, { plain: { every: '30m', agent: 'commander' } }, writes, { durableWritesFrom: { schedule: false, heartbeat: true } });
    await w.beat();
    const [run] = await w.store.runs.list({ limit: 10 });
    assert.deepEqual(run!.output, ['POLICY_DENIED', 'ok']);
    const [{ origin }] = (await forge<{ origin: string }>(w.store, 'SELECT origin FROM runs WHERE id = ?', [run!.id])).rows as [{ origin: string }];
    assert.equal(origin, 'schedule:plain');
    const other = await w.send('by hand');
    assert.deepEqual((await w.store.runs.get(other))!.output, ['ok', 'ok']);
  });
});
