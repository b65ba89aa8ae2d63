// The boundary's commands through the real `spine` CLI in child processes:
// `approvals list|approve|deny|grant|grants|revoke` against a running `spine worker`,
// `policy explain` (every rule with its outcome, and nothing written), and invalid
// policy/contract configs refused at start-up with exit 2 and the bad field named.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { Json } from '../src/core/types.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { Approval, StandingGrant, Store } from '../src/store/store.ts';
import { PROJECT_MODULE, readPayments, spine, startWorkerProcess, writeProject, type WorkerProcess } from './fixtures/policy-project.ts';
import { finished, until } from './helpers.ts';

const PAYMENT = { type: 'object', required: ['to', 'amount'], properties: { to: { type: 'string' }, amount: { type: 'number', exclusiveMinimum: 0 } } };

const BASE_RULES: Json[] = [
  { id: 'payees', kind: 'allowlist', actions: ['payments.send'], fields: ['to'], allow: ['acme', 'globex'] },
  // For tools and agents that come later: accepted only because they say so.
  { id: 'crm-notify', kind: 'approval', actions: ['crm.*'], tier: 'notify', allowUnmatched: true },
  { id: 'auditors-only', kind: 'approval', agents: ['auditor'], actions: ['payments.*'], tier: 'deny', allowUnmatched: true },
  { id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' },
  { id: 'pay-rate', kind: 'rateLimit', actions: ['payments.*'], capacity: 20, refillPerSecond: 1, onExceeded: 'fail' },
  { id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 1 },
];
const QUIET: Json = { id: 'quiet-hours', kind: 'timeWindow', actions: ['payments.*'], timezone: 'Europe/Berlin', deny: { from: '22:00', to: '07:00' } };

const CONTRACTS = { contracts: { 'payment@1': { schema: PAYMENT } } };

interface Explained {
  effect: string;
  ruleId: string | null;
  reason: string;
  rules: Array<{ ruleId: string; kind: string; outcome: string; reason: string }>;
}

describe('spine approvals and spine policy explain', () => {
  let dir: string;
  let url: string;
  let flow: string;
  let explainConfig: string;
  let store: Store;
  let worker: WorkerProcess | null = null;
  let paidRun = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spine-policy-cli-'));
    url = `sqlite:${join(dir, 'spine.db')}`;
    // The worker runs without the time window, so the suite does not depend on the time of day; explain gets it with --at.
    flow = writeProject(dir, { toolCost: 0.6, tool: { input: 'payment@1' }, extra: CONTRACTS, policy: { rules: BASE_RULES } });
    explainConfig = writeProject(dir, { toolCost: 0.6, tool: { input: 'payment@1' }, extra: CONTRACTS, policy: { rules: [...BASE_RULES, QUIET] }, file: 'explain.json5' });
    store = openStore({ url, durability: 'fast' });
    await store.migrate();
  });
  after(async () => {
    await worker?.kill('SIGKILL');
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => spine(dir, [...args, '--db', url]);
  const send = async (input: Json): Promise<string> => {
    const r = await cli('send', 'payer', '--input', JSON.stringify(input), '--config', flow, '--json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { run: { id: string } }).run.id;
  };
  const pendingFor = async (runId: string): Promise<Approval> => {
    await until(`approval pending for ${runId}`, async () => (await store.approvals.list({ runId, state: 'pending', limit: 2 })).length === 1, 60_000);
    return (await store.approvals.list({ runId, state: 'pending', limit: 2 }))[0]!;
  };

  it('approve, deny, list, and the errors around them, with a live worker', { timeout: 120_000 }, async () => {
    worker = startWorkerProcess(dir, ['--config', flow, '--db', url]);
    await worker.ready;

    const first = await send({ to: 'acme', amount: 5 });
    const a = await pendingFor(first);
    const list = await cli('approvals', 'list');
    assert.equal(list.code, 0, list.stderr);
    const row = list.stdout.split('\n').find((l) => l.startsWith(a.id));
    assert.ok(row, list.stdout);
    for (const cell of ['approval', 'pending', 'payer', 'tool:payments.send', 'sign-off', 'finance']) assert.ok(row.includes(cell), `${cell} in: ${row}`);
    const listed = JSON.parse((await cli('approvals', 'list', '--json')).stdout) as { approvals: Approval[] };
    assert.deepEqual(
      listed.approvals.map((x) => x.id),
      [a.id],
    );

    const approve = await cli('approvals', 'approve', a.id, '--reason', 'invoice checked', '--as', 'alice');
    assert.equal(approve.code, 0, approve.stderr);
    assert.equal(approve.stdout.trim(), `${a.id} approved by alice; task ${a.taskId} of run ${first} continues`);
    const done = await finished(store, first);
    assert.deepEqual(done.output, { paid: { ok: true, amount: 5 } });
    paidRun = first;

    const second = await send({ to: 'globex', amount: 9 });
    const b = await pendingFor(second);
    const deny = await cli('approvals', 'deny', b.id, '--reason', 'duplicate', '--json');
    assert.equal(deny.code, 0, deny.stderr);
    const denied = (JSON.parse(deny.stdout) as { approval: Approval }).approval;
    assert.deepEqual([denied.state, denied.decidedBy, denied.decisionReason], ['denied', 'env-operator', 'duplicate'], 'the decider defaults to $SPINE_OPERATOR');
    assert.deepEqual((await finished(store, second)).output, { refused: 'POLICY_DENIED', message: 'refused by sign-off: a human (env-operator) denied this action: duplicate' }, 'who denied it and why reach the agent');
    assert.equal(readPayments(dir).length, 1, 'only the approved payment was made');

    const all = JSON.parse((await cli('approvals', 'list', '--state', 'all', '--json')).stdout) as { approvals: Approval[] };
    assert.deepEqual(
      all.approvals.map((x) => [x.id, x.state, x.decidedBy]),
      [
        [a.id, 'approved', 'alice'],
        [b.id, 'denied', 'env-operator'],
      ],
    );
    assert.match((await cli('approvals', 'list')).stdout, /no pending approvals/);

    const [again, missing, usage] = await Promise.all([
      cli('approvals', 'approve', a.id),
      cli('approvals', 'deny', 'apr_does_not_exist'),
      cli('approvals', 'approve'),
    ]);
    assert.equal(again.code, 3, 'a decided approval cannot be decided again');
    assert.match(again.stderr, /already approved/);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /not found/);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /<approval-id>: missing/);
  });

  it('grant, grants and revoke: a standing grant skips approval until it is revoked', { timeout: 120_000 }, async () => {
    const grant = await cli('approvals', 'grant', '--agent', 'payer', '--action', 'tool:payments.*', '--days', '2', '--reason', 'month end', '--as', 'bob', '--config', flow, '--json');
    assert.equal(grant.code, 0, grant.stderr);
    const g = (JSON.parse(grant.stdout) as { grant: StandingGrant }).grant;
    assert.deepEqual([g.agent, g.action, g.grantedBy, g.reason], ['payer', 'tool:payments.*', 'bob', 'month end']);
    assert.ok(Math.abs(g.expiresAt - g.createdAt - 2 * 86_400_000) < 1_000);
    const grants = JSON.parse((await cli('approvals', 'grants', '--json')).stdout) as { grants: StandingGrant[] };
    assert.deepEqual(
      grants.grants.map((x) => x.id),
      [g.id],
    );

    const run = await send({ to: 'acme', amount: 1 });
    const done = await finished(store, run, 60_000);
    assert.deepEqual(done.output, { paid: { ok: true, amount: 1 } });
    assert.deepEqual(await store.approvals.list({ runId: run, limit: 5 }), [], 'no approval needed');

    const revoke = await cli('approvals', 'revoke', g.id, '--as', 'carol');
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match((await cli('approvals', 'grants')).stdout, /no standing grants/);
    const history = JSON.parse((await cli('approvals', 'grants', '--all', '--json')).stdout) as { grants: StandingGrant[] };
    assert.ok(history.grants[0]?.revokedAt, 'revoked grants stay on record');
    const later = await send({ to: 'acme', amount: 2 });
    const asked = await pendingFor(later);
    assert.equal(asked.ruleId, 'sign-off', 'approval is needed again');
    await cli('approvals', 'deny', asked.id);
    await finished(store, later, 60_000);

    const bad = await Promise.all([
      cli('approvals', 'grant', '--agent', 'payer', '--action', 'payments.send', '--days', '1'),
      cli('approvals', 'grant', '--agent', 'payer', '--action', 'tool:payments.*', '--days', 'soon'),
      cli('approvals', 'grant', '--agent', 'ghost', '--action', 'tool:x', '--days', '1', '--config', flow),
      cli('approvals', 'revoke', g.id),
      cli('approvals', 'frobnicate'),
    ]);
    assert.deepEqual(
      bad.map((r) => r.code),
      [2, 2, 2, 3, 2],
      bad.map((r) => r.stderr).join('\n'),
    );
    assert.match(bad[0].stderr, /--action: must be kind:pattern/);
    assert.match(bad[1].stderr, /--days: must be a positive number/);
    assert.match(bad[2].stderr, /--agent: unknown agent "ghost"/);
    await worker!.kill('SIGTERM');
    worker = null;
  });

  it('policy explain prints every rule evaluated, skipped ones included, and the decision — and writes nothing', { timeout: 120_000 }, async () => {
    // A standing grant so explain can walk past the approval tier.
    const grant = await cli('approvals', 'grant', '--agent', 'payer', '--action', 'tool:payments.send', '--days', '1', '--config', explainConfig);
    assert.equal(grant.code, 0, grant.stderr);
    const before = snapshot(join(dir, 'spine.db'));
    const explain = async (args: Json, at: string, ...more: string[]): Promise<Explained> => {
      const r = await cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'tool:payments.send', '--args', JSON.stringify(args), '--at', at, '--json', ...more);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Explained;
    };
    const rules = (e: Explained) => e.rules.map((r) => `${r.ruleId}:${r.outcome}`);

    const [open, quiet, bust, outsider, malformed, text] = await Promise.all([
      explain({ to: 'acme', amount: 5 }, '2026-01-15T12:00:00Z'),
      explain({ to: 'acme', amount: 5 }, '2026-01-15T22:30:00Z'),
      explain({ to: 'acme', amount: 5 }, '2026-01-15T12:00:00Z', '--run', paidRun),
      explain({ to: 'evilcorp', amount: 5 }, '2026-01-15T12:00:00Z'),
      explain({ to: 'acme' }, '2026-01-15T12:00:00Z'),
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'tool:payments.send', '--args', '{"to":"acme","amount":5}', '--at', '2026-01-15T12:00:00Z'),
    ]);

    assert.equal(open.effect, 'allow');
    assert.deepEqual(rules(open), [
      'payment@1:pass',
      'grants:pass',
      'payees:pass',
      'crm-notify:skip',
      'auditors-only:skip',
      'sign-off:granted',
      'quiet-hours:pass',
      'pay-rate:pass',
      'per-run:pass',
      'per-run:pass',
    ]);
    assert.match(open.rules.find((r) => r.ruleId === 'crm-notify')!.reason, /does not match tool:payments\.send/);
    assert.match(open.rules.find((r) => r.ruleId === 'auditors-only')!.reason, /not for agent payer/);

    assert.deepEqual([quiet.effect, quiet.ruleId], ['defer', 'quiet-hours']);
    assert.match(quiet.reason, /deferred to 2026-01-16T06:00:00\.000Z/);

    assert.equal(bust.effect, 'escalate');
    assert.match(bust.reason, /cost ceiling per-run would be exceeded/);
    const budget = bust.rules.find((r) => r.kind === 'budget')!;
    assert.equal(budget.outcome, 'escalate');
    assert.match(budget.reason, /used \$0\.6000 \/ 0 tokens of \$1\.00/);

    assert.deepEqual([outsider.effect, outsider.ruleId], ['deny', 'payees']);
    // The rules after the one that decided are listed too, as not reached (the cost rule included).
    assert.deepEqual(rules(outsider), ['payment@1:pass', 'grants:pass', 'payees:deny', 'crm-notify:skip', 'auditors-only:skip', 'sign-off:skip', 'quiet-hours:skip', 'pay-rate:skip', 'per-run:skip']);
    assert.match(outsider.rules.find((r) => r.ruleId === 'per-run')!.reason, /not reached: payees decided first/);

    assert.equal(malformed.effect, 'deny');
    assert.match(malformed.reason, /violates its contract/);
    assert.match(malformed.rules[0]!.reason, /must have property "amount"/);

    assert.equal(text.code, 0, text.stderr);
    for (const id of ['payment@1', 'grants', 'payees', 'crm-notify', 'auditors-only', 'sign-off', 'quiet-hours', 'pay-rate', 'per-run']) assert.match(text.stdout, new RegExp(`^${id.replace('.', '\\.')}\\s`, 'm'), id);
    assert.match(text.stdout, /^crm-notify\s+approval\s+skip\s/m);
    assert.match(text.stdout, /decision: ALLOW — allowed/);
    assert.match(text.stdout, /nothing was executed, reserved or requested/);

    // Nothing was executed, reserved, taken, requested or audited by any of it.
    assert.deepEqual(snapshot(join(dir, 'spine.db')), before);

    // Without the standing grant it stops at the approval tier — and still asks no one.
    const g = (await store.grants.list({ activeAt: Date.now() }))[0]!;
    await store.grants.revoke(g.id, 'test', Date.now());
    const revoked = snapshot(join(dir, 'spine.db'));
    const ask = await explain({ to: 'acme', amount: 5 }, '2026-01-15T12:00:00Z');
    assert.deepEqual([ask.effect, ask.ruleId], ['approve', 'sign-off']);
    // An approval deciding still lists the window, rate and cost rules behind it.
    assert.deepEqual(rules(ask).slice(-4), ['sign-off:approve', 'quiet-hours:skip', 'pay-rate:skip', 'per-run:skip']);
    assert.deepEqual(snapshot(join(dir, 'spine.db')), revoked, 'no approval was requested');

    const errors = await Promise.all([
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'payments.send'),
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'tool:nope'),
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'nobody', '--action', 'tool:payments.send'),
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'tool:payments.send', '--args', '{bad'),
      cli('policy', 'explain', '--config', explainConfig, '--agent', 'payer', '--action', 'tool:payments.send', '--at', 'yesterday'),
    ]);
    assert.deepEqual(
      errors.map((r) => r.code),
      [2, 2, 2, 2, 2],
      errors.map((r) => r.stderr).join('\n'),
    );
    assert.match(errors[0].stderr, /--action: must be tool:<name>/);
    assert.match(errors[1].stderr, /unknown tool "nope"/);
    assert.match(errors[2].stderr, /unknown agent "nobody"/);
    assert.match(errors[3].stderr, /--args: not valid JSON/);
    assert.match(errors[4].stderr, /--at: not a date/);
  });
});

