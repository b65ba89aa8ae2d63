// The engine's turn loop end to end on a real store (SQLite; PostgreSQL under
// `npm run test:pg`) and a real Worker:
// fan-out/join, nesting, refused handoffs, tool results, turn limits and history.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import { InvalidInputError } from '../../src/core/errors.ts';
import { auditOf, finished, gate, harness, registry, submit, until } from '../helpers.ts';

/** The fields of an action result that do not depend on generated ids. */
function shape(r: ActionResult): Record<string, Json> {
  return r.ok
    ? { index: r.index, type: r.type, ok: true, value: r.value }
    : { index: r.index, type: r.type, ok: false, code: r.error.code };
}

test('fan-out/join: children run in parallel and the parent gets their results in action order', async (t) => {
  const gates = [gate(), gate(), gate()];
  const entered: number[] = [];
  let joined: TurnInput | null = null;
  const reg = registry(
    {
      lead: (input) => {
        if (input.task.turn === 1) {
          return {
            actions: [
              { type: 'handoff', agent: 'part', input: 0, id: 'a' },
              { type: 'tool', tool: 'echo', input: 'between', id: 't' },
              { type: 'handoff', agent: 'part', input: 1, id: 'b' },
              { type: 'handoff', agent: 'part', input: 2, id: 'c' },
            ],
          };
        }
        joined = structuredClone(input);
        return { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) };
      },
      part: async (input) => {
        const n = input.task.input as number;
        entered.push(n);
        await gates[n]!.promise;
        return { output: `part-${n}` };
      },
    },
    { echo: (x) => x },
  );
  const { store } = await harness(t, reg);
  const run = await submit(store, reg, 'lead', 'go');

  // All three children are inside their turn at the same time: they run in parallel.
  await until('three children in their turn', () => entered.length === 3);
  const children = (await store.tasks.list({ runId: run.id, limit: 10 })).filter((x) => x.parentId !== null);
  assert.equal(children.length, 3);
  assert.ok(children.every((c) => c.state === 'running' || c.state === 'leased'));
  assert.equal((await store.tasks.get(run.rootTaskId))!.state, 'waiting');
  assert.equal((await store.tasks.get(run.rootTaskId))!.waitingOn, 3);

  // Let them finish in reverse order, each one committed before the next is released.
  for (const n of [2, 1, 0]) {
    gates[n]!.open();
    const child = children.find((c) => c.input === n)!;
    await until(`child ${n} succeeded`, async () => (await store.tasks.get(child.id))!.state === 'succeeded');
  }

  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.output, ['part-0', 'between', 'part-1', 'part-2']);

  const results = (joined as TurnInput | null)!.results;
  assert.deepEqual(results.map(shape), [
    { index: 0, type: 'handoff', ok: true, value: 'part-0' },
    { index: 1, type: 'tool', ok: true, value: 'between' },
    { index: 2, type: 'handoff', ok: true, value: 'part-1' },
    { index: 3, type: 'handoff', ok: true, value: 'part-2' },
  ]);
  assert.deepEqual(
    results.map((r) => r.id),
    ['a', 't', 'b', 'c'],
  );
  // Each handoff result names the child created for that action.
  for (const r of results.filter((x) => x.type === 'handoff')) {
    const child = children.find((c) => c.id === r.taskId);
    assert.ok(child, `result ${r.index} names a child of this run`);
    assert.equal(child.parentAction, r.index);
    assert.equal(child.parentTurn, 1);
    assert.equal(child.depth, 1);
    assert.equal(child.parentId, run.rootTaskId);
  }
  // The children really finished in reverse order; the join still lists them by action.
  const finishedOrder = (await auditOf(store, run.id)).filter((e) => e.kind === 'task.succeeded' && e.taskId !== run.rootTaskId).map((e) => e.taskId);
  assert.deepEqual(
    finishedOrder,
    [2, 1, 0].map((n) => children.find((c) => c.input === n)!.id),
  );
  assert.equal((await auditOf(store, run.id)).filter((e) => e.kind === 'task.joined').length, 1);
});

test('a fan-out wider than one multi-row insert (70 children) creates each child in its place, and the parent gets every result in action order', async (t) => {
  const reg = registry({
    lead: (input) =>
      input.task.turn === 1
        ? { actions: Array.from({ length: 70 }, (_, i) => ({ type: 'handoff' as const, agent: 'part', input: i })) }
        : { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) },
    part: (input) => ({ output: (input.task.input as number) * 2 }),
  });
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(
    run.output,
    Array.from({ length: 70 }, (_, i) => i * 2),
  );
  const children = (await store.tasks.list({ runId: run.id, limit: 100 })).filter((c) => c.parentId === run.rootTaskId);
  assert.equal(children.length, 70);
  const created = (await auditOf(store, run.id)).filter((e) => e.kind === 'task.created');
  assert.equal(created.length, 71, 'one task.created for the root and one for each child');
});

