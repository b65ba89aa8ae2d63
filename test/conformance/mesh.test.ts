// Direct paths (the mesh, docs/mesh.md) on a real store (SQLite; PostgreSQL under
// `npm run test:pg`): a declared pair answers inside the caller's task with no child
// task; the shadow records bracket it in the audit trail; undeclared pairs, hops past
// the limit, cycles, a spent pair rate, contract violations and effects are refused
// and audited, never routed through the hub.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { meshLog } from '../../src/audit/mesh-log.ts';
import { why } from '../../src/audit/why.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { MeshPath } from '../../src/core/mesh.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import { ContractRegistry } from '../../src/contracts/registry.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import { compilePolicy, policySchema } from '../../src/policy/rules.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import type { Registry } from '../../src/engine/options.ts';
import type { AuditEvent } from '../../src/store/audit.ts';
import type { SqlStore } from '../../src/store/sql/sql-store.ts';
import type { Store } from '../../src/store/store.ts';
import { auditOf, clocked, finished, forge, harness, registry, submit, TEST_DB } from '../helpers.ts';
import type { AgentFunction } from '../../src/core/agent.ts';

const meshed = (reg: Registry, mesh: MeshPath[]): Registry => ({ ...reg, mesh });
const path = (from: string, to: string, o: Partial<MeshPath> = {}): MeshPath => ({ from, to, maxPerMinute: 1_000, maxHops: 1, ...o });
const data = (e: AuditEvent): Record<string, Json> => (e.data ?? {}) as Record<string, Json>;
const meshEvents = async (store: Store, runId: string) => (await auditOf(store, runId)).filter((e) => e.kind.startsWith('mesh.'));

/** An agent that makes the given calls on its first turn and answers with their results on its second. */
function caller(calls: Array<{ agent: string; input?: Json; contract?: string }>): AgentFunction {
  return (input) =>
    input.task.turn === 1
      ? { actions: calls.map((c, i) => ({ type: 'call_agent' as const, ...c, id: `c${i}` })) }
      : { output: input.results.map((r: ActionResult) => (r.ok ? r.value : { code: r.error.code, reason: (r.error.details as { reason?: Json } | undefined)?.reason ?? null })) };
}

