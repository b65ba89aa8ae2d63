/**
 * Heartbeats (issue 13, part 4): what an idle heartbeat fire costs — its activity
 * look-up over the watched scopes, agents and channels plus the claim that records
 * the skip — against a plain schedule fire of the same interval (an envelope and a run
 * committed through intake, the least a fire without skipIfIdle does before any turn),
 * measured in the same run on the same store. With `--facts` facts in unwatched scopes,
 * so the look-up is not answered by an empty table.
 *
 *   node bench/heartbeat.ts [--db postgres://…] [--fires 2000] [--facts 20000] [--json]
 *
 * Measurement only: figures per fire as percentiles and the ratio of medians.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FunctionAgent } from '../src/agents/function-agent.ts';
import { ManualClock } from '../src/core/clock.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import { createRegistry } from '../src/engine/registry.ts';
import { Intake } from '../src/intake/intake.ts';
import { compileSchedules } from '../src/intake/schedules/config.ts';
import { Scheduler } from '../src/intake/schedules/scheduler.ts';
import { compileSessions } from '../src/routing/sessions.ts';
import { benchArgs, openBenchStore, wholeOption } from './harness.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('heartbeat', { db: { type: 'string' }, fires: { type: 'string' }, facts: { type: 'string' }, json: { type: 'boolean', default: false } });
const FIRES = wholeOption('heartbeat', 'fires', args.fires) ?? 2_000;
const FACTS = wholeOption('heartbeat', 'facts', args.facts, 0) ?? 20_000;
const dir = mkdtempSync(join(tmpdir(), 'spine-bench-heartbeat-'));
const pgUrl = args.db?.startsWith('postgres') ? args.db : null;
// A temp SQLite file or a fresh PostgreSQL schema, migrated, and removed afterwards.
const db = await openBenchStore(dir, 'heartbeat', 'fast', pgUrl ?? undefined);
const store = db.store;
try {
  const clock = new ManualClock(Date.UTC(2026, 0, 5, 0, 0, 30));
  const issues: FieldIssue[] = [];
  const schedules = compileSchedules(
    {
      plain: { every: '1m', agent: 'commander' },
      hb: { every: '1m', agent: 'commander', heartbeat: { watch: ['team/accounts/*', 'agent:billing', 'channel:slack'] } },
    },
    issues,
    ['commander', 'billing'],
  );
  if (issues.length) throw new Error(JSON.stringify(issues));
  const registry = createRegistry({ agents: { commander: { agent: new FunctionAgent(() => ({ output: 'x' })) }, billing: { agent: new FunctionAgent(() => ({ output: 'x' })) } } });
  const intake = new Intake(store, registry, { bindings: [], sessions: compileSessions(undefined, issues) }, clock);
  const by = { agent: 'someone', run: null, task: null, turn: null, actor: 'bench' };
  for (let i = 0; i < FACTS; i++) {
    await store.memory.write({ tenant: 'default', scope: `team/other${i % 50}`, key: `k${i}`, value: i, trust: 'owner', writtenBy: by, onConflict: 'last-writer-wins' }, clock.now());
  }
  // One scheduler per schedule, so each tick does exactly one kind of fire.
  const plain = new Scheduler({ store, intake, schedules: schedules.filter((s) => s.id === 'plain'), clock });
  const hb = new Scheduler({ store, intake, schedules: schedules.filter((s) => s.id === 'hb'), clock });
  await plain.sync();
  await hb.sync();
  const timesPlain: number[] = [];
  const timesIdle: number[] = [];
  for (let i = 0; i < FIRES; i++) {
    clock.set((Math.floor(clock.now() / 60_000) + 1) * 60_000);
    let t = performance.now();
    const p = await plain.tick();
    timesPlain.push(performance.now() - t);
    t = performance.now();
    const h = await hb.tick();
    timesIdle.push(performance.now() - t);
    if (p.fired.length !== 1 || h.idle.length !== 1) throw new Error(`tick ${i}: plain fired ${p.fired.length}, heartbeat idle ${h.idle.length}`);
  }
  const plainS = summarize(timesPlain);
  const idleS = summarize(timesIdle);
  const out = {
    backend: pgUrl ? 'postgres' : 'sqlite',
    fires: FIRES,
    facts: FACTS,
    plainFireMs: plainS,
    idleHeartbeatFireMs: idleS,
    idleToPlainP50: round(idleS.p50 / plainS.p50, 2),
    turnsTakenByIdleFires: 0,
  };
  if (args.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`heartbeat bench (${out.backend}, ${FIRES} fires each, ${FACTS} facts in unwatched scopes)`);
    console.log(`  plain schedule fire (envelope + run):  p50 ${round(plainS.p50)} ms  p99 ${round(plainS.p99)} ms`);
    console.log(`  idle heartbeat fire (look-up + skip):   p50 ${round(idleS.p50)} ms  p99 ${round(idleS.p99)} ms`);
    console.log(`  idle / plain (p50): ${out.idleToPlainP50}; turns taken by idle fires: 0`);
  }
} finally {
  await db.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