/** Every table the boundary writes, in full. */
function snapshot(file: string): Record<string, unknown[]> {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const out: Record<string, unknown[]> = {};
    for (const table of ['audit_events', 'budgets', 'reservations', 'rate_buckets', 'approvals', 'standing_grants', 'effects', 'runs', 'tasks', 'contracts']) {
      out[table] = db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all().map((r) => ({ ...r }));
    }
    return out;
  } finally {
    db.close();
  }
}

describe('an invalid policy config is refused at start-up', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spine-policy-bad-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const agent = { kind: 'function', module: PROJECT_MODULE, export: 'payer' };
  const cases: Array<[string, Record<string, Json>, string[]]> = [
    ['an unknown rule kind', { agents: { payer: agent }, policy: { rules: [{ id: 'x', kind: 'budget', maxUsd: 1 }] } }, ['policy.rules.0.kind']],
    ['a negative ceiling', { agents: { payer: agent }, policy: { rules: [{ id: 'c', kind: 'cost', scope: 'run', maxUsd: -1 }] } }, ['policy.rules.0.maxUsd']],
    [
      'a bad timezone, a bad HH:MM, a bad duration, a malformed schema and an unknown contract, all at once',
      {
        contracts: { 'req@1': { schema: { type: 'object', required: 'topic' } } },
        agents: { payer: { ...agent, input: 'req@1', output: 'report@1' } },
        policy: {
          rules: [
            { id: 'ok', kind: 'cost', scope: 'global', maxUsd: 10 },
            { id: 'tz', kind: 'timeWindow', actions: ['x'], timezone: 'Europe/Atlantis', deny: { from: '22:00', to: '7:00' } },
            { id: 'exp', kind: 'approval', actions: ['x'], tier: 'approve', expiresIn: 'a while' },
          ],
        },
      },
      ['contracts.req@1.schema', 'agents.payer.output', 'policy.rules.1.timezone', 'policy.rules.1.deny.to', 'policy.rules.2.expiresIn'],
    ],
  ];
  for (const [what, config, fields] of cases) {
    it(`${what}: exit 2, every bad field named, no database created`, async () => {
      const sub = mkdtempSync(join(dir, 'case-'));
      writeFileSync(join(sub, 'spine.config.json5'), JSON.stringify(config));
      const db = join(sub, 'spine.db');
      // `spine send`, and for the last case `spine worker` too: both refuse before opening the store.
      const commands = [['send', 'payer', 'hi'], ...(fields.length > 1 ? [['worker']] : [])];
      const results = await Promise.all(commands.map((c) => spine(sub, [...c, '--db', `sqlite:${db}`])));
      for (const r of results) {
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /invalid config/);
        for (const f of fields) assert.ok(r.stderr.includes(`  ${f}: `), `${f} named in:\n${r.stderr}`);
      }
      assert.equal(existsSync(db), false, 'nothing was written');
    });
  }
});