test('a child that dies reaches the parent as ok:false with the child error; the parent goes on', async (t) => {
  const reg = registry({
    lead: (input) =>
      input.task.turn === 1
        ? { actions: [{ type: 'handoff', agent: 'broken' }, { type: 'handoff', agent: 'fine' }] }
        : { output: input.results.map(shape) },
    broken: () => {
      throw new InvalidInputError('query', 'is empty');
    },
    fine: () => ({ output: 'ok' }),
  });
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(run.output, [
    { index: 0, type: 'handoff', ok: false, code: 'INVALID_INPUT' },
    { index: 1, type: 'handoff', ok: true, value: 'ok' },
  ]);
  const dead = await store.tasks.list({ runId: run.id, state: 'dead', limit: 10 });
  assert.deepEqual(
    dead.map((d) => d.agent),
    ['broken'],
  );
});

test('nested handoffs three levels deep return up the chain', async (t) => {
  const level = (name: string, next: string | null) => (input: TurnInput) => {
    if (next === null) return { output: name };
    if (input.task.turn === 1) return { actions: [{ type: 'handoff', agent: next, input: { from: name } }] };
    const r = input.results[0]!;
    assert.ok(r.ok);
    return { output: `${name}(${r.value as string})` };
  };
  const reg = registry({ l0: level('l0', 'l1'), l1: level('l1', 'l2'), l2: level('l2', 'l3'), l3: level('l3', null) });
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'l0')).id);
  assert.equal(run.state, 'succeeded');
  assert.equal(run.output, 'l0(l1(l2(l3)))');

  const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
  assert.equal(tasks.length, 4);
  const byAgent = new Map(tasks.map((x) => [x.agent, x]));
  for (const [i, name] of ['l0', 'l1', 'l2', 'l3'].entries()) {
    const task = byAgent.get(name)!;
    assert.equal(task.depth, i, `${name} depth`);
    assert.equal(task.state, 'succeeded');
    assert.equal(task.parentId, i === 0 ? null : byAgent.get(`l${i - 1}`)!.id);
    if (i > 0) assert.deepEqual(task.input, { from: `l${i - 1}` });
  }
});

test('depth limit: a handoff beyond limits.maxDepth is refused with DEPTH_LIMIT as that action result, no child created', async (t) => {
  const seen: Array<{ depth: number; results: ActionResult[] }> = [];
  const reg = registry(
    {
      nest: (input) => {
        if (input.task.turn === 1) return { actions: [{ type: 'handoff', agent: 'nest', input: input.task.depth + 1, id: 'deeper' }] };
        seen.push({ depth: input.task.depth, results: structuredClone(input.results) });
        const r = input.results[0]!;
        return { output: r.ok ? { depth: input.task.depth, child: r.value } : { depth: input.task.depth, refused: r.error.code } };
      },
    },
    {},
    { limits: { maxDepth: 2 } },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'nest')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(run.output, { depth: 0, child: { depth: 1, child: { depth: 2, refused: 'DEPTH_LIMIT' } } });

  const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
  assert.deepEqual(tasks.map((x) => x.depth).sort(), [0, 1, 2], 'no task at depth 3');
  const deepest = seen.find((s) => s.depth === 2)!;
  assert.equal(deepest.results.length, 1);
  const refusal = deepest.results[0]!;
  assert.equal(refusal.ok, false);
  assert.equal(refusal.type, 'handoff');
  assert.equal(refusal.id, 'deeper');
  assert.equal(refusal.taskId, undefined, 'a refused handoff names no child');
  assert.ok(!refusal.ok && refusal.error.code === 'DEPTH_LIMIT' && !refusal.error.retryable);
  assert.match(!refusal.ok ? refusal.error.message : '', /maxDepth/);

  const refused = (await auditOf(store, run.id)).filter((e) => e.kind === 'action.refused');
  assert.equal(refused.length, 1);
  const data = refused[0]!.data as { index: number; code: string };
  assert.equal(data.index, 0);
  assert.equal(data.code, 'DEPTH_LIMIT');
});

test('handoff to an unknown agent: UNKNOWN_AGENT result in its place, the valid sibling still runs', async (t) => {
  let results: ActionResult[] = [];
  const reg = registry({
    lead: (input) => {
      if (input.task.turn === 1) return { actions: [{ type: 'handoff', agent: 'ghost' }, { type: 'handoff', agent: 'helper', input: 'x' }] };
      results = structuredClone(input.results);
      return { output: 'done' };
    },
    helper: (input) => ({ output: `helped ${input.task.input as string}` }),
  });
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(results.map(shape), [
    { index: 0, type: 'handoff', ok: false, code: 'UNKNOWN_AGENT' },
    { index: 1, type: 'handoff', ok: true, value: 'helped x' },
  ]);
  assert.match(!results[0]!.ok ? results[0]!.error.message : '', /unknown agent "ghost"/);
  const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
  assert.deepEqual(tasks.map((x) => x.agent).sort(), ['helper', 'lead']);
});

