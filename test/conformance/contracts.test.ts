// Contracts at both ends of every crossing: handoff payloads (refused before the
// receiver runs), agent outputs (a failed turn listing every violation, retried with
// the violations fed back, then dead or escalated), tool inputs and outputs, versioned
// upgrades (v1 producer → v2 consumer), the contracts table, and config errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/runtime/config.ts';
import { ContractRegistry, ContractViolationError, parseContractId } from '../../src/contracts/registry.ts';
import { ConfigError, type FieldIssue } from '../../src/core/errors.ts';
import type { ErrorInfo, Json, TurnInput } from '../../src/core/types.ts';
import { auditOf, finished, forge, harness, registry, submit, until } from '../helpers.ts';
import { PROJECT_MODULE } from '../fixtures/policy-project.ts';

const REQUEST_V1 = {
  type: 'object',
  required: ['topic'],
  properties: { topic: { type: 'string', minLength: 3 } },
};
const REQUEST_V2 = {
  type: 'object',
  required: ['topic', 'depth'],
  properties: { topic: { type: 'string', minLength: 3 }, depth: { type: 'integer', minimum: 1 } },
};
const REPORT = {
  type: 'object',
  required: ['summary', 'score'],
  additionalProperties: false,
  properties: {
    summary: { type: 'string' },
    score: { type: 'number', minimum: 0, maximum: 1 },
    tags: { type: 'array', items: { type: 'string' } },
  },
};
const EMAIL = {
  type: 'object',
  required: ['to', 'subject'],
  properties: { to: { type: 'string', format: 'email' }, subject: { type: 'string', maxLength: 20 } },
};

function contracts(): ContractRegistry {
  const c = new ContractRegistry();
  const defs: Array<[string, Json, string[]?]> = [
    ['research.request@1', REQUEST_V1],
    ['research.request@2', REQUEST_V2, ['research.request@1']],
    ['strict.request@2', REQUEST_V2],
    ['report@1', REPORT],
    ['email@1', EMAIL],
    ['unused@1', { type: 'string' }],
  ];
  for (const [id, schema, accepts] of defs) assert.deepEqual(c.add(id, { schema, ...(accepts ? { accepts } : {}) }), []);
  return c;
}

const paths = (v: FieldIssue[] | Json | undefined) => ((v ?? []) as Array<{ path: string }>).map((i) => i.path).sort();
const violationsOf = (e: ErrorInfo) => (e.details as unknown as { violations: FieldIssue[] }).violations;

describe('the contract registry', () => {
  it('names contracts name@version', () => {
    assert.deepEqual(parseContractId('research.request@2'), { name: 'research.request', version: 2, id: 'research.request@2' });
    for (const bad of ['research.request', 'x@0', 'x@v2', '@1', '1x@1']) assert.equal(parseContractId(bad), null, bad);
    const c = new ContractRegistry();
    assert.match(c.add('no-version', { schema: {} })[0]!.message, /name@version/);
  });

  it('lists every violation with its path and message', () => {
    const c = contracts();
    const v = c.violations('report@1', { score: 'high', tags: ['a', 2, 'c', null], extra: true });
    assert.deepEqual(
      v.map((i) => `${i.path}: ${i.message}`).sort(),
      [': must have property "summary"', ': must not have property "extra"', 'score: must be number', 'tags.1: must be string', 'tags.3: must be string'],
    );
    assert.deepEqual(c.violations('report@1', { summary: 's', score: 0.5 }), []);
    const err = new ContractViolationError('email@1', 'input of tool email.send', c.violations('email@1', { to: 'not-an-email', subject: 'x'.repeat(21) }));
    assert.equal(err.code, 'CONTRACT_VIOLATION');
    assert.equal(err.retryable, false, 'bad input from a caller is not retryable');
    assert.deepEqual(paths(err.violations), ['subject', 'to']);
    assert.match(err.message, /input of tool email\.send violates email@1: /);
  });

  it('refuses a schema that is not valid JSON Schema, and reports acceptance as declared', () => {
    const c = contracts();
    const issues = c.add('bad@1', { schema: { type: 'strnig' } });
    assert.equal(issues[0]?.path, 'schema');
    assert.match(issues[0].message, /not a valid JSON Schema/);
    assert.equal(c.has('bad@1'), false);
    assert.equal(c.accepts('research.request@2', 'research.request@1'), true);
    assert.equal(c.accepts('research.request@2', 'research.request@2'), true);
    assert.equal(c.accepts('strict.request@2', 'research.request@1'), false);
    assert.equal(c.accepts('research.request@1', 'research.request@2'), false, 'acceptance is one-way');
  });
});

