/**
 * Fault injection: a real worker process is killed (SIGKILL, from inside, via
 * SPINE_FAULTS) at each named point between "effect done" and "commit", then
 * restarted without faults. The run must finish, and the tool must have run exactly
 * as often as each window allows: never twice once its result is recorded, and a
 * repeat (with maybeRepeated and the same idempotency key) only when the process
 * died between running the tool and recording its result.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { faultPoint, faultsArmed, type FaultPoint } from '../../src/core/faults.ts';
import type { Run, Task } from '../../src/core/types.ts';
import { waitForRun } from '../../src/engine/runs.ts';
import type { Worker } from '../../src/engine/worker.ts';
import { effectKey, type AuditEvent, type EffectRecord, type Store } from '../../src/store/store.ts';
import { finished, startWorker, tempStore } from '../helpers.ts';
import { Children } from '../fixtures/child.ts';
import { readAgentCalls, readApplied, readInvocations, singleRegistry, type AgentCall, type Invocation } from '../fixtures/scenarios.ts';

const WORKER = { scenario: 'single', leaseMs: 1_000, heartbeatMs: 200 } as const;

interface Snapshot {
  run: Run;
  task: Task;
  effects: EffectRecord[];
  invocations: Invocation[];
  applied: string[];
  calls: AgentCall[];
}

interface CrashOutcome {
  /** What the store and the tool's files held right after the faulted process died. */
  atCrash: Snapshot;
  /** The same once a fault-free worker finished the run. */
  after: Snapshot;
  audit: AuditEvent[];
  /** The idempotency key of the run's one effect. */
  key: string;
  deadWorker: string;
}

async function snapshot(store: Store, runId: string, data: string): Promise<Snapshot> {
  const run = (await store.runs.get(runId))!;
  return {
    run,
    task: (await store.tasks.get(run.rootTaskId))!,
    effects: await store.tasks.effects({ runId }),
    invocations: readInvocations(data),
    applied: readApplied(data),
    calls: readAgentCalls(data),
  };
}

/** Runs one `counter` run in a worker process armed with `faults`, then finishes it in a clean one. */
async function crashAt(t: TestContext, faults: string, opts: { restart?: boolean } = {}): Promise<CrashOutcome> {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });
  const { run } = await store.runs.create({ agent: 'counter', input: null, maxAttempts: 3, actor: 'test' }, Date.now());

  const faulted = children.spawn({ db: url, dir: data, ...WORKER, faults });
  const exit = await Promise.race([faulted.exited, sleep(60_000, null, { ref: false })]);
  assert.ok(exit, `the fault ${faults} never fired; stderr:\n${faulted.stderr()}`);
  assert.equal(exit.signal, 'SIGKILL', `the process must die by SIGKILL (code ${exit.code}); stderr:\n${faulted.stderr()}`);
  const point = faults.split('@')[0]!;
  assert.match(faulted.stderr(), new RegExp(`fault injection: SIGKILL at ${point}`));
  const deadWorker = await faulted.ready;
  const atCrash = await snapshot(store, run.id, data);

  if (opts.restart !== false) {
    const clean = children.spawn({ db: url, dir: data, ...WORKER });
    const done = await waitForRun(store, run.id, { pollMs: 20, timeoutMs: 20_000 });
    assert.equal(done.state, 'succeeded', `run after restart: ${JSON.stringify(done.error)}; stderr:\n${clean.stderr()}`);
    await children.kill(clean);
  }
  const after = await snapshot(store, run.id, data);
  const audit = await store.audit.list({ runId: run.id, limit: 10_000 });
  return { atCrash, after, audit, key: effectKey(run.id, run.rootTaskId, 1, 0), deadWorker };
}

const kinds = (audit: AuditEvent[]) => audit.map((a) => a.kind);
const turnCalls = (calls: AgentCall[], turn: number) => calls.filter((c) => c.turn === turn).length;

function assertSucceeded(o: CrashOutcome): void {
  assert.equal(o.after.run.state, 'succeeded');
  assert.deepEqual(o.after.run.output, { counted: { receipt: 'rcpt:once' } });
  assert.equal(o.after.task.state, 'succeeded');
  assert.equal(o.after.task.attempt, 0, 'a crash is not a failed attempt');
  assert.equal(o.after.effects.length, 1, 'one ledger row');
  assert.equal(o.after.effects[0]!.key, o.key);
  assert.equal(o.after.effects[0]!.state, 'completed');
  assert.deepEqual(o.after.applied, [o.key], 'the external system applied the effect exactly once');
  assert.ok(
    o.after.invocations.every((i) => i.key === o.key),
    'every invocation carried the same idempotency key',
  );
}

/** The dead worker's lease expired and a later worker took the task over. */
function assertReclaimed(o: CrashOutcome): void {
  const reclaimed = o.audit.filter((a) => a.kind === 'task.reclaimed');
  assert.equal(reclaimed.length, 1);
  assert.equal(o.after.task.reclaims, 1);
  assert.equal(o.atCrash.task.leaseOwner, o.deadWorker, 'at the crash the task was still leased to the dead worker');
}

