/**
 * Boundary cost (issue 4): with 50 policy rules and 20 contracts loaded, what one
 * action's crossing costs — contract check + policy evaluation + audit append.
 *
 *   node bench/boundary.ts [--actions 20000] [--json]
 *
 * Three figures, each per action:
 *   - evaluate: the boundary's decision alone (contract + fixed-order policy), in memory;
 *   - with audit: the same plus appending its audit events through the store's group
 *     commit, actions in batches of 8 as a worker at concurrency 8 would (fast durability,
 *     so fsync does not hide the boundary's own cost);
 *   - limits: a crossing that also takes a rate-limit token and reserves spend (the
 *     store's conditional UPDATEs), the most expensive path.
 * Measurement only: a missed target is reported, never fatal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import { ContractRegistry } from '../src/contracts/registry.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import { systemClock } from '../src/core/clock.ts';
import type { Json, Task } from '../src/core/types.ts';
import { Boundary, taskCrossing } from '../src/engine/boundary.ts';
import { createRegistry } from '../src/engine/registry.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { compileGates } from '../src/validation/config.ts';
import { BreakerBoard, DEFAULT_BREAKERS, outcomeChange } from '../src/validation/breakers.ts';
import { benchArgs, wholeOption } from './harness.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('boundary', { actions: { type: 'string' }, json: { type: 'boolean', default: false } });
const N = wholeOption('boundary', 'actions', args.actions) ?? 20_000;

// 20 contracts, one of which guards the tool we call.
const contracts = new ContractRegistry();
for (let i = 0; i < 20; i++) {
  contracts.add(`bench.c${i}@1`, {
    schema: { type: 'object', required: ['to', 'amount'], properties: { to: { type: 'string', format: 'email' }, amount: { type: 'number', minimum: 0 }, note: { type: 'string', maxLength: 200 } } },
  });
}

// 50 rules of every kind; most do not match the bench action, as in a real config, and
// the ones that do all let it through (the worst case walks every step).
const rules: unknown[] = [];
for (let i = 0; i < 12; i++) rules.push({ id: `allow-${i}`, kind: 'allowlist', actions: [i === 0 ? 'tool:pay.send' : `tool:other${i}.*`], fields: ['to'], allow: ['*@acme.com'] });
for (let i = 0; i < 12; i++) rules.push({ id: `tier-${i}`, kind: 'approval', actions: [i === 0 ? 'tool:pay.*' : `tool:x${i}.*`], tier: i === 0 ? 'notify' : 'approve' });
for (let i = 0; i < 12; i++) rules.push({ id: `window-${i}`, kind: 'timeWindow', actions: [i === 0 ? 'tool:pay.send' : `tool:y${i}.*`], timezone: 'Europe/Berlin', deny: { from: '03:00', to: '03:01' } });
for (let i = 0; i < 8; i++) rules.push({ id: `rate-${i}`, kind: 'rateLimit', actions: [`tool:z${i}.*`], capacity: 1_000_000, refillPerSecond: 1_000_000, onExceeded: 'fail' });
for (let i = 0; i < 6; i++) rules.push({ id: `cost-${i}`, kind: 'cost', scope: 'run', agents: [`nobody-${i}`], maxUsd: 1_000_000 });
const issues: FieldIssue[] = [];
const policy = compilePolicy(policySchema.parse({ rules }), issues);
if (issues.length) throw new Error(JSON.stringify(issues));

const agent = new FunctionAgent(() => ({ output: null }));
const registry = createRegistry({
  agents: { payer: { agent, grants: { tools: { allow: ['pay.*'], deny: [] } } } },
  tools: { 'pay.send': { run: () => null, input: 'bench.c0@1' }, 'pay.limited': { run: () => null } },
  contracts,
  policy,
});
// The limits path: the same config plus a rate limit and a ceiling that match `pay.limited`.
const limitedPolicy = compilePolicy(
  policySchema.parse({
    rules: [
      ...rules,
      { id: 'pay-rate', kind: 'rateLimit', actions: ['tool:pay.limited'], capacity: 1_000_000_000, refillPerSecond: 1_000_000, onExceeded: 'fail' },
      { id: 'pay-ceiling', kind: 'cost', scope: 'global', maxUsd: 1_000_000_000 },
    ],
  }),
  issues,
);
const limitedRegistry = createRegistry({
  agents: { payer: { agent, grants: { tools: { allow: ['pay.*'], deny: [] } } } },
  tools: { 'pay.limited': { run: () => null, cost: { micros: 1_000, tokens: 0 } } },
  contracts,
  policy: limitedPolicy,
});

const dir = mkdtempSync(join(tmpdir(), 'spine-bench-boundary-'));
const store = openStore({ url: `sqlite:${join(dir, 'b.db')}`, durability: 'fast' });
await store.migrate();
// A real task leased by the bench, as a worker's would be: spend is reserved only under a held lease.
await store.runs.create({ agent: 'payer', input: null, maxAttempts: 3 }, Date.now());
const [claimed] = await store.tasks.claim({ workerId: 'bench', limit: 1, leaseMs: 24 * 3_600_000, now: Date.now() });
if (!claimed) throw new Error('the bench task was not claimed');
const task: Task = claimed.task;
const input: Json = { to: 'ops@acme.com', amount: 12.5, note: 'monthly' };
const ctx = (i: number) => taskCrossing(task, 'default', 'bench', `${task.runId}/${task.id}/${i}/0`);
const paySend = registry.tools.get('pay.send')!;
const payLimited = limitedRegistry.tools.get('pay.limited')!;

async function measure(label: string, fn: (i: number) => Promise<unknown>, batch = 1): Promise<{ label: string; p50: number; p99: number; mean: number }> {
  for (let i = 0; i < 500; i++) await fn(-i - 1); // warm-up: JIT, prepared statements
  const per: number[] = [];
  for (let i = 0; i < N; i += batch) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: batch }, (_, j) => fn(i + j)));
    per.push((performance.now() - t0) / batch);
  }
  const s = summarize(per);
  return { label, p50: round(s.p50, 4), p99: round(s.p99, 4), mean: round(s.mean, 4) };
}

const boundary = new Boundary(store, registry, systemClock);
// The same crossing with one rule gate (a regex, a length and a forbidden term): its p50 minus the plain one is what a rule gate adds.
const gateIssues: FieldIssue[] = [];
const ruleGates = compileGates(
  { gates: [{ id: 'note-rule', on: 'tool', tools: ['pay.send'], kind: 'rule', rules: [{ path: '$.note', regex: '^[a-z ]+$', maxLength: 200, forbidden: ['password'] }] }] },
  { agents: [...registry.agents.keys()], tools: [...registry.tools.keys()], contracts: registry.contracts, agentOf: () => undefined },
  gateIssues,
);
if (gateIssues.length) throw new Error(JSON.stringify(gateIssues));
const gated = new Boundary(store, { ...registry, gates: ruleGates.gates, gatesVersion: ruleGates.version }, systemClock);
const limited = new Boundary(store, limitedRegistry, systemClock);
const results = [
  await measure('evaluate (contract + 50 rules)', async (i) => {
    const v = await boundary.tool(ctx(i), paySend, input);
    if (v.effect !== 'allow') throw new Error(`unexpected ${v.effect}`);
  }),
  await measure('evaluate + one rule gate', async (i) => {
    const v = await gated.tool(ctx(i), paySend, input);
    if (v.effect !== 'allow') throw new Error(`unexpected ${v.effect}`);
  }),
  await measure(
    'evaluate + audit append (group commit, batches of 8)',
    async (i) => {
      const v = await boundary.tool(ctx(i), paySend, input);
      await store.audit.append(v.audit, Date.now());
    },
    8,
  ),
  await measure(
    'with a rate-limit token and a spend reservation',
    async (i) => {
      const v = await limited.tool(ctx(i), payLimited, null);
      if (v.effect !== 'allow') throw new Error(`unexpected ${v.effect}`);
      await store.audit.append(v.audit, Date.now());
    },
    8,
  ),
];
// An open breaker: how fast a worker rejects work from its snapshot, and how many store reads that took.
const now0 = Date.now();
await store.breakers.update('agent:bench', outcomeChange('agent:bench', false, 'AGENT_FAILED', { ...DEFAULT_BREAKERS, failures: 1, cooldownMs: 3_600_000 }, now0, { actor: 'bench' }), now0);
const modelKey = 'model:openai:bench@models.example:443';
await store.breakers.update(modelKey, outcomeChange(modelKey, false, 'server-error', { ...DEFAULT_BREAKERS, failures: 1, cooldownMs: 3_600_000 }, now0, { actor: 'bench' }), now0);
// Every store round trip the board makes is counted (reads of the snapshot, and any get or update).
let breakerReads = 0;
let breakerTrips = 0;
const counted = {
  list: () => (breakerReads++, breakerTrips++, store.breakers.list()),
  get: (k: string) => (breakerTrips++, store.breakers.get(k)),
  update: (...a: Parameters<typeof store.breakers.update>) => (breakerTrips++, store.breakers.update(...a)),
};
const board = new BreakerBoard(counted, { ...DEFAULT_BREAKERS, refreshMs: 1_000 }, systemClock, 'bench');
// The bare baseline in the same run: an awaited call that does nothing.
const bare = await measure('bare baseline (an awaited no-op)', async () => {});
const breakerResult = await measure('open breaker rejects (snapshot, refreshed each 1 s)', async () => {
  const a = await board.admit('agent:bench');
  if (a.ok) throw new Error('the breaker let work through');
});
// A model endpoint's breaker (an LLM agent's model) takes the same path.
const modelResult = await measure('open model-endpoint breaker rejects', async () => {
  const a = await board.admit(modelKey);
  if (a.ok) throw new Error('the breaker let work through');
});
results.push(bare, breakerResult, modelResult);
const rejections = 2 * (N + 500);
await store.close();
rmSync(dir, { recursive: true, force: true });

const TARGET = 0.1;
const GATE_TARGET = 0.05;
const BREAKER_TARGET = 0.1;
const gateAddedP50 = round(results[1]!.p50 - results[0]!.p50, 4);
if (args.json) {
  console.log(JSON.stringify({ actions: N, rules: policy.all.length, contracts: contracts.size, target_p50_ms: TARGET, results, ruleGate: { addedP50Ms: gateAddedP50, targetMs: GATE_TARGET }, breaker: { rejections, storeRoundTrips: breakerTrips, snapshotReads: breakerReads, p50Ms: breakerResult.p50, overBareP50Ms: round(breakerResult.p50 - bare.p50, 4), targetMs: BREAKER_TARGET } }, null, 2));
} else {
  const rows = results.map((r) => [r.label, `${r.p50.toFixed(4)} ms`, `${r.p99.toFixed(4)} ms`, r.p50 <= TARGET ? 'met' : 'MISSED']);
  const head = ['boundary, per action', 'p50', 'p99', `p50 ≤ ${TARGET} ms`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(`Spine boundary bench — ${policy.all.length} rules, ${contracts.size} contracts, ${N} actions each, durability fast`);
  console.log(line(head));
  console.log(line(widths.map((w) => '─'.repeat(w))));
  for (const r of rows) console.log(line(r));
  console.log(
    `an open breaker rejected ${rejections} tasks in ${breakerResult.p50.toFixed(4)} ms p50 (${round(breakerResult.p50 - bare.p50, 4).toFixed(4)} ms over the bare baseline; target ≤ ${BREAKER_TARGET} ms: ${breakerResult.p50 <= BREAKER_TARGET ? 'met' : 'MISSED'}) with ${breakerTrips} store round trip(s), all snapshot reads (one per refresh interval)`,
  );
  console.log(`a rule gate adds ${gateAddedP50.toFixed(4)} ms p50 to a crossing (target ≤ ${GATE_TARGET} ms: ${gateAddedP50 <= GATE_TARGET ? 'met' : 'MISSED'})`);
}
