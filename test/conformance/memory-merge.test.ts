// The merge queue's `agent` and `human` strategies, on both backends: a merge agent
// dispatched as a task through intake whose merged value is written with
// compare-and-set and audited (a failing one rejects the conflict); an approval whose
// options are the candidates, decided through the approvals machinery or by
// `resolve --pick / --value`; bad resolutions change nothing.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FunctionAgent } from '../../src/agents/function-agent.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/issues.ts';
import { silentLogger } from '../../src/core/log.ts';
import type { ConflictStrategy, ScopeMatch } from '../../src/core/memory.ts';
import type { Json } from '../../src/core/types.ts';
import { createRegistry } from '../../src/engine/registry.ts';
import { Intake } from '../../src/intake/intake.ts';
import { MergeQueue } from '../../src/memory/merge-queue.ts';
import { resolveConflict } from '../../src/memory/operator.ts';
import { DEFAULT_MEMORY, type MemorySettings } from '../../src/memory/settings.ts';
import { compileBindings } from '../../src/routing/bindings.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import { intakeDispatch } from '../../src/runtime/merge-dispatch.ts';
import type { MemoryConflict, WrittenBy } from '../../src/store/memory.ts';
import type { SqlStore } from '../../src/store/sql/sql-store.ts';
import type { Store } from '../../src/store/store.ts';
import { finished, startWorker, tempStore, TEST_DB } from '../helpers.ts';

const ALL: ScopeMatch[] = [{ all: true }];
const BY: WrittenBy = { agent: 'researcher', run: 'run_1', task: 'task_1', turn: 1, actor: 'w1' };
const OPERATOR = { tenant: 'default', actor: 'cli:alice' };

function settings(strategy: ConflictStrategy, mergeAgent: string | null = null): MemorySettings {
  return { ...DEFAULT_MEMORY, scopes: [{ match: 'team/*', onConflict: strategy, contract: null, mergeAgent }] };
}

/**
 * A race at the fact's version N (first time: v1 {a:1,b:1} is written): a write moves
 * it to N+1 {a:N+1,b:1}, then a write {a:1,b:3} from N loses and is queued under the strategy.
 */
async function raced(store: Store, s: MemorySettings): Promise<MemoryConflict> {
  const w = (value: Json, expectedVersion: number | undefined, now: number) =>
    store.memory.write(
      { tenant: 'default', scope: 'team/x', key: 'doc', value, text: JSON.stringify(value), trust: 'agent', writtenBy: BY, onConflict: s.scopes[0]!.onConflict, ...(expectedVersion === undefined ? {} : { expectedVersion }) },
      now,
    );
  let n = (await current(store))?.version ?? 0;
  if (n === 0) {
    await w({ a: 1, b: 1 }, undefined, Date.now());
    n = 1;
  }
  await w({ a: n + 1, b: 1 }, n, Date.now());
  const lost = await w({ a: 1, b: 3 }, n, Date.now());
  assert.equal(lost.kind, 'conflict');
  assert.equal(lost.kind === 'conflict' && lost.conflict.state, 'open', 'queued for resolution, not rejected');
  return (lost as { conflict: MemoryConflict }).conflict;
}

const current = (store: Store) => store.memory.get({ tenant: 'default', grants: ALL, scope: 'team/x', key: 'doc' }, Date.now());
const noDispatch = async (): Promise<string> => {
  throw new Error('no merge agent here');
};

async function fresh(t: TestContext): Promise<Store> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  return store;
}

async function resolvedAudit(store: Store, conflict: string) {
  const events = await store.audit.list({ limit: 10_000 });
  return events.filter((e) => e.kind === 'memory.resolved' && (e.data as { conflict?: string }).conflict === conflict).map((e) => ({ actor: e.actor, ...(e.data as object) }));
}