test('with SPINE_FAULTS unset the fault points are inert', async (t) => {
  assert.equal(process.env.SPINE_FAULTS, undefined, 'run this suite without SPINE_FAULTS');
  assert.equal(faultsArmed, false);
  const points: FaultPoint[] = ['after-claim', 'after-decision-before-effect', 'after-effect-before-record', 'after-effect-before-commit', 'after-commit'];
  for (const p of points) faultPoint(p); // still alive
  const { store, dir, cleanup } = await tempStore();
  let worker: Worker | null = null;
  t.after(async () => {
    await worker?.stop();
    await cleanup();
  });
  worker = await startWorker(store, singleRegistry(dir));
  const { run } = await store.runs.create({ agent: 'counter', input: null, maxAttempts: 3 }, Date.now());
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.output, { counted: { receipt: 'rcpt:once' } });
  assert.equal(readInvocations(dir).length, 1);
});

test('after-claim: the leased task is reclaimed after the crash and runs once', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-claim');
  assert.equal(o.atCrash.task.state, 'running');
  assert.equal(o.atCrash.calls.length, 0, 'the agent was not called before the crash');
  assert.equal(o.atCrash.effects.length, 0);
  assertSucceeded(o);
  assertReclaimed(o);
  assert.equal(o.after.invocations.length, 1);
  assert.equal(o.after.invocations[0]!.maybeRepeated, false);
  assert.equal(o.after.effects[0]!.attempts, 1);
});

test('after-decision-before-effect: the recorded decision is replayed and the tool runs once, not flagged', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-decision-before-effect');
  // At the crash: the decision is durable; the effect was never begun, so the ledger has no row.
  assert.equal(o.atCrash.invocations.length, 0);
  assert.equal(o.atCrash.effects.length, 0, 'an effect is recorded only when it begins');
  assert.equal(o.atCrash.task.turns, 0);

  assertSucceeded(o);
  assertReclaimed(o);
  assert.equal(o.after.invocations.length, 1, 'the tool ran exactly once');
  assert.equal(o.after.invocations[0]!.maybeRepeated, false, 'the ledger knows it never began');
  assert.equal(o.after.effects[0]!.attempts, 1);
  assert.equal(turnCalls(o.after.calls, 1), 1, 'the decided turn was not asked of the agent again');
  assert.equal(turnCalls(o.after.calls, 2), 1);
  assert.ok(kinds(o.audit).includes('turn.resumed'));
  assert.ok(!kinds(o.audit).includes('effect.restarted'));
});

test('after-effect-before-record: the tool runs again under the same key (the at-least-once window)', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-effect-before-record');
  // At the crash: the tool ran and the external system applied it, but the ledger still says `started`.
  assert.equal(o.atCrash.invocations.length, 1);
  assert.equal(o.atCrash.invocations[0]!.maybeRepeated, false);
  assert.deepEqual(o.atCrash.applied, [o.key]);
  assert.equal(o.atCrash.effects[0]!.state, 'started');

  assertSucceeded(o);
  assertReclaimed(o);
  assert.equal(o.after.invocations.length, 2, 'the one window where a tool may run twice');
  assert.deepEqual(
    o.after.invocations.map((i) => [i.key, i.maybeRepeated]),
    [
      [o.key, false],
      [o.key, true],
    ],
  );
  assert.equal(o.after.effects[0]!.attempts, 2);
  assert.equal(turnCalls(o.after.calls, 1), 1, 'the decided turn was not asked of the agent again');
  assert.ok(kinds(o.audit).includes('turn.resumed'));
  assert.ok(kinds(o.audit).includes('effect.restarted'));
});

test('after-effect-before-commit: the recorded effect is replayed from the ledger, never re-executed', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-effect-before-commit');
  assert.equal(o.atCrash.invocations.length, 1);
  assert.equal(o.atCrash.effects[0]!.state, 'completed');
  assert.equal(o.atCrash.task.turns, 0, 'the turn itself was not committed');

  assertSucceeded(o);
  assertReclaimed(o);
  assert.equal(o.after.invocations.length, 1, 'the tool ran exactly once');
  assert.equal(o.after.effects[0]!.attempts, 1);
  assert.equal(turnCalls(o.after.calls, 1), 1, 'the decided turn was not asked of the agent again');
  const k = kinds(o.audit);
  assert.ok(k.includes('turn.resumed'), 'turn.resumed audited');
  assert.ok(k.includes('effect.replayed'), 'effect.replayed audited');
  assert.ok(!k.includes('effect.restarted'));
});

test('after-commit: the committed turn is kept; the run completes with no duplicate effect', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-commit');
  // The first commit is turn 1 (its tool result); the process died right after it.
  assert.equal(o.atCrash.task.turns, 1);
  assert.equal(o.atCrash.run.state, 'running');
  assert.equal(o.atCrash.effects[0]!.state, 'completed');

  assertSucceeded(o);
  assertReclaimed(o);
  assert.equal(o.after.invocations.length, 1);
  assert.equal(o.after.effects[0]!.attempts, 1);
  assert.equal(turnCalls(o.after.calls, 1), 1, 'turn 1 is committed history, not asked again');
  assert.equal(turnCalls(o.after.calls, 2), 1);
  const k = kinds(o.audit);
  assert.ok(!k.includes('turn.resumed'), 'nothing was left open to resume');
  assert.ok(!k.includes('effect.restarted') && !k.includes('effect.replayed'));
});

test('after-commit@2: a crash right after the final commit loses nothing', { timeout: 60_000 }, async (t) => {
  const o = await crashAt(t, 'after-commit@2', { restart: false });
  assert.equal(o.atCrash.run.state, 'succeeded', 'the final commit was durable before the crash');
  assertSucceeded(o);
  assert.equal(o.after.invocations.length, 1);
  assert.equal(o.after.effects[0]!.attempts, 1);
});