describe('a declared path', () => {
  it('answers inside the caller’s task: no child task, and mesh.call / mesh.reply bracket the call', async (t) => {
    let seen: TurnInput | null = null;
    const reg = meshed(
      registry({
        lead: caller([{ agent: 'pricer', input: { sku: 'a' } }]),
        pricer: (input) => {
          seen = structuredClone(input);
          return { output: { price: 42 }, usage: { costUsd: 0.001 } };
        },
      }),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.output, [{ price: 42 }]);

    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    assert.equal(tasks.length, 1, 'no child task');
    const callee = seen as TurnInput | null;
    assert.equal(callee!.task.parentId, run.rootTaskId);
    assert.deepEqual(callee!.task.input, { sku: 'a' });

    const events = await meshEvents(store, run.id);
    assert.deepEqual(events.map((e) => e.kind), ['mesh.call', 'mesh.reply']);
    const [call, reply] = events as [AuditEvent, AuditEvent];
    assert.equal(data(call).key, `${run.id}/${run.rootTaskId}/1/0`);
    assert.equal(data(reply).key, data(call).key);
    assert.equal(data(reply).call, data(call).call);
    assert.equal(data(call).hop, 1);
    assert.deepEqual(data(call).chain, ['lead', 'pricer']);
    assert.equal(data(reply).ok, true);
    assert.equal(call.taskId, run.rootTaskId);
    // The caller's turn input named what it may call directly.
    const root = await store.tasks.get(run.rootTaskId);
    assert.equal(root!.state, 'succeeded');
  });

  it('the caller’s grants list the agents it may call', async (t) => {
    let grants: TurnInput['grants'] | null = null;
    const reg = meshed(
      registry({
        lead: (input) => {
          grants = input.grants;
          return { output: null };
        },
        pricer: () => ({ output: 1 }),
      }),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    await finished(store, (await submit(store, reg, 'lead')).id);
    assert.deepEqual((grants as TurnInput['grants'] | null)!.mesh, ['pricer']);
  });
});

describe('refusals', () => {
  it('a pair that is not declared is refused and audited; the callee never runs and no child task is made', async (t) => {
    let ran = 0;
    const reg = meshed(
      registry({
        lead: caller([{ agent: 'other' }]),
        pricer: () => ({ output: 1 }),
        other: () => {
          ran++;
          return { output: 2 };
        },
      }),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, [{ code: 'MESH_REFUSED', reason: 'undeclared' }]);
    assert.equal(ran, 0);
    assert.equal((await store.tasks.list({ runId: run.id, limit: 10 })).length, 1);
    const events = await meshEvents(store, run.id);
    assert.deepEqual(events.map((e) => [e.kind, data(e).reason]), [['mesh.refused', 'undeclared']]);
  });

  it('a nested call past the pair’s hop limit is refused; within it, it passes', async (t) => {
    const mid: AgentFunction = (input) =>
      input.task.turn === 1 ? { actions: [{ type: 'call_agent', agent: 'leaf', input: null }] } : { output: input.results[0]!.ok ? { leaf: input.results[0]!.value } : { code: input.results[0]!.error.code, reason: (input.results[0]!.error.details as { reason: Json }).reason } };
    const agents = { lead: caller([{ agent: 'mid' }]), mid, leaf: () => ({ output: 'leaf' }) };

    const tight = meshed(registry(agents), [path('lead', 'mid'), path('mid', 'leaf', { maxHops: 1 })]);
    const a = await harness(t, tight);
    const r1 = await submit(a.store, tight, 'lead');
    assert.deepEqual((await finished(a.store, r1.id)).output, [{ code: 'MESH_REFUSED', reason: 'hops' }]);
    const ev1 = await meshEvents(a.store, r1.id);
    assert.deepEqual(ev1.map((e) => e.kind), ['mesh.call', 'mesh.refused', 'mesh.reply']);
    assert.equal(data(ev1[1]!).hop, 2);

    const loose = meshed(registry(agents), [path('lead', 'mid'), path('mid', 'leaf', { maxHops: 2 })]);
    const b = await harness(t, loose);
    const r2 = await submit(b.store, loose, 'lead');
    assert.deepEqual((await finished(b.store, r2.id)).output, [{ leaf: 'leaf' }]);
    const ev2 = await meshEvents(b.store, r2.id);
    assert.deepEqual(ev2.map((e) => [e.kind, data(e).from as string, data(e).to as string].join(":")), ['mesh.call:lead:mid', 'mesh.call:mid:leaf', 'mesh.reply:mid:leaf', 'mesh.reply:lead:mid']);
    // The nested call names the call it was made in.
    assert.equal(data(ev2[1]!).parent, data(ev2[0]!).call);
    assert.deepEqual(data(ev2[1]!).chain, ['lead', 'mid', 'leaf']);
  });

  it('a call back to an agent already on the chain is a cycle, refused even when the pair is declared', async (t) => {
    let leadTurns = 0;
    const reg = meshed(
      registry({
        lead: (input) => {
          leadTurns++;
          return input.task.turn === 1 ? { actions: [{ type: 'call_agent', agent: 'mid' }] } : { output: input.results[0]!.ok ? input.results[0]!.value : input.results[0]!.error.code };
        },
        mid: (input) =>
          input.task.turn === 1 ? { actions: [{ type: 'call_agent', agent: 'lead' }] } : { output: (input.results[0]!.ok ? 'ok' : (input.results[0]!.error.details as { reason: Json }).reason) },
      }),
      [path('lead', 'mid', { maxHops: 3 }), path('mid', 'lead', { maxHops: 3 })],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    assert.equal((await finished(store, run.id)).output, 'cycle');
    assert.equal(leadTurns, 2, 'lead ran only as the task, never as a callee');
    const refused = (await meshEvents(store, run.id)).filter((e) => e.kind === 'mesh.refused');
    assert.deepEqual(refused.map((e) => [data(e).reason, data(e).chain]), [['cycle', ['lead', 'mid', 'lead']]]);
  });

  it('a callee that asks for an effect is refused: a direct call has no effects ledger', async (t) => {
    let ran = 0;
    const reg = meshed(
      registry({ lead: caller([{ agent: 'pricer' }]), pricer: () => ({ actions: [{ type: 'tool', tool: 'charge', input: 1 }] }) }, { charge: () => ran++ }),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    assert.deepEqual((await finished(store, run.id)).output, [{ code: 'MESH_REFUSED', reason: 'effects' }]);
    assert.equal(ran, 0);
    const reply = (await meshEvents(store, run.id)).find((e) => e.kind === 'mesh.reply')!;
    assert.equal(data(reply).ok, false);
    assert.equal(data(reply).code, 'MESH_REFUSED');
  });
});

describe('contracts on a direct call', () => {
  const contracts = () => {
    const c = new ContractRegistry();
    assert.deepEqual(c.add('quote.in@1', { schema: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } }), []);
    assert.deepEqual(c.add('quote.out@1', { schema: { type: 'object', required: ['price'], properties: { price: { type: 'number' } } } }), []);
    return c;
  };

  it('a payload that breaks the callee’s input contract is refused before the callee runs', async (t) => {
    let ran = 0;
    const reg = meshed(
      registry(
        {
          lead: caller([{ agent: 'pricer', input: { sku: 7 } }]),
          pricer: {
            input: 'quote.in@1',
            fn: () => {
              ran++;
              return { output: { price: 1 } };
            },
          },
        },
        {},
        { contracts: contracts() },
      ),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    assert.deepEqual((await finished(store, run.id)).output, [{ code: 'CONTRACT_VIOLATION', reason: null }]);
    assert.equal(ran, 0);
    const events = await auditOf(store, run.id);
    const rejected = events.find((e) => e.kind === 'contract.rejected');
    assert.equal(data(rejected!).contract, 'quote.in@1');
    const refused = events.filter((e) => e.kind === 'mesh.refused');
    assert.deepEqual(refused.map((e) => [data(e).reason, data(e).code]), [['boundary', 'CONTRACT_VIOLATION']]);
    assert.equal(events.filter((e) => e.kind === 'mesh.call').length, 0, 'nothing was forwarded');
  });

  it('an answer that breaks the callee’s output contract reaches the caller as a violation, with mesh.reply ok false', async (t) => {
    const reg = meshed(
      registry({ lead: caller([{ agent: 'pricer', input: { sku: 'a' } }]), pricer: { input: 'quote.in@1', output: 'quote.out@1', fn: () => ({ output: { price: 'free' } }) } }, {}, { contracts: contracts() }),
      [path('lead', 'pricer')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    assert.deepEqual((await finished(store, run.id)).output, [{ code: 'CONTRACT_VIOLATION', reason: null }]);
    const reply = (await meshEvents(store, run.id)).find((e) => e.kind === 'mesh.reply')!;
    assert.deepEqual([data(reply).ok, data(reply).code], [false, 'CONTRACT_VIOLATION']);
  });
});

describe('the per-pair rate', () => {
  it('refuses calls past maxPerMinute on that pair only, and lets one through again once a token refills', async (t) => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const reg = meshed(
      registry({ lead: caller([{ agent: 'b' }, { agent: 'b' }, { agent: 'b' }, { agent: 'c' }]), b: () => ({ output: 'b' }), c: () => ({ output: 'c' }) }),
      [path('lead', 'b', { maxPerMinute: 2 }), path('lead', 'c', { maxPerMinute: 2 })],
    );
    const { store, worker } = await clocked(t, reg, clock);
    const { run } = await submitRun(store, reg, { agent: 'lead', input: null }, clock.now());
    await worker.runOnce();
    const first = (await store.runs.get(run.id))!;
    assert.deepEqual(first.output, ['b', 'b', { code: 'MESH_REFUSED', reason: 'rate' }, 'c']);
    const refused = (await meshEvents(store, run.id)).filter((e) => e.kind === 'mesh.refused');
    assert.equal(refused.length, 1);
    assert.deepEqual([data(refused[0]!).reason, data(refused[0]!).to], ['rate', 'b']);

    // 2 per minute: one token back after 30 s, not before.
    clock.advance(29_000);
    const { run: early } = await submitRun(store, reg, { agent: 'lead', input: null }, clock.now());
    await worker.runOnce();
    assert.deepEqual((await store.runs.get(early.id))!.output, [{ code: 'MESH_REFUSED', reason: 'rate' }, { code: 'MESH_REFUSED', reason: 'rate' }, { code: 'MESH_REFUSED', reason: 'rate' }, 'c']);
    clock.advance(31_000);
    const { run: later } = await submitRun(store, reg, { agent: 'lead', input: null }, clock.now());
    await worker.runOnce();
    const out = (await store.runs.get(later.id))!.output as Json[];
    assert.equal(out[0], 'b');
  });
});

describe('the traffic, as the trail shows it', () => {
  it('the mesh log lists the shadow records newest first, and spine why shows the call from the task and from its key', async (t) => {
    const reg = meshed(registry({ lead: caller([{ agent: 'pricer' }, { agent: 'nobody' }]), pricer: () => ({ output: 7 }) }), [path('lead', 'pricer')]);
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    await finished(store, run.id);

    const log = await meshLog(store, { runId: run.id, limit: 10 });
    assert.deepEqual(log.map((e) => [e.kind, e.from, e.to, e.ok, e.reason]), [
      ['mesh.refused', 'lead', 'nobody', null, 'undeclared'],
      ['mesh.reply', 'lead', 'pricer', true, null],
      ['mesh.call', 'lead', 'pricer', null, null],
    ]);
    const page = await meshLog(store, { runId: run.id, limit: 1, before: log[0]!.seq });
    assert.deepEqual(page.map((e) => e.kind), ['mesh.reply']);

    const fromTask = await why(store, run.rootTaskId, { publicKey: null, now: Date.now() });
    const steps = fromTask.steps.filter((s) => s.kind === 'mesh');
    assert.deepEqual(steps.map((s) => s.summary), ['direct call lead → pricer: answered', 'direct call lead → nobody: refused (undeclared)']);
    assert.deepEqual(steps[0]!.events.map((e) => e.kind), ['mesh.call', 'mesh.reply']);
    assert.ok(steps[0]!.events.every((e) => e.verified), 'the shadow records are in the hash chain and verify');

    const key = `${run.id}/${run.rootTaskId}/1/0`;
    const fromKey = await why(store, key, { publicKey: null, now: Date.now() });
    assert.deepEqual(fromKey.target, { kind: 'mesh', id: key });
    assert.deepEqual(fromKey.steps.slice(0, 3).map((s) => s.kind), ['mesh', 'action', 'turn']);
    assert.equal(fromKey.verdict, 'clean');
    // A key in the run with neither a ledger entry nor shadow records is not found.
    await assert.rejects(why(store, `${run.id}/${run.rootTaskId}/1/9`, { publicKey: null, now: Date.now() }), { code: 'NOT_FOUND' });
  });

  it('the log across runs lists only mesh events, through the partial index over their kinds (no index on every event’s kind)', async (t) => {
    const reg = meshed(registry({ lead: caller([{ agent: 'pricer' }]), pricer: () => ({ output: 7 }) }), [path('lead', 'pricer')]);
    const { store } = await harness(t, reg);
    const first = await submit(store, reg, 'lead');
    await finished(store, first.id);
    const second = await submit(store, reg, 'lead');
    await finished(store, second.id);
    const log = await meshLog(store, { limit: 10 });
    assert.deepEqual(log.map((e) => [e.kind, e.runId]), [
      ['mesh.reply', second.id],
      ['mesh.call', second.id],
      ['mesh.reply', first.id],
      ['mesh.call', first.id],
    ]);
    // The query states the index's predicate literally (migration 0015), so the planner can use it.
    const query = "SELECT * FROM audit_events WHERE kind >= 'mesh.' AND kind < 'mesh/' AND seq < 1000000 ORDER BY seq DESC LIMIT 10";
    // (PostgreSQL would scan a table this small whole; told not to, it must find the index.)
    const plan =
      TEST_DB === 'postgres'
        ? await (store as SqlStore).backend.transaction(async (tx) => {
            await tx.exec('SET LOCAL enable_seqscan = off');
            return tx.all(`EXPLAIN ${query}`);
          })
        : (await forge(store, `EXPLAIN QUERY PLAN ${query}`)).rows;
    assert.match(JSON.stringify(plan), /audit_mesh_idx/);
    const { rows } = await forge<{ n: number | string }>(
      store,
      TEST_DB === 'postgres' ? "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'audit_kind_idx' AND schemaname = current_schema()" : "SELECT count(*) AS n FROM sqlite_master WHERE name = 'audit_kind_idx'",
    );
    assert.equal(Number(rows[0]!.n), 0);
  });
});

describe('budgets and policy on a direct call', () => {
  it('the callee’s spend is reserved on the caller’s budgets and settled at its reported usage; a policy rule on the handoff refuses the call', async (t) => {
    const issues: FieldIssue[] = [];
    const policy = compilePolicy(
      policySchema.parse({
        rules: [
          { id: 'run-budget', kind: 'cost', scope: 'run', maxUsd: 1 },
          { id: 'no-secrets', kind: 'approval', actions: ['handoff:secret'], tier: 'deny' },
        ],
      }),
      issues,
    );
    assert.deepEqual(issues, []);
    let secretRan = 0;
    const reg = meshed(
      registry(
        {
          lead: caller([{ agent: 'pricer' }, { agent: 'pricer' }, { agent: 'secret' }]),
          pricer: { cost: { micros: 5_000, tokens: 0 }, fn: () => ({ output: 1, usage: { costUsd: 0.002 } }) },
          secret: () => {
            secretRan++;
            return { output: 'x' };
          },
        },
        {},
        { policy },
      ),
      [path('lead', 'pricer'), path('lead', 'secret')],
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, [1, 1, { code: 'POLICY_DENIED', reason: null }]);
    assert.equal(secretRan, 0);
    const spend = await store.limits.runSpend(run.id);
    assert.equal(spend.reservedUsd, 0, 'nothing left reserved');
    assert.equal(Math.round(spend.settledUsd * 1e6), 4_000, 'two calls settled at the callee’s reported $0.002 each');
    const refused = (await meshEvents(store, run.id)).filter((e) => e.kind === 'mesh.refused');
    assert.deepEqual(refused.map((e) => [data(e).reason, data(e).code]), [['boundary', 'POLICY_DENIED']]);
  });
});