/** A lead that hands `payload` to `target` (optionally declaring a contract), then reports the result. */
function handoffLead(target: string, payload: Json, contract?: string) {
  const seen: TurnInput[] = [];
  const fn = (input: TurnInput) => {
    seen.push(structuredClone(input));
    if (input.task.turn === 1) return { actions: [{ type: 'handoff' as const, agent: target, input: payload, ...(contract ? { contract } : {}) }] };
    const r = input.results[0]!;
    return { output: r.ok ? { ok: r.value } : { code: r.error.code } };
  };
  return { fn, seen };
}

describe('handoffs are checked before the receiving agent runs', () => {
  async function handoff(t: TestContext, receiverInput: string, payload: Json, declared?: string) {
    const calls: Json[] = [];
    const lead = handoffLead('researcher', payload, declared);
    const reg = registry(
      { lead: lead.fn, researcher: { fn: (input) => (calls.push(input.task.input), { output: 'researched' }), input: receiverInput } },
      {},
      { contracts: contracts() },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const tasks = await store.tasks.list({ runId: run.id, limit: 10 });
    const result = lead.seen[1]!.results[0]!;
    return { done, calls, tasks, result, audit: await auditOf(store, run.id) };
  }

  it('a valid payload reaches the receiver', async (t) => {
    const r = await handoff(t, 'research.request@1', { topic: 'durable queues' });
    assert.deepEqual(r.done.output, { ok: 'researched' });
    assert.deepEqual(r.calls, [{ topic: 'durable queues' }]);
  });

  it('a malformed payload is refused with every violation; no child task, the receiver is never called', async (t) => {
    const r = await handoff(t, 'research.request@2', { topic: 'x', depth: 0 });
    assert.deepEqual(r.done.output, { code: 'CONTRACT_VIOLATION' });
    assert.deepEqual(r.calls, [], 'the receiver never ran');
    assert.deepEqual(
      r.tasks.map((x) => x.agent),
      ['lead'],
      'no child task was created',
    );
    assert.ok(!r.result.ok);
    if (!r.result.ok) {
      assert.deepEqual(paths(violationsOf(r.result.error)), ['depth', 'topic']);
      assert.match(r.result.error.message, /handoff to researcher violates research\.request@2/);
    }
    const rejected = r.audit.find((e) => e.kind === 'contract.rejected');
    assert.equal((rejected?.data as { contract: string }).contract, 'research.request@2');
    assert.ok(r.audit.some((e) => e.kind === 'action.refused' && (e.data as { code: string }).code === 'CONTRACT_VIOLATION'));
  });

  it('v1 producer → v2 consumer that declares `accepts: [v1]`: accepted when the payload satisfies v2', async (t) => {
    const r = await handoff(t, 'research.request@2', { topic: 'queues', depth: 2 }, 'research.request@1');
    assert.deepEqual(r.done.output, { ok: 'researched' });
    assert.deepEqual(r.calls, [{ topic: 'queues', depth: 2 }]);
  });

  it('v1 producer → v2 consumer that declares it: rejected (CONTRACT_VIOLATION) when a v2-required field is missing', async (t) => {
    const r = await handoff(t, 'research.request@2', { topic: 'queues' }, 'research.request@1');
    assert.deepEqual(r.done.output, { code: 'CONTRACT_VIOLATION' });
    assert.deepEqual(r.calls, []);
    if (!r.result.ok) {
      assert.deepEqual(violationsOf(r.result.error), [{ path: '', message: 'must have property "depth"' }]);
      assert.match(r.result.error.message, /violates research\.request@2/);
    }
  });

  it('v1 producer → v2 consumer that does not declare it: rejected (CONTRACT_MISMATCH), even with a payload valid for both', async (t) => {
    const r = await handoff(t, 'strict.request@2', { topic: 'queues', depth: 2 }, 'research.request@1');
    assert.deepEqual(r.done.output, { code: 'CONTRACT_MISMATCH' });
    assert.deepEqual(r.calls, []);
    if (!r.result.ok) assert.match(r.result.error.message, /declared as research\.request@1, but the receiver expects strict\.request@2/);
  });

  it('a payload declared as a v1 it does not satisfy is refused against v1 too', async (t) => {
    const r = await handoff(t, 'research.request@2', { topic: 'q', depth: 3 }, 'research.request@1');
    assert.deepEqual(r.done.output, { code: 'CONTRACT_VIOLATION' });
    assert.deepEqual(r.calls, []);
  });

  it('a handoff declaring an unknown contract is refused', async (t) => {
    const r = await handoff(t, 'research.request@1', { topic: 'queues' }, 'nonexistent@9');
    assert.deepEqual(r.done.output, { code: 'CONTRACT_VIOLATION' });
    assert.deepEqual(r.calls, []);
  });
});

describe('outputs are checked when the turn ends', () => {
  const BAD = { score: 2, tags: ['ok', 7], extra: 'x' };
  const GOOD = { summary: 'fine', score: 0.9 };

  it('a malformed output fails the turn listing every violation, is retried with the violations fed back, then goes dead', async (t) => {
    const seen: TurnInput['task'][] = [];
    const reg = registry({ writer: { fn: (input) => (seen.push(structuredClone(input.task)), { output: BAD }), output: 'report@1', retry: { maxAttempts: 3 } } }, {}, { contracts: contracts() });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'CONTRACT_VIOLATION');
    const expected = [': must have property "summary"', ': must not have property "extra"', 'score: must be <= 1', 'tags.1: must be string'];
    const listed = (e: ErrorInfo | null) => violationsOf(e!).map((v) => `${v.path}: ${v.message}`).sort();
    assert.deepEqual(listed(done.error), expected, 'the final error lists every violation');

    assert.deepEqual(
      seen.map((s) => s.attempt),
      [1, 2, 3],
    );
    assert.equal(seen[0]!.lastError, null);
    for (const s of seen.slice(1)) {
      assert.equal(s.lastError?.code, 'CONTRACT_VIOLATION');
      assert.deepEqual(listed(s.lastError), expected, 'the agent sees exactly what to fix');
    }
    const task = await store.tasks.get(run.rootTaskId);
    assert.equal(task?.state, 'dead');
    assert.equal(task?.output, null, 'the bad output was never committed');
  });

  it('an agent that fixes its output after seeing the violations succeeds', async (t) => {
    const reg = registry(
      { writer: { fn: (input) => ({ output: input.task.lastError?.code === 'CONTRACT_VIOLATION' ? GOOD : BAD }), output: 'report@1' } },
      {},
      { contracts: contracts() },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, GOOD);
  });

  it('with onExhausted: escalate the task waits for a human instead; approving retries it with fresh attempts', async (t) => {
    let fixed = false;
    const attempts: number[] = [];
    const reg = registry(
      {
        writer: {
          fn: (input) => (attempts.push(input.task.attempt), { output: fixed ? GOOD : BAD }),
          output: 'report@1',
          retry: { maxAttempts: 2 },
          onExhausted: 'escalate',
        },
      },
      {},
      { contracts: contracts() },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer');
    await until('task escalated', async () => (await store.tasks.get(run.rootTaskId))?.state === 'escalated');
    const task = (await store.tasks.get(run.rootTaskId))!;
    assert.equal(task.leaseOwner, null, 'an escalated task holds no worker');
    assert.equal(task.error?.code, 'CONTRACT_VIOLATION');
    const [approval, ...more] = await store.approvals.list({ runId: run.id, limit: 10 });
    assert.equal(more.length, 0);
    assert.equal(approval?.kind, 'escalation');
    assert.equal(approval?.state, 'pending');
    assert.match(approval.reason, /writer failed 2 time\(s\) \(CONTRACT_VIOLATION/);
    assert.deepEqual(attempts, [1, 2]);
    assert.equal((await store.runs.get(run.id))?.state, 'running', 'an escalated run is not failed');

    fixed = true;
    await store.approvals.decide(approval.id, { approve: true, actor: 'ops-lead', reason: 'try again' }, Date.now());
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, GOOD);
    assert.deepEqual(attempts, [1, 2, 1], 'a fresh attempt');
  });

  it('denying the escalation dead-letters the task', async (t) => {
    const reg = registry({ writer: { fn: () => ({ output: BAD }), output: 'report@1', retry: { maxAttempts: 1 }, onExhausted: 'escalate' } }, {}, { contracts: contracts() });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'writer');
    await until('escalation requested', async () => (await store.approvals.list({ runId: run.id, state: 'pending', limit: 1 })).length === 1);
    const [approval] = await store.approvals.list({ runId: run.id, limit: 1 });
    await store.approvals.decide(approval!.id, { approve: false, actor: 'ops-lead' }, Date.now());
    const done = await finished(store, run.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'CONTRACT_VIOLATION');
    assert.equal((await store.tasks.get(run.rootTaskId))?.state, 'dead');
  });

  it('a child whose output breaks its contract fails; the parent receives the violation as the handoff result', async (t) => {
    const lead = handoffLead('writer', null);
    const reg = registry({ lead: lead.fn, writer: { fn: () => ({ output: { summary: 3, score: 0 } }), output: 'report@1', retry: { maxAttempts: 1 } } }, {}, { contracts: contracts() });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, { code: 'CONTRACT_VIOLATION' });
    const r = lead.seen[1]!.results[0]!;
    assert.ok(!r.ok && paths(violationsOf(r.error)).join() === 'summary', JSON.stringify(r));
  });
});