test('human: an approval whose options are the candidates; approving with "2" keeps the current version, approving writes the candidate, denying rejects', async (t) => {
  const store = await fresh(t);
  const s = settings('human');
  const queue = new MergeQueue({ store, clock: systemClock, log: silentLogger, settings: s, dispatch: noDispatch });
  const c = await raced(store, s);
  assert.equal(await queue.passOnce(), 1);
  assert.equal(await queue.passOnce(), 0, 'one approval per conflict');
  const opened = (await store.memory.conflict(c.id))!;
  assert.ok(opened.approvalId);
  const approval = (await store.approvals.get(opened.approvalId))!;
  assert.equal(approval.state, 'pending');
  assert.equal(approval.actionKey, `memory-conflict:${c.id}`);
  assert.equal(approval.taskId, '', 'no task waits on it: deciding it must not wake the writer’s task');
  assert.equal(approval.runId, BY.run);
  const options = (approval.action as { options: Array<{ option: number; value: Json }> }).options;
  assert.deepEqual(
    options.map((o) => [o.option, o.value]),
    [
      [1, { a: 1, b: 3 }],
      [2, { a: 2, b: 1 }],
    ],
  );

  await store.approvals.decide(approval.id, { approve: true, actor: 'alice', reason: '2' }, Date.now());
  assert.equal(await queue.passOnce(), 1);
  const kept = (await store.memory.conflict(c.id))!;
  assert.equal(kept.state, 'resolved');
  assert.equal(kept.resolvedVersion, 2);
  assert.equal(kept.resolvedBy, 'alice');
  assert.equal((await current(store))!.version, 2, 'nothing new written');

  const c2 = await raced(store, s); // v3, and a write from v2 lost
  await queue.passOnce();
  await store.approvals.decide((await store.memory.conflict(c2.id))!.approvalId!, { approve: true, actor: 'alice' }, Date.now());
  await queue.passOnce();
  const written = (await store.memory.conflict(c2.id))!;
  assert.equal(written.state, 'resolved');
  const now = (await current(store))!;
  assert.deepEqual(now.value, { a: 1, b: 3 }, 'option 1: the write that lost');
  assert.equal(written.resolvedVersion, now.version);
  assert.equal(now.trust, 'owner');
  assert.deepEqual(await resolvedAudit(store, c2.id), [{ actor: 'alice', conflict: c2.id, strategy: 'human', by: 'alice', how: `approval ${written.approvalId}, option 1`, version: now.version }]);

  const c3 = await raced(store, s);
  const before = (await current(store))!.version;
  await queue.passOnce();
  await store.approvals.decide((await store.memory.conflict(c3.id))!.approvalId!, { approve: false, actor: 'bob' }, Date.now());
  await queue.passOnce();
  assert.equal((await store.memory.conflict(c3.id))!.state, 'rejected');
  assert.equal((await current(store))!.version, before, 'denied: nothing written');
});

test('human: `conflicts resolve --pick` and `--value` resolve directly and decide the approval; bad input changes nothing', async (t) => {
  const store = await fresh(t);
  const s = settings('human');
  const queue = new MergeQueue({ store, clock: systemClock, log: silentLogger, settings: s, dispatch: noDispatch });
  const c = await raced(store, s);
  await queue.passOnce();

  for (const [bad, code, re] of [
    [{}, 'INVALID_INPUT', /^resolve: name exactly one of --pick/],
    [{ pick: 1, value: 1 }, 'INVALID_INPUT', /^resolve: /],
    [{ pick: 3 }, 'INVALID_INPUT', /^pick: "3" is not an option/],
    [{ value: 'x'.repeat(DEFAULT_MEMORY.maxValueBytes) }, 'VALUE_TOO_LARGE', /memory\.maxValueBytes/],
  ] as const) {
    await assert.rejects(resolveConflict(store, s, OPERATOR, c.id, bad, Date.now()), (e: Error & { code?: string }) => e.code === code && re.test(e.message));
  }
  await assert.rejects(resolveConflict(store, s, OPERATOR, 'conflict_nope', { pick: 1 }, Date.now()), { code: 'NOT_FOUND' });
  await assert.rejects(resolveConflict(store, s, { ...OPERATOR, tenant: 'other' }, c.id, { pick: 1 }, Date.now()), { code: 'NOT_FOUND' }, 'another tenant’s conflict is not there');
  assert.equal((await store.memory.conflict(c.id))!.state, 'open', 'nothing changed');
  assert.equal((await current(store))!.version, 2);

  const done = await resolveConflict(store, s, OPERATOR, c.id, { value: { a: 9 } }, Date.now());
  assert.equal(done.state, 'resolved');
  assert.deepEqual((await current(store))!.value, { a: 9 });
  assert.equal((await store.approvals.get(done.approvalId!))!.state, 'approved', 'its approval is decided with it');
  assert.equal(await queue.passOnce(), 0, 'the queue has nothing left to do');
  await assert.rejects(resolveConflict(store, s, OPERATOR, c.id, { pick: 1 }, Date.now()), { code: 'INVALID_STATE' });

  const c2 = await raced(store, s); // resolved before the queue opened an approval
  const kept = (await current(store))!;
  const picked = await resolveConflict(store, s, OPERATOR, c2.id, { pick: 2 }, Date.now());
  assert.equal(picked.state, 'resolved');
  assert.equal(picked.resolvedVersion, kept.version);
  assert.equal(picked.approvalId, null);
  assert.equal((await current(store))!.version, kept.version, 'option 2 keeps the current version');
});

