// Shared memory through the engine, on both backends: `remember` crosses the boundary
// (contract → policy → gates → audit → effect) and is stored once under its effect key;
// writes are denied by default; bad writes get a clear error and write nothing; a lost
// compare-and-set comes back holding both versions; declared recall hands the turn
// facts with their provenance, under read grants; a SIGKILL between the write and the
// turn's commit leaves the fact once.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ContractRegistry } from '../../src/contracts/registry.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import type { AgentFunction } from '../../src/core/agent.ts';
import { waitForRun } from '../../src/engine/runs.ts';
import { createRegistry } from '../../src/engine/registry.ts';
import { FunctionAgent } from '../../src/agents/function-agent.ts';
import { DEFAULT_MEMORY, type RecallSpec } from '../../src/memory/settings.ts';
import type { MemoryGrants } from '../../src/core/memory.ts';
import { Children } from '../fixtures/child.ts';
import type { Gate } from '../../src/validation/gate.ts';
import { auditOf, finished, forge, startWorker, submit, tempStore } from '../helpers.ts';

const ALL = [{ all: true as const }];

function reg(agents: Record<string, { fn: AgentFunction; memory?: MemoryGrants; recall?: RecallSpec[] }>, opts: { contracts?: ContractRegistry; scopes?: typeof DEFAULT_MEMORY.scopes; gates?: Gate[] } = {}) {
  return createRegistry({
    agents: Object.fromEntries(
      Object.entries(agents).map(([name, a]) => [
        name,
        { agent: new FunctionAgent(a.fn), timeoutMs: 5_000, retry: { initialMs: 5, maxMs: 20 }, grants: { tools: { allow: [], deny: [] }, handoffs: null, ...(a.memory ? { memory: a.memory } : {}) }, ...(a.recall ? { recall: a.recall } : {}) },
      ]),
    ),
    ...(opts.contracts ? { contracts: opts.contracts } : {}),
    ...(opts.gates ? { gates: opts.gates } : {}),
    memory: { ...DEFAULT_MEMORY, maxValueBytes: 1024, ...(opts.scopes ? { scopes: opts.scopes } : {}) },
  });
}

/** An agent that takes the given actions on turn 1 and outputs their results on turn 2. */
function acting(actions: Json[], seen: TurnInput[] = []): AgentFunction {
  return (input) => {
    seen.push(structuredClone(input));
    if (input.task.turn === 1) return { actions };
    return { output: input.results.map((r: ActionResult) => (r.ok ? r.value : { error: r.error.code, details: r.error.details ?? null })) as Json };
  };
}

async function setup(t: TestContext, registry: ReturnType<typeof reg>) {
  const { store, cleanup } = await tempStore();
  const worker = await startWorker(store, registry);
  t.after(async () => {
    await worker.stop();
    await cleanup();
  });
  return store;
}

const WRITER: MemoryGrants = { read: ['team/research/*', 'run/*', 'agent/self/*'], write: ['team/research/*', 'agent/self/*', 'run/*'] };

