/**
 * Crash-resume: a real worker process is SIGKILLed at random moments while it works
 * through 200 fan-out runs, restarted each time, then left to finish. Nothing may be
 * lost and every effect must be applied exactly once by the (idempotent) external
 * system; raw re-invocations may only happen where the ledger knows the effect was
 * started again; and the audit trail written through the kills verifies clean.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAudit } from '../../src/audit/verify.ts';
import { effectKey, type Store } from '../../src/store/store.ts';
import { Children } from '../fixtures/child.ts';
import { SPECIALISTS, readApplied, readInvocations, type Invocation } from '../fixtures/scenarios.ts';
import { tempStore } from '../helpers.ts';

const RUNS = 200;
/** Enough kills to spread them over the whole workload (~2.5 s of work at concurrency 4). */
const KILLS = 12;
/** Short leases so a restarted worker can take over a dead one's tasks quickly. */
const WORKER = { scenario: 'fanout', leaseMs: 1_500, heartbeatMs: 300, concurrency: 4, jitterMs: 10, maxReclaims: 100 } as const;

async function unfinishedRuns(store: Store): Promise<number> {
  return (await store.runs.list({ state: 'running', limit: RUNS })).length;
}

test('200 fan-out runs survive repeated SIGKILLs: nothing lost, every effect applied once', { timeout: 90_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });

  const created = await Promise.all(
    Array.from({ length: RUNS }, (_, n) => store.runs.create({ agent: 'commander', input: { n }, maxAttempts: 3, actor: 'test' }, Date.now())),
  );
  const runIds = new Set(created.map((c) => c.run.id));
  assert.equal(runIds.size, RUNS);

  // Kill the worker at random moments, restarting it each time.
  const started = Date.now();
  let kills = 0;
  const delays: number[] = [];
  while (kills < KILLS && (await unfinishedRuns(store)) > 0) {
    const w = children.spawn({ db: url, dir: data, ...WORKER });
    await w.ready;
    const delay = 50 + Math.floor(Math.random() * 350);
    delays.push(delay);
    await sleep(delay);
    const exit = await children.kill(w);
    assert.equal(exit.signal, 'SIGKILL', `worker ${w.pid} should die by SIGKILL (stderr: ${w.stderr()})`);
    kills++;
  }
  const progressAtLastKill = RUNS - (await unfinishedRuns(store));

  // A last worker, left alone, takes over the dead workers' leases and finishes.
  const last = children.spawn({ db: url, dir: data, ...WORKER });
  await last.ready;
  const deadline = Date.now() + 45_000;
  while ((await unfinishedRuns(store)) > 0) {
    if (Date.now() > deadline) assert.fail(`runs still unfinished after 45 s; worker stderr:\n${last.stderr()}`);
    await sleep(25);
  }
  const elapsed = Date.now() - started;
  await children.kill(last);

  // ── every run and task finished, and succeeded ──
  const runs = await store.runs.list({ limit: RUNS * 2 });
  assert.equal(runs.length, RUNS);
  for (const run of runs) assert.equal(run.state, 'succeeded', `run ${run.id}: ${JSON.stringify(run.error)}`);
  const tasks = await store.tasks.list({ limit: RUNS * 10 });
  assert.equal(tasks.length, RUNS * 3, 'one commander and two specialists per run, no orphans');
  for (const task of tasks) assert.equal(task.state, 'succeeded', `task ${task.id} (${task.agent}): ${JSON.stringify(task.error)}`);

  // ── the ledger holds exactly the expected effects, all completed ──
  const expected = new Set<string>();
  for (const task of tasks) {
    assert.equal(task.turns, 2, `task ${task.id} took two turns`);
    expected.add(effectKey(task.runId, task.id, 1, task.agent === 'commander' ? SPECIALISTS.length : 0));
  }
  const effects = await store.tasks.effects({});
  assert.equal(effects.length, RUNS * 3, 'one ledger row per expected effect');
  assert.deepEqual(new Set(effects.map((e) => e.key)), expected);
  for (const e of effects) assert.equal(e.state, 'completed', `effect ${e.key}`);

  // ── the audit trail written through every kill verifies: no chain forked or broken mid-commit ──
  const verified = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
  assert.equal(verified.verdict, 'clean', `audit after SIGKILLs: ${JSON.stringify(verified.findings.slice(0, 3))}`);
  assert.ok(verified.events > RUNS * 10);

  // ── the external system applied every key exactly once: the same set as the ledger ──
  const applied = readApplied(data);
  assert.equal(applied.length, new Set(applied).size, 'no key applied twice');
  assert.deepEqual(new Set(applied), expected);

  // ── raw invocations: one per ledger attempt at most; repeats only where the ledger restarted the effect ──
  const byKey = new Map<string, Invocation[]>();
  for (const inv of readInvocations(data)) {
    assert.ok(expected.has(inv.key), `invocation of an unknown key ${inv.key}`);
    byKey.set(inv.key, [...(byKey.get(inv.key) ?? []), inv]);
  }
  let restarted = 0; // ledger attempts > 1
  let reExecuted = 0; // the tool really ran more than once
  let startedNotRun = 0; // attempts the process died before the tool ran
  for (const e of effects) {
    const invs = byKey.get(e.key) ?? [];
    assert.ok(invs.length >= 1, `effect ${e.key} never reached the tool`);
    // Every real invocation is preceded by a committed ledger attempt (recordDecision or restartEffect),
    // so invocations <= attempts. They differ by the attempts a kill cut short before the tool ran.
    assert.ok(invs.length <= e.attempts, `effect ${e.key}: ${invs.length} invocations but only ${e.attempts} ledger attempts`);
    if (e.attempts === 1) assert.equal(invs[0]!.maybeRepeated, false, `first-attempt effect ${e.key} ran with maybeRepeated`);
    invs.slice(1).forEach((inv) => assert.equal(inv.maybeRepeated, true, `repeat of ${e.key} without maybeRepeated`));
    assert.ok(invs.filter((inv) => !inv.maybeRepeated).length <= 1, `effect ${e.key} ran twice as a first attempt`);
    if (e.attempts > 1) restarted++;
    if (invs.length > 1) reExecuted++;
    startedNotRun += e.attempts - invs.length;
  }

  // ── outputs merge both specialists' results ──
  const byId = new Map(created.map((c, n) => [c.run.id, n]));
  for (const run of runs) {
    const n = byId.get(run.id)!;
    assert.deepEqual(run.output, {
      n,
      parts: SPECIALISTS.map((agent) => ({ agent, n, finding: `${agent} on #${n}`, receipt: `rcpt:${agent}:${n}` })),
      receipt: `rcpt:commander:${n}`,
    });
  }

  // ── what the kills did ──
  const audit = await store.audit.list({ limit: 1_000_000 });
  const count = (kind: string) => audit.filter((a) => a.kind === kind).length;
  const reclaimed = count('task.reclaimed');
  assert.ok(reclaimed > 0, 'the kills left leased tasks behind that a later worker reclaimed');
  assert.equal(count('effect.restarted'), effects.reduce((s, e) => s + e.attempts - 1, 0), 'every extra attempt is audited');
  const summary = {
    kills,
    killDelaysMs: delays,
    runsDoneAtLastKill: progressAtLastKill,
    tasksReclaimed: reclaimed,
    turnsResumed: count('turn.resumed'),
    effectsReplayedFromLedger: count('effect.replayed'),
    effectsRestarted: restarted,
    effectsReExecuted: reExecuted,
    attemptsCutBeforeTool: startedNotRun,
    elapsedMs: elapsed,
  };
  t.diagnostic(`crash-resume: ${JSON.stringify(summary)}`);
  assert.ok(kills >= 5, `at least 5 kills (got ${kills})`);
});