describe('tool contracts', () => {
  it('a tool input that breaks its contract is refused as the result; the tool never runs and nothing is recorded', async (t) => {
    const sent: Json[] = [];
    const seen: TurnInput[] = [];
    const reg = registry(
      {
        mailer: (input) => {
          seen.push(structuredClone(input));
          if (input.task.turn === 1) {
            return {
              actions: [
                { type: 'tool', tool: 'email.send', input: { to: 'nobody', subject: 'x'.repeat(30) } },
                { type: 'tool', tool: 'email.send', input: { to: 'ops@acme.com', subject: 'hello' } },
              ],
            };
          }
          return { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) };
        },
      },
      { 'email.send': { run: (input) => (sent.push(input), 'sent'), input: 'email@1' } },
      { contracts: contracts() },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'mailer');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, ['CONTRACT_VIOLATION', 'sent']);
    assert.deepEqual(sent, [{ to: 'ops@acme.com', subject: 'hello' }]);
    const refused = seen[1]!.results[0]!;
    assert.ok(!refused.ok);
    if (!refused.ok) {
      assert.deepEqual(paths(violationsOf(refused.error)), ['subject', 'to']);
      assert.match(refused.error.message, /input of tool email\.send violates email@1/);
    }
    const effects = await store.tasks.effects({ runId: run.id });
    assert.deepEqual(
      effects.map((e) => e.action),
      [1],
      'only the valid call is in the ledger',
    );
  });

  it('a tool output that breaks its contract reaches the agent as a violation, not as a value', async (t) => {
    const reg = registry(
      {
        a: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'summarise' }] } : { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) }),
      },
      { summarise: { run: () => ({ summary: 'x', score: 'great' }), output: 'report@1' } },
      { contracts: contracts() },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'a');
    const done = await finished(store, run.id);
    assert.deepEqual(done.output, ['CONTRACT_VIOLATION']);
    assert.ok((await auditOf(store, run.id)).some((e) => e.kind === 'contract.rejected' && (e.data as { tool?: string }).tool === 'summarise'));
  });
});