test('remember crosses the boundary and is stored once under its effect key; self and run resolve to the writer’s own', async (t) => {
  const r = reg({
    researcher: {
      fn: acting([
        { type: 'remember', scope: 'team/research', key: 'pricing', value: { usd: 10 }, text: 'pricing is ten dollars', sources: ['env_x'] },
        { type: 'remember', scope: 'agent/self/notes', key: 'todo', value: 'check vendors' },
        { type: 'remember', scope: 'run/self', key: 'scratch', value: 1, ttl: '1h' },
      ]),
      memory: WRITER,
    },
  });
  const store = await setup(t, r);
  const run = await submit(store, r, 'researcher');
  const done = await finished(store, run.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const out = done.output as Array<{ scope: string; version: number; written: boolean }>;
  assert.deepEqual(
    out.map((o) => [o.scope, o.version, o.written]),
    [
      ['team/research', 1, true],
      ['agent/researcher/notes', 1, true],
      [`run/${run.id}`, 1, true],
    ],
  );
  const fact = await store.memory.get({ tenant: 'default', grants: ALL, scope: 'team/research', key: 'pricing' }, Date.now());
  assert.deepEqual(fact?.writtenBy, { agent: 'researcher', run: run.id, task: run.rootTaskId, turn: 1, actor: fact!.writtenBy.actor });
  assert.deepEqual(fact?.sources, ['env_x']);
  assert.equal(fact?.trust, 'agent');
  const scratch = await store.memory.get({ tenant: 'default', grants: ALL, scope: `run/${run.id}`, key: 'scratch' }, Date.now());
  assert.ok(scratch?.expiresAt && scratch.expiresAt > Date.now() + 3_500_000, 'ttl 1h');
  const effects = await store.tasks.effects({ runId: run.id });
  assert.deepEqual(
    effects.map((e) => [e.tool, e.state, e.turn, e.action]),
    [
      ['remember', 'completed', 1, 0],
      ['remember', 'completed', 1, 1],
      ['remember', 'completed', 1, 2],
    ],
  );
  const kinds = (await auditOf(store, run.id)).map((a) => a.kind);
  assert.equal(kinds.filter((k) => k === 'memory.written').length, 3);
});

test('memory writes are denied by default and outside grants: POLICY_DENIED by rule "grants", nothing written, audited', async (t) => {
  const r = reg({
    nobody: { fn: acting([{ type: 'remember', scope: 'team/research', key: 'k', value: 1 }]) },
    outsider: { fn: acting([{ type: 'remember', scope: 'team/ops', key: 'k', value: 1 }, { type: 'remember', scope: 'agent/other/x', key: 'k', value: 1 }]), memory: WRITER },
  });
  const store = await setup(t, r);
  for (const agent of ['nobody', 'outsider']) {
    const run = await submit(store, r, agent);
    const done = await finished(store, run.id);
    for (const o of done.output as Array<{ error: string }>) assert.equal(o.error, 'POLICY_DENIED');
    const audit = await auditOf(store, run.id);
    const decisions = audit.filter((a) => a.kind === 'policy.decision').map((a) => (a.data as { ruleId: string; effect: string }));
    assert.ok(decisions.length > 0 && decisions.every((d) => d.ruleId === 'grants' && d.effect === 'deny'));
    assert.deepEqual(await store.tasks.effects({ runId: run.id }), []);
  }
  assert.deepEqual(await store.memory.search({ tenant: 'default', grants: ALL, query: 'k', k: 10 }, Date.now()), []);
  const { rows } = await forge(store, 'SELECT COUNT(*) AS n FROM memory_versions');
  assert.equal(Number((rows[0] as { n: number }).n), 0);
});

test('bad writes get a clear error and write nothing: unknown scope form, oversized value, a value breaking the scope’s contract, a bad ttl', async (t) => {
  const contracts = new ContractRegistry();
  contracts.add('finding@1', { schema: { type: 'object', required: ['claim'], properties: { claim: { type: 'string' } } } });
  const r = reg(
    {
      sloppy: {
        fn: acting([
          { type: 'remember', scope: 'teams/research', key: 'a', value: 1 },
          { type: 'remember', scope: 'team/research', key: 'big', value: 'x'.repeat(2000) },
          { type: 'remember', scope: 'team/research/findings', key: 'f', value: { nope: true } },
          { type: 'remember', scope: 'team/research', key: 't', value: 1, ttl: 'soon' },
        ]),
        memory: { read: ['*'], write: ['*'] },
      },
    },
    { contracts, scopes: [{ match: 'team/research/findings/*', onConflict: 'reject', contract: 'finding@1', mergeAgent: null }, { match: 'team/research/findings', onConflict: 'reject', contract: 'finding@1', mergeAgent: null }] },
  );
  const store = await setup(t, r);
  const run = await submit(store, r, 'sloppy');
  const done = await finished(store, run.id);
  const out = done.output as Array<{ error: string; details: Json }>;
  assert.deepEqual(
    out.map((o) => o.error),
    ['INVALID_SCOPE', 'VALUE_TOO_LARGE', 'CONTRACT_VIOLATION', 'INVALID_INPUT'],
  );
  const { rows } = await forge(store, 'SELECT COUNT(*) AS n FROM memory_versions');
  assert.equal(Number((rows[0] as { n: number }).n), 0, 'nothing written');
  const audit = await auditOf(store, run.id);
  assert.equal(audit.filter((a) => a.kind === 'contract.rejected').length, 3, 'the form, the size and the contract are refused at the contract stage');
});

test('a lost compare-and-set comes back as MEMORY_CONFLICT holding both versions; the conflict is in the merge queue; writing back what was handed is a no-op', async (t) => {
  const seen: TurnInput[] = [];
  const r = reg({
    racer: { fn: acting([{ type: 'remember', scope: 'team/research', key: 'doc', value: { mine: true }, expectedVersion: 1 }]), memory: WRITER },
    echo: {
      fn: (input) => {
        seen.push(structuredClone(input));
        const f = input.memory[0] as { scope: string; key: string; value: Json; text: string; version: number };
        if (input.task.turn === 1) return { actions: [{ type: 'remember', scope: f.scope, key: f.key, value: f.value, text: f.text, expectedVersion: f.version }] };
        return { output: input.results[0]!.ok ? input.results[0]!.value : null };
      },
      memory: WRITER,
      recall: [{ scope: 'team/research', query: 'theirs', k: 3 }],
    },
  });
  const store = await setup(t, r);
  const now = Date.now();
  const by = { agent: 'other', run: null, task: null, turn: null, actor: 'op' };
  await store.memory.write({ tenant: 'default', scope: 'team/research', key: 'doc', value: { theirs: 1 }, text: 'theirs one', trust: 'owner', writtenBy: by, onConflict: 'reject' }, now);
  await store.memory.write({ tenant: 'default', scope: 'team/research', key: 'doc', value: { theirs: 2 }, text: 'theirs two', trust: 'owner', writtenBy: by, onConflict: 'reject' }, now + 1);
  const run = await submit(store, r, 'racer');
  const done = await finished(store, run.id);
  const [res] = done.output as Array<{ error: string; details: { yours: Json; theirs: { version: number; value: Json }; conflict: string } }>;
  assert.equal(res!.error, 'MEMORY_CONFLICT');
  assert.deepEqual(res!.details.yours, { mine: true });
  assert.deepEqual(res!.details.theirs.value, { theirs: 2 });
  assert.equal(res!.details.theirs.version, 2);
  const queue = await store.memory.conflicts({ tenant: 'default' });
  assert.deepEqual(queue.map((c) => c.id), [res!.details.conflict]);

  const echo = await submit(store, r, 'echo');
  const echoed = await finished(store, echo.id);
  assert.deepEqual(echoed.output && (echoed.output as { written: boolean; version: number }).written, false, 'unchanged: no new version');
  assert.equal((await store.memory.history({ tenant: 'default', grants: ALL, scope: 'team/research', key: 'doc' })).length, 2);
});

test('declared recall hands the turn facts from an earlier run, with version and provenance, and only under read grants', async (t) => {
  const seen: TurnInput[] = [];
  const recaller: AgentFunction = (input) => {
    seen.push(structuredClone(input));
    return { output: (input.memory as Array<{ key: string }>).map((m) => m.key) };
  };
  const r = reg({
    researcher: {
      fn: acting([
        { type: 'remember', scope: 'team/research', key: 'orchestrators', value: { best: 'durable' }, text: 'durable orchestrators survive crashes' },
        { type: 'remember', scope: 'agent/self', key: 'private', value: 1, text: 'durable private note' },
      ]),
      memory: { read: ['team/research/*'], write: ['team/research/*', 'agent/self/*'] },
    },
    critic: { fn: recaller, memory: { read: ['team/research/*'], write: [] }, recall: [{ scope: null, query: '{{input.text}}', k: 5 }] },
    stranger: { fn: recaller, memory: { read: ['team/ops/*'], write: [] }, recall: [{ scope: null, query: '{{input.text}}', k: 5 }] },
  });
  const store = await setup(t, r);
  const first = await submit(store, r, 'researcher');
  assert.equal((await finished(store, first.id)).state, 'succeeded');
  const second = await submit(store, r, 'critic', { text: 'are durable orchestrators worth it?' });
  const done = await finished(store, second.id);
  assert.deepEqual(done.output, ['orchestrators'], 'the team fact, not the researcher’s private note');
  const m = seen[0]!.memory[0] as { id: string; version: number; writtenBy: { run: string; agent: string }; score: number };
  assert.equal(m.version, 1);
  assert.equal(m.writtenBy.run, first.id, 'provenance: the run that wrote it');
  assert.equal(m.writtenBy.agent, 'researcher');
  assert.ok(m.id.startsWith('fact'));
  assert.deepEqual(seen[0]!.grants.memory, { read: ['team/research/*'], write: [] });
  const third = await submit(store, r, 'stranger', { text: 'durable orchestrators' });
  assert.deepEqual((await finished(store, third.id)).output, [], 'no read grant on team/research: nothing recalled');
});

test('recall on demand: a search and a get by key, asOf, under read grants', async (t) => {
  const r = reg({
    reader: {
      fn: acting([
        { type: 'recall', query: 'pricing', k: 5 },
        { type: 'recall', scope: 'team/research', key: 'pricing' },
        { type: 'recall', scope: 'team/research', key: 'pricing', asOf: 1500 },
        { type: 'recall', scope: 'team/ops', key: 'secret' },
      ]),
      memory: { read: ['team/research/*'], write: [] },
    },
  });
  const store = await setup(t, r);
  const by = { agent: 'other', run: null, task: null, turn: null, actor: 'op' };
  const w = (scope: string, key: string, value: Json, text: string, at: number) => store.memory.write({ tenant: 'default', scope, key, value, text, trust: 'owner', writtenBy: by, onConflict: 'reject' }, at);
  await w('team/research', 'pricing', 10, 'pricing ten', 1000);
  await w('team/research', 'pricing', 12, 'pricing twelve', 2000);
  await w('team/ops', 'secret', 1, 'pricing secret', 1000);
  const run = await submit(store, r, 'reader');
  const out = (await finished(store, run.id)).output as [Array<{ scope: string; value: Json }>, { value: Json }, { value: Json }, null];
  assert.deepEqual(out[0].map((h) => [h.scope, h.value]), [['team/research', 12]]);
  assert.equal(out[1].value, 12);
  assert.equal(out[2].value, 10);
  assert.equal(out[3], null, 'outside the read grants reads as absent');
});

test('a SIGKILL between remember and the turn’s commit: after resume the fact exists once', { timeout: 180_000 }, async (t) => {
  for (const faults of ['after-effect-before-commit', 'after-decision-before-effect']) {
    const { store, dir, url, cleanup } = await tempStore('strict');
    const data = join(dir, 'data');
    mkdirSync(data);
    const children = new Children();
    t.after(async () => {
      await children.killAll();
      await cleanup();
    });
    const { run } = await store.runs.create({ agent: 'scribe', input: null, maxAttempts: 3, actor: 'test' }, Date.now());
    const faulted = children.spawn({ db: url, dir: data, scenario: 'remember', leaseMs: 1_000, heartbeatMs: 200, faults });
    // The fault point kills the child: its exit is the event (a fault that never fires hits the test's timeout).
    const exit = await faulted.exited;
    assert.equal(exit.signal, 'SIGKILL', `the fault ${faults} killed the worker; stderr:\n${faulted.stderr()}`);
    const clean = children.spawn({ db: url, dir: data, scenario: 'remember', leaseMs: 1_000, heartbeatMs: 200 });
    const done = await waitForRun(store, run.id, { pollMs: 20 });
    await children.kill(clean);
    assert.equal(done.state, 'succeeded', `${faults}: ${JSON.stringify(done.error)}`);
    const history = await store.memory.history({ tenant: 'default', grants: ALL, scope: 'team/notes', key: 'finding' });
    assert.equal(history.length, 1, `${faults}: one version`);
    assert.equal((done.output as { version: number }).version, 1);
    const effects = await store.tasks.effects({ runId: run.id });
    assert.equal(effects.length, 1);
    assert.equal(effects[0]!.state, 'completed');
  }
});

test('the gates stage runs on remember, after policy and before the write: a blocking gate refuses it and nothing is written', async (t) => {
  const seen: string[] = [];
  const noSecrets: Gate = {
    id: 'no-secrets',
    on: 'remember',
    applies: () => true,
    check: async (subject) => {
      seen.push(subject.name);
      return JSON.stringify(subject.value).includes('password') ? { verdict: 'fail' as const, reasons: ['looks like a secret'] } : { verdict: 'pass' as const };
    },
  };
  const r = reg(
    {
      leaky: {
        fn: acting([
          { type: 'remember', scope: 'team/research', key: 'creds', value: { password: 'hunter2' } },
          { type: 'remember', scope: 'team/research', key: 'fine', value: { ok: true } },
          { type: 'remember', scope: 'team/ops', key: 'denied', value: { password: 'x' } },
        ]),
        memory: WRITER,
      },
    },
    { gates: [noSecrets] },
  );
  const store = await setup(t, r);
  const run = await submit(store, r, 'leaky');
  const out = (await finished(store, run.id)).output as Array<{ error?: string; written?: boolean }>;
  assert.deepEqual(out.map((o) => o.error ?? o.written), ['GATE_BLOCKED', true, 'POLICY_DENIED']);
  assert.deepEqual(seen, ['team/research', 'team/research'], 'a write outside the grants never reaches the gates');
  assert.equal(await store.memory.get({ tenant: 'default', grants: ALL, scope: 'team/research', key: 'creds' }, Date.now()), null);
  const blocked = (await auditOf(store, run.id)).filter((a) => a.kind === 'gate.verdict' && (a.data as { outcome?: string }).outcome === 'block');
  assert.equal(blocked.length, 1, 'the block is audited');
});
