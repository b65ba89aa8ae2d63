/**
 * Synthesis survives SIGKILL anywhere: a real worker process is killed before and
 * after every step of a brief (the judges' dispatch, the approval's opening, the
 * brief's completion) and while it waits for a person; the person approves with
 * `spine approvals approve`. The judge is asked once per key, one approval is
 * opened, and the brief is decided as if nothing had happened.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { Store } from '../../src/store/store.ts';
import { Children, type WorkerChild } from '../fixtures/child.ts';
import { readJudgeAsks } from '../fixtures/synthesis-scenario.ts';
import { auditOf, tempStore, until } from '../helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/spine.js', import.meta.url));
const WORKER = { scenario: 'synthesis', leaseMs: 1_000, heartbeatMs: 200, concurrency: 4 } as const;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.SPINE_FAULTS;
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a brief survives SIGKILL before and after each step and while it waits for a person', { timeout: 120_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });
  const { run } = await store.runs.create({ agent: 'lead', input: 'acme', maxAttempts: 3, actor: 'test' }, Date.now());

  /** A worker armed to SIGKILL itself at the first hit of `fault`: it must die there. */
  async function dieAt(fault: string): Promise<void> {
    const w = children.spawn({ db: url, dir: data, ...WORKER, faults: `${fault}@1` });
    await w.ready;
    const exit = await w.exited;
    assert.equal(exit.signal, 'SIGKILL', `worker should die at ${fault} (stderr: ${w.stderr()})`);
    assert.match(w.stderr(), new RegExp(`SIGKILL at ${fault}`));
  }

  await dieAt('synthesis-before-step'); // detection done, judges planned, nothing committed
  await dieAt('synthesis-after-step'); // judges dispatched with the brief that records them
  await dieAt('synthesis-before-step'); // the judges answered: price decided, risk's approval planned
  await dieAt('synthesis-after-step'); // the approval opened with the brief that records it

  // A worker with nothing to do but wait for the person: killed while it waits.
  const idle: WorkerChild = children.spawn({ db: url, dir: data, ...WORKER });
  await idle.ready;
  await until('the lead waits for the approval', async () => (await store.tasks.get(run.rootTaskId))!.state === 'waiting', 30_000);
  assert.equal((await children.kill(idle)).signal, 'SIGKILL');

  const approvals = await store.approvals.list({ runId: run.id, limit: 10 });
  assert.equal(approvals.length, 1, 'one approval, whatever the kills');
  const approved = await cli(['approvals', 'approve', approvals[0]!.id, '--reason', '2', '--as', 'ana', '--db', url]);
  assert.equal(approved.code, 0, approved.stderr);

  await dieAt('synthesis-before-step'); // the human decided: the brief is about to be done
  await dieAt('synthesis-after-step'); // the brief is done, the lead's turn not yet taken
  const last = children.spawn({ db: url, dir: data, ...WORKER });
  await last.ready;
  await until('the run finished', async () => (await store.runs.get(run.id))!.state !== 'running', 60_000);

  const done = (await store.runs.get(run.id))!;
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const brief = (await store.briefs.list({ runId: run.id, limit: 10 }))[0]!;
  assert.deepEqual(done.output, { digest: brief.digest, decided: { price: 120, risk: 'low' } });
  const risk = brief.conflicts.find((c) => c.key === 'risk')!;
  assert.deepEqual(risk.decision?.decider, { kind: 'human', actor: 'ana', approval: approvals[0]!.id });
  assert.deepEqual(risk.steps.map((s) => [s.strategy, s.outcome]), [
    ['vote', 'tie'],
    ['judge', 'abstained'],
    ['human', 'decided'],
  ]);

  // The judge: one task per key, whatever the kills.
  const asks = readJudgeAsks(data);
  const tasksByKey = new Map<string, Set<string>>();
  for (const a of asks) tasksByKey.set(a.key, (tasksByKey.get(a.key) ?? new Set()).add(a.task));
  assert.deepEqual([...tasksByKey.entries()].map(([k, s]) => [k, s.size]).sort(), [
    ['price', 1],
    ['risk', 1],
  ]);
  assert.equal((await store.tasks.list({ runId: run.id, limit: 20 })).filter((x) => x.agent === 'judge').length, 2);
  assert.equal((await store.approvals.list({ runId: run.id, limit: 10 })).length, 1);
  const audit = await auditOf(store, run.id);
  assert.equal(audit.filter((e) => e.kind === 'conflict.judge-asked').length, 2);
  assert.equal(audit.filter((e) => e.kind === 'conflict.human-asked').length, 1);
  assert.equal(audit.filter((e) => e.kind === 'brief.done').length, 1);
  await checkOneBrief(store, run.id);
});

async function checkOneBrief(store: Store, runId: string): Promise<void> {
  const briefs = await store.briefs.list({ runId, limit: 10 });
  assert.equal(briefs.length, 1);
  assert.equal(briefs[0]!.state, 'done');
}