test('contracts are recorded in the store when first used, once, with their schema and digest', async (t) => {
  const lead = handoffLead('researcher', { topic: 'queues' });
  const reg = registry(
    { lead: lead.fn, researcher: { fn: () => ({ output: { summary: 's', score: 1 } }), input: 'research.request@1', output: 'report@1' } },
    {},
    { contracts: contracts() },
  );
  const { store } = await harness(t, reg);
  const read = async () =>
    (await forge<{ id: string; digest: string; schema: string; first_used_at: number }>(store, 'SELECT id, digest, schema, first_used_at FROM contracts ORDER BY id')).rows;
  assert.deepEqual(await read(), [], 'nothing is recorded before use');
  const first = await finished(store, (await submit(store, reg, 'lead')).id);
  assert.equal(first.state, 'succeeded', JSON.stringify(first.error));
  const rows = await read();
  assert.deepEqual(
    rows.map((r) => r.id),
    ['report@1', 'research.request@1'],
    'only the contracts that were used',
  );
  assert.deepEqual(JSON.parse(rows.find((r) => r.id === 'report@1')!.schema), REPORT);
  assert.equal(rows[0]!.digest, contracts().get('report@1')!.digest);
  await finished(store, (await submit(store, reg, 'lead')).id);
  assert.deepEqual(await read(), rows, 'a second use changes nothing');
});

