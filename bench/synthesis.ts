/**
 * Synthesis cost (issue 12): join plus detection plus a rule-based resolution over
 * 100 children with 20 claims each.
 *
 *   node bench/synthesis.ts [--reps 20] [--durability fast|strict] [--json]
 *
 * Figures:
 *   - detect + resolve (pure): synthesis/detect.ts and the rule strategies on the
 *     lanes' claims, in memory — the hub's own CPU for a brief;
 *   - in the engine: a parent fans out to 100 children (20 claims each) and joins,
 *     measured from its first turn to its second, with synthesis (brief detected,
 *     decided by vote/priority, saved) and without (the same children, no synthesis
 *     block: W3's shape with claims as outputs) in the same run. The difference is
 *     what synthesis adds to the hub, commits included.
 * Target: hub time p50 ≤ 5 ms. Measurement only: a missed target is reported, never fatal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import type { Claim } from '../src/core/brief.ts';
import type { FieldIssue } from '../src/core/issues.ts';
import { silentLogger } from '../src/core/log.ts';
import type { Json, TurnInput } from '../src/core/types.ts';
import { createRegistry } from '../src/engine/registry.ts';
import { Worker } from '../src/engine/worker.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { startBrief } from '../src/synthesis/brief.ts';
import { compileSynthesis, type SynthesisSpec } from '../src/synthesis/config.ts';
import type { Lane } from '../src/synthesis/detect.ts';
import { advance, ruleFor } from '../src/synthesis/resolve.ts';
import { submitRun } from '../test/fixtures/submit-run.ts';
import { benchArgs, durabilityOption, FinishWaiters, trackStore, wholeOption } from './harness.ts';
import { round, summarize, type Summary } from './stats.ts';

const args = benchArgs('synthesis', { reps: { type: 'string' }, durability: { type: 'string' }, json: { type: 'boolean', default: false } });
const REPS = wholeOption('synthesis', 'reps', args.reps) ?? 20;
const DURABILITY = durabilityOption('synthesis', args.durability ?? 'fast');
const CHILDREN = 100;
const CLAIMS = 20;
const TARGET_MS = 5;

/** Child i's claims: 14 keys all agree, 3 numeric keys within tolerance, 3 keys split three ways (a vote decides 34 : 33 : 33). */
function claimsOf(i: number): Claim[] {
  const out: Claim[] = [];
  for (let k = 0; k < CLAIMS; k++) {
    const key = k < 14 ? `fact.${k}` : k < 17 ? `price.${k}` : `risk.${k}`;
    const value: Json = k < 14 ? `v${k}` : k < 17 ? 100 + (i % 5) * 0.1 : ['low', 'medium', 'high'][i % 3]!;
    out.push({ key, value, confidence: 0.5 + (i % 10) / 20, evidence: [{ kind: 'url', ref: `https://example.com/${i}/${k}` }] });
  }
  return out;
}

const issues: FieldIssue[] = [];
const spec: SynthesisSpec = compileSynthesis(
  { compare: { 'price.*': { numeric: { tolerance: 1 } } }, resolve: [{ match: 'price.*', strategy: 'priority', order: ['leaf'] }, { match: '*', chain: ['vote', 'keep-both'] }] },
  ['leaf'],
  'bench',
  issues,
);
if (issues.length) throw new Error(JSON.stringify(issues));

let pureCpuMs = 0;
function pure(): Summary {
  const lanes: Lane[] = Array.from({ length: CHILDREN }, (_, i) => ({ agent: 'leaf', task: `task_${String(i).padStart(4, '0')}`, turn: 1, ok: true, claims: claimsOf(i) }));
  const times: number[] = [];
  let cpu = { user: 0, system: 0 };
  for (let r = 0; r < 20 + REPS * 10; r++) {
    if (r === 20) cpu = process.cpuUsage();
    const t0 = performance.now();
    const body = startBrief(lanes, spec);
    const decided = body.conflicts.map((c) => advance(c, ruleFor(c.key, spec.rules).chain).conflict);
    if (decided.some((c) => !c.decision)) throw new Error('a rule left a conflict open');
    if (r >= 20) times.push(performance.now() - t0);
  }
  const used = process.cpuUsage(cpu);
  pureCpuMs = (used.user + used.system) / 1000 / (REPS * 10);
  return summarize(times);
}