test('unknown tool: UNKNOWN_TOOL result, nothing recorded in the effects ledger for it', async (t) => {
  let results: ActionResult[] = [];
  const calls: Json[] = [];
  const reg = registry(
    {
      lead: (input) => {
        if (input.task.turn === 1) return { actions: [{ type: 'tool', tool: 'nope', input: 1 }, { type: 'tool', tool: 'echo', input: 2 }] };
        results = structuredClone(input.results);
        return { output: 'done' };
      },
    },
    { echo: (x) => (calls.push(x), x) },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(results.map(shape), [
    { index: 0, type: 'tool', ok: false, code: 'UNKNOWN_TOOL' },
    { index: 1, type: 'tool', ok: true, value: 2 },
  ]);
  assert.match(!results[0]!.ok ? results[0]!.error.message : '', /unknown tool "nope" \(known: echo\)/);
  assert.deepEqual(calls, [2]);
  const effects = await store.tasks.effects({ runId: run.id });
  assert.deepEqual(
    effects.map((e) => [e.tool, e.action, e.state]),
    [['echo', 1, 'completed']],
  );
});

test('a tool that throws: ok:false TOOL_FAILED result, effect recorded as failed, the task is not failed', async (t) => {
  let results: ActionResult[] = [];
  let agentCalls = 0;
  const reg = registry(
    {
      lead: (input) => {
        agentCalls++;
        if (input.task.turn === 1) return { actions: [{ type: 'tool', tool: 'explode', input: { why: 'test' }, id: 'boom' }] };
        results = structuredClone(input.results);
        return { output: 'recovered' };
      },
    },
    {
      explode: () => {
        throw new Error('kaboom');
      },
    },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.equal(run.output, 'recovered');
  assert.equal(agentCalls, 2);
  assert.equal(results.length, 1);
  const r = results[0]!;
  assert.ok(!r.ok);
  assert.equal(r.id, 'boom');
  assert.equal(r.error.code, 'TOOL_FAILED');
  assert.match(r.error.message, /tool "explode": kaboom/);

  const [effect, ...more] = await store.tasks.effects({ runId: run.id });
  assert.equal(more.length, 0);
  assert.equal(effect!.state, 'failed');
  assert.equal(effect!.result, null);
  assert.equal(effect!.error!.code, 'TOOL_FAILED');
  assert.notEqual(effect!.completedAt, null);
  const audit = await auditOf(store, run.id);
  assert.equal(audit.filter((e) => e.kind === 'effect.failed').length, 1);
  assert.equal(audit.filter((e) => e.kind === 'task.failed').length, 0, 'a tool failure is a result, not a failed attempt');
});

test('turn limit: a task that never returns an output goes dead with TURN_LIMIT after maxTurns turns', async (t) => {
  let calls = 0;
  const seen: Array<[number, number, number]> = [];
  const reg = registry(
    {
      loop: (input) => {
        calls++;
        seen.push([input.task.turn, input.history.length, input.results.length]);
        // `{actions: []}`: nothing to do, just another turn.
        return { actions: [] };
      },
    },
    {},
    { limits: { maxTurns: 3 } },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'loop')).id);
  assert.equal(run.state, 'failed');
  assert.equal(run.error!.code, 'TURN_LIMIT');
  assert.equal(calls, 3);
  assert.deepEqual(seen, [
    [1, 0, 0],
    [2, 1, 0],
    [3, 2, 0],
  ]);
  const task = (await store.tasks.get(run.rootTaskId))!;
  assert.equal(task.state, 'dead');
  assert.equal(task.turns, 3);
  assert.equal(task.error!.code, 'TURN_LIMIT');
  assert.equal(task.error!.retryable, false);
  assert.equal((await store.tasks.turns(task.id)).length, 3);
  const audit = await auditOf(store, run.id);
  assert.equal(audit.filter((e) => e.kind === 'task.failed').length, 1, 'not retried');
  assert.equal(audit.filter((e) => e.kind === 'task.retry-scheduled').length, 0);
});

