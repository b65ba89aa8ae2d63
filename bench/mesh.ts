/**
 * The mesh (issue 16, docs/mesh.md): a direct call versus a hub handoff of the same
 * no-op agent, and what the shadow log adds to a direct call.
 *
 *   node bench/mesh.ts [--db postgres://…] [--calls 400] [--durability strict|fast] [--json]
 *
 * SQLite always (a temp file); PostgreSQL too with --db (a fresh schema, dropped after).
 * One run at a time, so each figure is a latency, not a throughput. A caller agent's
 * first turn asks for the no-op agent's answer and its second turn receives it; the
 * figure is the time between the two, measured inside the caller:
 *   - handoff: the hub's way — the turn's commit with a child task, the child claimed,
 *     run and committed, the parent woken, claimed and given its next turn;
 *   - direct: a `call_agent` over a declared path — the pair's token with the shadow
 *     `mesh.call` (one commit), the callee's turn, `mesh.reply` (one commit), the
 *     turn's commit, and the next turn in the same lease;
 *   - direct, no shadow: the same with the store's shadow writes dropped (a bench-only
 *     store wrapper; the product has no such switch), to price the shadow log.
 * Measurement only: a missed target is reported, never fatal.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import type { AgentFunction } from '../src/core/agent.ts';
import type { Registry } from '../src/engine/options.ts';
import type { Store } from '../src/store/store.ts';
import { submitRun } from '../test/fixtures/submit-run.ts';
import { benchArgs, durabilityOption, makeRegistry, openBenchStore, startWorker, wholeOption } from './harness.ts';
import { round, summarize, type Summary } from './stats.ts';

const args = benchArgs('mesh', { db: { type: 'string' }, calls: { type: 'string' }, durability: { type: 'string', default: 'strict' }, json: { type: 'boolean', default: false } });
const CALLS = wholeOption('mesh', 'calls', args.calls) ?? 400;
const WARMUP = Math.max(20, Math.floor(CALLS / 10));
const durability = durabilityOption('mesh', args.durability);
const pgUrl = args.db?.startsWith('postgres') ? args.db : null;

type Mode = 'handoff' | 'direct' | 'directNoShadow';

/** Drops the shadow records a direct call writes: the pair's token is still taken, nothing is logged. */
function withoutShadow(store: Store): Store {
  const audit = new Proxy(store.audit, {
    get: (target, prop) => (prop === 'append' ? async () => {} : (Reflect.get(target, prop, target) as unknown)),
  });
  const limits = new Proxy(store.limits, {
    get: (target, prop) =>
      prop === 'acquire'
        ? (req: Parameters<Store['limits']['acquire']>[0], now: number) => target.acquire({ ...req, audit: [] }, now)
        : (Reflect.get(target, prop, target) as unknown),
  });
  return new Proxy(store, {
    get: (target, prop) => {
      if (prop === 'audit') return audit;
      if (prop === 'limits') return limits;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

interface Measured {
  /** From the caller's turn returning its action to its next turn starting with the answer. */
  turn: Summary;
  /** Direct calls only: from the caller's turn returning to the callee's turn starting (the checks, the pair's token and the mesh.call commit). */
  forward: Summary | null;
}

/** Runs `CALLS` caller runs one after another; returns the caller-measured latency of getting the no-op agent's answer. */
async function measure(store: Store, mode: Mode): Promise<Measured> {
  let t1 = 0;
  let forwarded = 0;
  let done: ((ms: number) => void) | null = null;
  const lead: AgentFunction = (input) => {
    if (input.task.turn === 1) {
      t1 = performance.now();
      return { actions: [mode === 'handoff' ? { type: 'handoff', agent: 'noop' } : { type: 'call_agent', agent: 'noop' }] };
    }
    const ms = performance.now() - t1;
    if (!input.results[0]?.ok) throw new Error(`the no-op agent's answer did not arrive: ${JSON.stringify(input.results[0])}`);
    done?.(ms);
    return { output: null };
  };
  const noop: AgentFunction = () => {
    forwarded = performance.now();
    return { output: null };
  };
  const base = makeRegistry({ lead, noop });
  const registry: Registry = { ...base, mesh: [{ from: 'lead', to: 'noop', maxPerMinute: 1_000_000, maxHops: 1 }] };
  const s = mode === 'directNoShadow' ? withoutShadow(store) : store;
  const worker = await startWorker(s, registry);
  const turns: number[] = [];
  const calls: number[] = [];
  try {
    for (let i = 0; i < WARMUP + CALLS; i++) {
      const got = new Promise<number>((resolve) => (done = resolve));
      await submitRun(s, registry, { agent: 'lead', input: null }, Date.now());
      const ms = await got;
      if (i < WARMUP) continue;
      turns.push(ms);
      if (mode === 'direct') calls.push(forwarded - t1);
    }
  } finally {
    await worker.stop();
  }
  return { turn: summarize(turns), forward: calls.length ? summarize(calls) : null };
}

/**
 * The shadow log's own cost, isolated from the noise of whole runs: the pair's token
 * taken alone versus with the `mesh.call` row in the same commit, and a turn's commit
 * of its audit with and without the `mesh.reply` row — interleaved, so load hits both
 * sides alike. The sum of the two p50 differences is what the shadow adds to a call.
 */
async function shadowCost(store: Store): Promise<{ callRowMs: number; replyRowMs: number; totalMs: number }> {
  const take = { ruleId: 'mesh:a>b', key: `mesh:bench>${randomBytes(4).toString('hex')}`, capacity: 1e9, refillPerMs: 1e6, onExceeded: 'fail' as const };
  const base = { runId: 'run_bench', taskId: 'task_bench', agent: 'lead', actor: 'bench' };
  const call = { ...base, kind: 'mesh.call', digest: 'x', data: { key: 'run_bench/task_bench/1/0', from: 'lead', to: 'noop', hop: 1, chain: ['lead', 'noop'], call: 'call_x' } };
  const reply = { ...base, kind: 'mesh.reply', digest: 'y', data: { key: 'run_bench/task_bench/1/0', call: 'call_x', from: 'lead', to: 'noop', hop: 1, ok: true, turns: 1, ms: 0 } };
  const turn = { ...base, kind: 'turn.committed', digest: 'z', data: { turn: 1, outcome: 'continue' } };
  const acquire = (audit: typeof call[]) => store.limits.acquire({ takes: [take], budgets: [], micros: 0, tokens: 0, reservationId: 'rsv_bench', runId: 'run_bench', taskId: 'task_bench', expiresAt: 0, audit }, Date.now());
  const a: number[] = [], b: number[] = [], c: number[] = [], d: number[] = [];
  const time = async (into: number[], fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    into.push(performance.now() - t);
  };
  for (let i = 0; i < CALLS * 2; i++) {
    await time(a, () => acquire([]));
    await time(b, () => acquire([call]));
    await time(c, () => store.audit.append([turn], Date.now()));
    await time(d, () => store.audit.append([turn, reply], Date.now()));
  }
  const callRowMs = summarize(b).p50 - summarize(a).p50;
  const replyRowMs = summarize(d).p50 - summarize(c).p50;
  return { callRowMs: round(callRowMs, 4), replyRowMs: round(replyRowMs, 4), totalMs: round(callRowMs + replyRowMs, 4) };
}

interface BackendResult {
  backend: 'sqlite' | 'postgres';
  handoff: Summary;
  direct: Summary;
  directNoShadow: Summary;
  /** Direct: the caller's action to the callee's turn (checks, token and mesh.call commit). */
  directForward: Summary;
  /** The shadow rows' marginal cost in their commits (p50 differences, ms). */
  shadow: { callRowMs: number; replyRowMs: number; totalMs: number };
  /** handoff p50 / direct p50, caller turn to caller turn: the target is ≥ 5. */
  speedupP50: number;
  /** direct p50 − direct-without-shadow p50, in ms (whole runs: noisy on a loaded machine; `shadow` isolates it). */
  shadowMsP50: number;
}

async function onBackend(backend: 'sqlite' | 'postgres'): Promise<BackendResult> {
  // A temp SQLite file or a fresh PostgreSQL schema, migrated, and removed afterwards.
  const db = await openBenchStore(root, 'mesh', durability, backend === 'postgres' ? pgUrl! : undefined);
  const store = db.store;
  try {
    const handoff = (await measure(store, 'handoff')).turn;
    const measured = await measure(store, 'direct');
    const direct = measured.turn;
    const directForward = measured.forward!;
    const directNoShadow = (await measure(store, 'directNoShadow')).turn;
    const shadow = await shadowCost(store);
    return {
      backend,
      handoff,
      direct,
      directNoShadow,
      directForward,
      shadow,
      speedupP50: round(handoff.p50 / direct.p50, 1),
      shadowMsP50: round(direct.p50 - directNoShadow.p50, 3),
    };
  } finally {
    await db.cleanup();
  }
}

const root = mkdtempSync(join(tmpdir(), 'spine-bench-mesh-'));
const load = loadavg().map((l) => round(l, 2));
const results: BackendResult[] = [];
try {
  results.push(await onBackend('sqlite'));
  if (pgUrl) results.push(await onBackend('postgres'));
} finally {
  rmSync(root, { recursive: true, force: true });
}

if (args.json) {
  process.stdout.write(JSON.stringify({ calls: CALLS, durability, loadavg: load, results }, null, 2) + '\n');
} else {
  const ms = (s: Summary) => `p50 ${round(s.p50, 3)} ms  p99 ${round(s.p99, 3)} ms`;
  const lines = [`mesh bench: ${CALLS} calls per mode, one at a time, durability ${durability}, load average ${load.join(' ')}`];
  for (const r of results) {
    lines.push(
      `${r.backend.padEnd(8)} handoff          ${ms(r.handoff)}`,
      `${''.padEnd(8)} direct           ${ms(r.direct)}   → ${r.speedupP50}× faster at p50, turn to turn (target ≥ 5×)${r.speedupP50 >= 5 ? '' : '  MISSED'}`,
      `${''.padEnd(8)}   of which forwarding (checks, token + mesh.call commit) ${ms(r.directForward)}`,
      `${''.padEnd(8)} direct, no shadow ${ms(r.directNoShadow)}   (whole runs: ${r.shadowMsP50} ms apart at p50)`,
      `${''.padEnd(8)} shadow rows      mesh.call ${r.shadow.callRowMs} ms + mesh.reply ${r.shadow.replyRowMs} ms = ${r.shadow.totalMs} ms at p50 (target ≤ 0.1 ms)${r.shadow.totalMs <= 0.1 ? '' : '  MISSED'}`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}