test('agent: the merge agent gets base, current and candidate as a task through intake; its value is written with compare-and-set and audited', async (t) => {
  const { store, cleanup } = await tempStore();
  const seen: Json[] = [];
  const reg = createRegistry({
    agents: {
      merger: {
        agent: new FunctionAgent((input) => {
          seen.push(input.task.input);
          const { current, candidate } = input.task.input as { current: Record<string, Json>; candidate: Record<string, Json> };
          return { output: { value: { ...current, ...candidate, a: current.a! } } };
        }),
        timeoutMs: 5_000,
      },
      failing: { agent: new FunctionAgent(() => ({ output: 'no value here' })), timeoutMs: 5_000, retry: { maxAttempts: 1 } },
    },
  });
  const issues: FieldIssue[] = [];
  const intake = new Intake(store, reg, { bindings: compileBindings([], ['merger', 'failing'], issues), sessions: compileSessions(undefined, issues) }, systemClock);
  const worker = await startWorker(store, reg);
  t.after(async () => {
    await worker.stop();
    await cleanup();
  });
  const s = settings('agent', 'merger');
  const queue = new MergeQueue({ store, clock: systemClock, log: silentLogger, settings: s, dispatch: intakeDispatch(intake) });

  const c = await raced(store, s);
  assert.equal(await queue.passOnce(), 1, 'dispatched');
  const { mergeRun } = (await store.memory.conflict(c.id))!;
  assert.ok(mergeRun);
  await finished(store, mergeRun);
  assert.deepEqual(seen, [{ conflict: c.id, scope: 'team/x', key: 'doc', base: { a: 1, b: 1 }, current: { a: 2, b: 1 }, candidate: { a: 1, b: 3 }, candidateText: '{"a":1,"b":3}' }]);
  assert.equal(await queue.passOnce(), 1, 'resolved');
  const done = (await store.memory.conflict(c.id))!;
  const fact = (await current(store))!;
  assert.equal(done.state, 'resolved');
  assert.deepEqual(fact.value, { a: 2, b: 3 }, 'the merged value');
  assert.equal(done.resolvedVersion, fact.version);
  assert.equal(fact.version, 3);
  assert.deepEqual(fact.writtenBy, { agent: 'merger', run: mergeRun, task: (await store.runs.get(mergeRun))!.rootTaskId, turn: null, actor: 'agent:merger' });
  assert.deepEqual(await resolvedAudit(store, c.id), [{ actor: 'agent:merger', conflict: c.id, strategy: 'agent', by: 'agent:merger', how: `merge run ${mergeRun}`, version: 3 }]);

  // A failing merge agent (no {value}) rejects its conflict; nothing is written.
  const s2 = settings('agent', 'failing');
  const q2 = new MergeQueue({ store, clock: systemClock, log: silentLogger, settings: s2, dispatch: intakeDispatch(intake) });
  const c2 = await raced(store, s2);
  const before = (await current(store))!.version;
  await q2.passOnce();
  await finished(store, (await store.memory.conflict(c2.id))!.mergeRun!);
  await q2.passOnce();
  const rejected = (await store.memory.conflict(c2.id))!;
  assert.equal(rejected.state, 'rejected');
  assert.match(rejected.resolvedBy ?? '', /^agent:failing$/);
  assert.equal((await current(store))!.version, before);
});

test('config: onConflict "agent" needs a configured mergeAgent', async () => {
  const { compileMemory } = await import('../../src/memory/settings.ts');
  const issues: FieldIssue[] = [];
  compileMemory({ scopes: [{ match: 'team/*', onConflict: 'agent' }, { match: 'global', onConflict: 'agent', mergeAgent: 'ghost' }], embedder: { agent: 'nobody', dimensions: 8 } }, [], ['merger'], issues);
  assert.deepEqual(
    issues.map((i) => i.path),
    ['memory.scopes.0.mergeAgent', 'memory.scopes.1.mergeAgent', 'memory.embedder.agent'],
  );
  assert.match(issues[1]!.message, /unknown agent ghost \(configured: merger\)/);
});

test('the merge queue finds open conflicts by strategy through an index, not by scanning every conflict ever recorded', async (t) => {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const backend = (store as SqlStore).backend;
  // The merge queue's look (memory-sql.ts conflicts, with state and strategy given), literally.
  const query = "SELECT * FROM memory_conflicts WHERE state = 'open' AND strategy = 'agent' ORDER BY created_at, id LIMIT 50";
  // (PostgreSQL would scan a table this small whole; told not to, it must find the index.)
  const plan =
    TEST_DB === 'postgres'
      ? await backend.transaction(async (tx) => {
          await tx.exec('SET LOCAL enable_seqscan = off');
          return tx.all(`EXPLAIN ${query}`);
        })
      : await backend.read.all(`EXPLAIN QUERY PLAN ${query}`);
  assert.match(JSON.stringify(plan), /memory_conflicts_queue/);
});