test('output and a tool action in the same turn: the tool runs, then the task succeeds with that output', async (t) => {
  const calls: Json[] = [];
  let agentCalls = 0;
  const reg = registry(
    { lead: () => (agentCalls++, { actions: [{ type: 'tool', tool: 'record', input: { note: 'final' } }], output: 'done' }) },
    { record: (x) => (calls.push(x), 'saved') },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.equal(run.output, 'done');
  assert.equal(agentCalls, 1);
  assert.deepEqual(calls, [{ note: 'final' }]);
  const turns = await store.tasks.turns(run.rootTaskId);
  assert.equal(turns.length, 1);
  assert.equal(turns[0]!.output, 'done');
  assert.deepEqual(turns[0]!.results.map(shape), [{ index: 0, type: 'tool', ok: true, value: 'saved' }]);
  const effects = await store.tasks.effects({ runId: run.id });
  assert.deepEqual(
    effects.map((e) => [e.tool, e.state, e.result]),
    [['record', 'completed', 'saved']],
  );
});

test('output together with a handoff is a protocol violation: refused, retried, dead, no child created', async (t) => {
  let calls = 0;
  const reg = registry({
    eager: {
      fn: () => (calls++, { actions: [{ type: 'handoff', agent: 'helper' }], output: 'too soon' }),
      retry: { maxAttempts: 2 },
    },
    helper: () => ({ output: 'never asked' }),
  });
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'eager')).id);
  assert.equal(run.state, 'failed');
  assert.equal(run.error!.code, 'AGENT_PROTOCOL');
  assert.match(run.error!.message, /cannot also hand off/);
  assert.equal(calls, 2, 'retried per policy');
  assert.deepEqual(
    (await store.tasks.list({ runId: run.id, limit: 10 })).map((x) => x.agent),
    ['eager'],
  );
  assert.deepEqual(await store.tasks.turns(run.rootTaskId), []);
});

test('history is handed back: turn 3 sees turns 1 and 2 with their results, as committed', async (t) => {
  const inputs: TurnInput[] = [];
  const reg = registry(
    {
      lead: (input) => {
        inputs.push(structuredClone(input));
        if (input.task.turn === 1) return { actions: [{ type: 'tool', tool: 'echo', input: 'one' }] };
        // Turn 2 hands off, so turn 3 runs from a fresh claim that rebuilds history from the store.
        if (input.task.turn === 2) return { actions: [{ type: 'handoff', agent: 'helper', input: 'two' }] };
        return { output: input.history.map((h) => h.results.map((r) => (r.ok ? r.value : null))) };
      },
      helper: (input) => ({ output: `helped ${input.task.input as string}` }),
    },
    { echo: (x) => x },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(run.output, [['one'], ['helped two']]);

  assert.deepEqual(
    inputs.map((i) => [i.task.turn, i.history.length, i.results.length]),
    [
      [1, 0, 0],
      [2, 1, 1],
      [3, 2, 1],
    ],
  );
  const third = inputs[2]!;
  assert.equal(third.protocol, 'spine.turn/1');
  assert.deepEqual(
    third.history.map((h) => h.turn),
    [1, 2],
  );
  assert.deepEqual(third.history[0]!.actions, [{ type: 'tool', tool: 'echo', input: 'one' }]);
  assert.deepEqual(third.history[1]!.actions, [{ type: 'handoff', agent: 'helper', input: 'two' }]);
  assert.deepEqual(third.results, third.history[1]!.results, 'results are the last turn’s results');
  const child = (await store.tasks.list({ runId: run.id, limit: 10 })).find((x) => x.agent === 'helper')!;
  assert.equal(third.results[0]!.taskId, child.id);
  // What the agent was handed is exactly what the store holds for those turns.
  assert.deepEqual(third.history, (await store.tasks.turns(run.rootTaskId)).slice(0, 2));
  // Turn 2 (kept in memory after turn 1) and turn 3 (rebuilt from the store) agree on turn 1.
  assert.deepEqual(inputs[1]!.history[0], third.history[0]);
});

test('an in-process agent that mutates its turn input cannot change what later turns are handed', async (t) => {
  const lengths: number[] = [];
  const kept: TurnInput[] = [];
  const reg = registry(
    {
      lead: (input) => {
        kept.push(input);
        lengths.push(input.history.length);
        if (input.task.turn < 3) {
          // A careless agent scribbles on what it was given.
          input.history.length = 0;
          (input.task.input as Json[]).push('scribbled');
          return { actions: [{ type: 'tool', tool: 'echo', input: input.task.turn }] };
        }
        return { output: { input: input.task.input, turns: input.history.map((h) => h.turn) } };
      },
    },
    { echo: (x) => x },
  );
  const { store } = await harness(t, reg);
  const run = await finished(store, (await submit(store, reg, 'lead', ['original'])).id);
  assert.equal(run.state, 'succeeded');
  assert.deepEqual(lengths, [0, 1, 2]);
  assert.deepEqual(run.output, { input: ['original'], turns: [1, 2] });
  // A kept input is a snapshot of its turn: later turns do not grow it.
  assert.equal(kept[0]!.history.length, 0);
});