describe('contract config errors are refused at start-up, naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-contract-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  async function issuesFor(config: Record<string, Json>): Promise<FieldIssue[]> {
    const file = join(dir, `c${n++}.json5`);
    writeFileSync(file, JSON.stringify(config));
    try {
      await loadConfig(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues;
    }
    assert.fail('the config was accepted');
  }
  const agent = (extra: Record<string, Json> = {}) => ({ kind: 'function', module: PROJECT_MODULE, export: 'payer', ...extra });

  it('a malformed schema, an unknown contract referenced by an agent or tool, an unknown accepted version, a bad contract name', async () => {
    const issues = await issuesFor({
      contracts: {
        'a.in@1': { schema: { type: 'object', properties: { x: { type: 'nope' } } } },
        'a.out@2': { schema: { type: 'object' }, accepts: ['a.out@1'] },
        'noversion': { schema: {} },
        'from-file@1': { schema: 'missing-schema.json' },
      },
      agents: { writer: agent({ input: 'a.in@1', output: 'a.out@3' }) },
      tools: { 'x.y': { module: PROJECT_MODULE, export: 'paymentsSend', input: 'ghost@1' } },
    });
    const byPath = new Map(issues.map((i) => [i.path, i.message]));
    assert.match(byPath.get('contracts.noversion') ?? '', /name@version/, JSON.stringify(issues));
    // The record key failed its pattern: the schema stops there. Fix it and look again.
    const second = await issuesFor({
      contracts: {
        'a.in@1': { schema: { type: 'object', properties: { x: { type: 'nope' } } } },
        'a.out@2': { schema: { type: 'object' }, accepts: ['a.out@1'] },
        'from-file@1': { schema: 'missing-schema.json' },
      },
      agents: { writer: agent({ input: 'a.in@1', output: 'a.out@3' }) },
      tools: { 'x.y': { module: PROJECT_MODULE, export: 'paymentsSend', input: 'ghost@1' } },
    });
    const got = new Map(second.map((i) => [i.path, i.message]));
    assert.match(got.get('contracts.a.in@1.schema') ?? '', /not a valid JSON Schema/, JSON.stringify(second));
    assert.match(got.get('contracts.a.out@2.accepts.0') ?? '', /unknown contract a\.out@1/);
    assert.match(got.get('contracts.from-file@1.schema') ?? '', /cannot read a JSON Schema/);
    assert.match(got.get('agents.writer.output') ?? '', /unknown contract a\.out@3/);
    assert.match(got.get('tools.x.y.input') ?? '', /unknown contract ghost@1/);
    assert.equal(got.has('agents.writer.input'), false, 'a declared contract is fine even if its schema is bad (reported once, at the schema)');
  });

  it('an agent naming an undeclared input contract', async () => {
    const issues = await issuesFor({ agents: { writer: agent({ input: 'research.request@1' }) } });
    assert.deepEqual(issues, [{ path: 'agents.writer.input', message: 'unknown contract research.request@1 (declared: none)' }]);
  });

  it('a schema read from a file next to the config is accepted and enforced', async () => {
    writeFileSync(join(dir, 'req.json'), JSON.stringify(REQUEST_V1));
    const file = join(dir, 'ok.json5');
    writeFileSync(file, JSON.stringify({ contracts: { 'req@1': { schema: 'req.json' } }, agents: { writer: agent({ input: 'req@1' }) } }));
    const { registry: reg } = await loadConfig(file);
    assert.deepEqual(paths(reg.contracts.violations('req@1', {})), ['']);
    assert.deepEqual(reg.contracts.violations('req@1', { topic: 'abc' }), []);
  });
});