async function engine(withSynthesis: boolean): Promise<Summary> {
  const root = mkdtempSync(join(tmpdir(), 'spine-bench-synthesis-'));
  const store = openStore({ url: `sqlite:${join(root, 'spine.db')}`, durability: DURABILITY });
  await store.migrate();
  const tracked = trackStore(store, { trace: !!process.env.SYNTH_TRACE });
  const waiters = new FinishWaiters();
  tracked.onFinish = (id, kind, at) => waiters.finished(id, kind, at);
  const turnAt = new Map<string, number[]>();
  const registry = createRegistry({
    agents: {
      fan: {
        timeoutMs: 30_000,
        ...(withSynthesis ? { synthesis: spec } : {}),
        agent: new FunctionAgent((input: TurnInput) => {
          const times = turnAt.get(input.task.id) ?? [];
          times.push(performance.now());
          turnAt.set(input.task.id, times);
          if (input.task.turn === 1) return { actions: Array.from({ length: CHILDREN }, (_, i) => ({ type: 'handoff', agent: 'leaf', input: i })) };
          if (withSynthesis && !input.brief) throw new Error('no brief');
          return { output: null };
        }),
      },
      leaf: { timeoutMs: 30_000, agent: new FunctionAgent((input: TurnInput) => ({ output: { claims: claimsOf(input.task.input as number) } as unknown as Json })) },
    },
  });
  const worker = new Worker({ store: tracked.store, registry, options: { concurrency: 8, pollMs: 50, leaseMs: 30_000 }, log: silentLogger });
  await worker.start();
  const joins: number[] = [];
  try {
    for (let i = 0; i < 3 + REPS; i++) {
      const { run } = await submitRun(tracked.store, registry, { agent: 'fan', input: null }, Date.now());
      const done = await waiters.wait(run.rootTaskId);
      if (done.kind !== 'succeed') throw new Error(`run ${run.id} failed`);
      const [a, b] = turnAt.get(run.rootTaskId) ?? [];
      if (i >= 3 && a !== undefined && b !== undefined) joins.push(b - a);
    }
  } finally {
    await worker.stop();
    await store.close();
    rmSync(root, { recursive: true, force: true });
  }
  if (tracked.trace) process.stderr.write(`${withSynthesis ? 'with' : 'without'}: ${JSON.stringify(tracked.trace)}\n`);
  return summarize(joins);
}

const r = (s: Summary) => ({ p50: round(s.p50), p99: round(s.p99), n: s.n });
const detectResolve = pure();
const without = await engine(false);
const withS = await engine(true);
const result = {
  children: CHILDREN,
  claimsPerChild: CLAIMS,
  durability: DURABILITY,
  detectResolveMs: { ...r(detectResolve), cpuMeanMs: round(pureCpuMs) },
  loadAverage: (await import('node:os')).loadavg().map((x) => round(x, 2)),
  fanOutJoinMs: { withoutSynthesis: r(without), withSynthesis: r(withS), addedP50: round(withS.p50 - without.p50) },
  target: `hub time p50 ≤ ${TARGET_MS} ms (detect + resolve: ${detectResolve.p50 <= TARGET_MS ? 'met' : 'missed'})`,
};
if (args.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
else {
  process.stdout.write(`synthesis over ${CHILDREN} children × ${CLAIMS} claims (${DURABILITY})\n`);
  process.stdout.write(`  detect + resolve (pure)          p50 ${result.detectResolveMs.p50} ms   p99 ${result.detectResolveMs.p99} ms   CPU ${result.detectResolveMs.cpuMeanMs} ms/brief   (target p50 ≤ ${TARGET_MS} ms)\n`);
  process.stdout.write(`  load average ${result.loadAverage.join(' ')}\n`);
  process.stdout.write(`  fan-out + join, no synthesis     p50 ${result.fanOutJoinMs.withoutSynthesis.p50} ms   p99 ${result.fanOutJoinMs.withoutSynthesis.p99} ms\n`);
  process.stdout.write(`  fan-out + join + synthesis       p50 ${result.fanOutJoinMs.withSynthesis.p50} ms   p99 ${result.fanOutJoinMs.withSynthesis.p99} ms   (+${result.fanOutJoinMs.addedP50} ms)\n`);
}
