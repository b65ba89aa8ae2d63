/**
 * Recovery speed after a crash: a worker process holding N tasks is SIGKILLed; how
 * long until every stranded task is running again in a surviving worker? Measured on
 * the embedded SQLite store and, with --db, on PostgreSQL. Measurement only.
 *
 *   node bench/recovery.ts [--db postgres://…] [--trials 7] [--tasks 50] [--lease-only]
 *
 * The dead worker is found by its missing process (SQLite) or its ended PostgreSQL
 * session (its advisory lock is gone) and its leases ended at once, fenced as ever.
 * --lease-only adds one trial with liveness off (worker.livenessMs 0): the tasks then
 * wait out their 30 s lease, which is what every crash cost before.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { silentLogger } from '../src/core/log.ts';
import { Worker } from '../src/engine/worker.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { parsePgUrl } from '../src/store/postgres/pg-config.ts';
import { Children } from '../test/fixtures/child.ts';
import { benchArgs, makeRegistry, pgUrlOption, wholeOption } from './harness.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('recovery', {
  db: { type: 'string' },
  trials: { type: 'string', default: '7' },
  tasks: { type: 'string', default: '50' },
  'lease-only': { type: 'boolean', default: false },
});
const DB = pgUrlOption('recovery', args.db);
const TRIALS = wholeOption('recovery', 'trials', args.trials);
const TASKS = wholeOption('recovery', 'tasks', args.tasks);
const LEASE_MS = 30_000;

async function pgAdmin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: parsePgUrl(url).connectionString });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** One crash: returns ms from SIGKILL to the last stranded task's turn starting in the survivor. */
async function trial(backend: 'sqlite' | 'postgres', livenessMs: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'spine-recovery-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  let url: string;
  let drop = async () => {};
  if (backend === 'postgres') {
    const schema = `bench_${randomBytes(4).toString('hex')}`;
    await pgAdmin(DB!, `CREATE SCHEMA "${schema}"`);
    url = `${DB}${DB!.includes('?') ? '&' : '?'}schema=${schema}&pool=4`;
    drop = () => pgAdmin(DB!, `DROP SCHEMA "${schema}" CASCADE`);
  } else {
    url = `sqlite:${join(dir, 'spine.db')}`;
  }
  const store = openStore({ url, durability: 'strict' });
  await store.migrate();
  const children = new Children();
  let survivor: Worker | undefined;
  try {
    for (let n = 0; n < TASKS; n++) await store.runs.create({ agent: 'stuck', input: { n }, maxAttempts: 3, actor: 'bench' }, Date.now());
    const child = children.spawn({ db: url, dir: data, scenario: 'stuck', leaseMs: LEASE_MS, heartbeatMs: 10_000, concurrency: TASKS });
    const childId = await child.ready;
    for (;;) {
      const held = await store.tasks.list({ state: 'running', limit: TASKS * 2 });
      if (held.length === TASKS && held.every((t) => t.leaseOwner === childId)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    let started = 0;
    let lastStart = 0;
    let allStarted!: () => void;
    const restarted = new Promise<void>((r) => (allStarted = r));
    const registry = makeRegistry({
      stuck: () => {
        lastStart = performance.now();
        if (++started === TASKS) allStarted();
        return { output: null };
      },
    });
    survivor = new Worker({ store, registry, log: silentLogger, options: { concurrency: TASKS, leaseMs: LEASE_MS, livenessMs, pollMs: 50 } });
    await survivor.start();
    // A crash comes at any moment of the survivors' sweep cycle, not just after one.
    await new Promise((r) => setTimeout(r, Math.random() * 1_000));
    const killedAt = performance.now();
    await children.kill(child);
    await restarted;
    return lastStart - killedAt;
  } finally {
    await survivor?.stop();
    await children.killAll();
    await store.close();
    await drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const backends: Array<'sqlite' | 'postgres'> = DB ? ['sqlite', 'postgres'] : ['sqlite'];
console.log(`Recovery after SIGKILL — ${TASKS} stranded tasks, lease ${LEASE_MS / 1000} s, ${TRIALS} trials; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('backend     p50 ms   p90 ms    max ms   target');
for (const backend of backends) {
  const times: number[] = [];
  for (let i = 0; i < TRIALS; i++) times.push(await trial(backend, 1_000));
  const s = summarize(times);
  console.log(`${backend.padEnd(10)} ${String(round(s.p50, 0)).padStart(7)} ${String(round(s.p90, 0)).padStart(8)} ${String(round(s.max, 0)).padStart(9)}   p50 < 1,000 ms ${s.p50 < 1_000 ? 'met' : 'MISSED'}`);
  if (args['lease-only']) console.log(`${backend.padEnd(10)} liveness off (lease expiry only): ${round(await trial(backend, 0), 0)} ms`);
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
