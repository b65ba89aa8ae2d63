// Chaos on PostgreSQL (issue 5): 4 real `spine worker` processes and 1 `spine gateway`
// on one schema. A driver submits runs through the gateway's HTTP API — each with its
// own Idempotency-Key, in one of 20 sessions, routed by a binding to a commander that
// fans out to two specialists and writes an (idempotent, external) ledger — while a
// random worker is SIGKILLed every 1–3 s and restarted. Afterwards: every run
// succeeded and none is lost, every effect was applied exactly once, and no session's
// messages ran out of order (by the store's audit, by what each turn saw of its
// session, and by the agents' own start/finish marks).
//
// SPINE_CHAOS_RUNS sets the number of runs (default 1,000 — the 5,000 takes
// several minutes on a 2-core machine; the diagnostic line says how many ran).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { effectKey } from '../src/store/store.ts';
import { Cluster, fnAgent, fnTool, http, type SpineProcess } from './fixtures/pg-chaos-cluster.ts';
import { SPECIALISTS, readApplied, readCalls, readTurnMarks, type ToolCall } from './fixtures/pg-chaos-project.ts';
import { PG_ONLY, sql } from './fixtures/pg-env.ts';

const RUNS = Number(process.env.SPINE_CHAOS_RUNS ?? 1_000);
const SESSIONS = 20;
const WORKERS = 4;
const MIN_KILLS = 5;
/** Every DUP_EVERY-th envelope is sent twice: the retry must find the first run. */
const DUP_EVERY = 10;
/**
 * Arrivals are spread over at least this long (a steady load rather than one burst),
 * so at least MIN_KILLS kills, 1–3 s apart, land while there is work in flight.
 */
const MIN_DRIVE_MS = (MIN_KILLS + 1) * 3_000;
/**
 * "Nothing is stuck" is a bound on progress, not on speed (speed lives in bench/): the
 * test fails when no run has finished for STALL_MS while some are unfinished. A stranded
 * lane holds up its session's later runs, and the other sessions run dry behind it
 * within seconds. Quiet, 1,000 runs take 40–110 s here; with two busy loops on the 2
 * cores, over 300 s, since every kill also costs a replacement process's start.
 */
const STALL_MS = 60_000;
/** A cap for a test that makes progress too slowly to be worth waiting for. */
const BUDGET_MS = Math.max(900_000, RUNS * 900);
/**
 * Kills come every 1–3 s however slowly the runs go, and each one costs a new
 * process's start (~0.7 s of CPU): on a loaded machine a slower run drew more kills
 * (130 where a quiet one drew 45), which slowed it further. Past this many the
 * survivors finish in peace.
 */
const MAX_KILLS = 60;

const sessionKey = (s: number) => `agent:commander:peer:s${s}`;

describe('chaos: worker processes SIGKILLed under load on PostgreSQL', { skip: PG_ONLY }, () => {
  it(`${RUNS} runs through the gateway, ${WORKERS} workers killed at random: none lost, effects once, lanes in order`, { timeout: BUDGET_MS + 60_000 }, async (t) => {
    assert.ok(Number.isInteger(RUNS) && RUNS >= SESSIONS, `SPINE_CHAOS_RUNS must be an integer ≥ ${SESSIONS}`);
    const cluster = new Cluster({
      agents: {
        commander: fnAgent('commander', { grants: { tools: ['ledger.*'] } }),
        analyst: fnAgent('analyst', { grants: { tools: ['ledger.*'] } }),
        critic: fnAgent('critic', { grants: { tools: ['ledger.*'] } }),
      },
      tools: { 'ledger.write': fnTool('ledgerWrite', { sideEffect: 'external' }) },
      bindings: [{ id: 'api-to-commander', match: { channel: 'api' }, agent: 'commander', session: 'per-peer' }],
      // Short leases so a killed worker's tasks are retaken quickly; reclaims are expected, many times over.
      worker: { concurrency: 8, leaseMs: 1_500, heartbeatMs: 300, pollMs: 50, drainMs: 1_000 },
      limits: { maxReclaims: 100 },
    });
    t.after(() => cluster.close());
    await cluster.migrate();
    const started = Date.now();

    const [gateway, token, ...first] = await Promise.all([cluster.startGateway(), cluster.operatorToken(), ...Array.from({ length: WORKERS }, () => cluster.startWorker())]);
    const workers: Array<SpineProcess & { workerId: string }> = first;
    const workerIds = new Set(workers.map((w) => w.workerId));
    const startupMs = Date.now() - started;
    const driveStart = Date.now();

    // ── the driver: sessions in parallel, each session's messages in order ──
    const runOf = new Map<string, string>(); // `${session}:${order}` → run id
    let duplicatesChecked = 0;
    const perSession = Math.ceil(RUNS / SESSIONS);
    const drive = async (s: number) => {
      for (let order = 0; s + order * SESSIONS < RUNS; order++) {
        const due = driveStart + (order * MIN_DRIVE_MS) / perSession;
        if (Date.now() < due) await sleep(due - Date.now());
        const key = `chaos-${s}-${order}`;
        const body = { peer: { kind: 'dm' as const, id: `s${s}` }, sender: { id: `u${s}` }, text: `session ${s} message ${order}`, data: { session: s, order } };
        const res = await http<{ run: { id: string }; duplicate?: boolean }>(gateway.base, token, 'POST', '/v1/envelopes', body, { 'idempotency-key': key });
        assert.equal(res.status, 202, `POST ${key}: ${JSON.stringify(res.body)}`);
        runOf.set(`${s}:${order}`, res.body.run.id);
        if ((s + order * SESSIONS) % DUP_EVERY === 0) {
          const again = await http<{ run: { id: string }; duplicate?: boolean }>(gateway.base, token, 'POST', '/v1/envelopes', body, { 'idempotency-key': key });
          assert.equal(again.status, 200, `retry of ${key}: ${JSON.stringify(again.body)}`);
          assert.equal(again.body.duplicate, true);
          assert.equal(again.body.run.id, res.body.run.id, 'a retry finds the first run');
          duplicatesChecked++;
        }
      }
    };
    let submittedAt = 0;
    const driving = Promise.all(Array.from({ length: SESSIONS }, (_, s) => drive(s))).then(() => (submittedAt = Date.now()));
    driving.catch(() => {}); // awaited below

    const unfinished = async () => Number((await sql<{ n: string }>(cluster.schema, `SELECT count(*) AS n FROM runs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')`))[0]!.n);
    let allDone = false;

    // ── the chaos: SIGKILL a random running worker every 1–3 s; a new one starts in its place at once ──
    const kills: Array<{ atMs: number; heldTasks: number }> = [];
    /** Slots whose replacement is still starting (not a victim until it runs). */
    const starting = new Set<number>();
    const restarts: Array<Promise<void>> = [];
    const chaos = (async () => {
      while (!allDone && !cluster.closed && kills.length < MAX_KILLS) {
        await sleep(1_000 + Math.random() * 2_000);
        while (!allDone && !cluster.closed && starting.size === workers.length) await sleep(50);
        if (allDone || cluster.closed) break;
        const running = workers.map((_, i) => i).filter((i) => !starting.has(i));
        const i = running[Math.floor(Math.random() * running.length)]!;
        const victim = workers[i]!;
        const held = await sql<{ n: string }>(cluster.schema, `SELECT count(*) AS n FROM tasks WHERE lease_owner = $1`, [victim.workerId]);
        const exit = await cluster.kill(victim);
        assert.equal(exit.signal, 'SIGKILL', `worker ${victim.pid} should die by SIGKILL:\n${victim.output()}`);
        kills.push({ atMs: Date.now() - driveStart, heldTasks: Number(held[0]!.n) });
        starting.add(i);
        const restart = cluster.startWorker().then((next) => {
          workers[i] = next;
          workerIds.add(next.workerId);
          starting.delete(i);
        });
        restart.catch(() => {}); // awaited below
        restarts.push(restart);
      }
      await Promise.all(restarts);
    })();
    chaos.catch(() => {}); // awaited below; a failure in it must not be an unhandled rejection meanwhile

    try {
      await driving;
      const deadline = Date.now() + BUDGET_MS;
      let fewest = Infinity;
      let progressAt = Date.now();
      for (;;) {
        const left = await unfinished();
        const count = Number((await sql<{ n: string }>(cluster.schema, 'SELECT count(*) AS n FROM runs'))[0]!.n);
        if (left === 0 && count === RUNS) break;
        if (left < fewest) [fewest, progressAt] = [left, Date.now()];
        const why = Date.now() - progressAt > STALL_MS ? `no run finished for ${STALL_MS} ms` : Date.now() > deadline ? `still going after ${BUDGET_MS} ms` : null;
        if (why) assert.fail(`${left} of ${count} runs unfinished: ${why}; worker output:\n${workers.map((w) => w.output()).join('\n')}`);
        await sleep(250);
      }
    } finally {
      allDone = true;
      await chaos;
    }
    const finishedAt = Date.now();

    // The survivors drain on SIGTERM and exit cleanly; so does the gateway.
    const exits = await Promise.all([...workers, gateway].map((p) => cluster.kill(p, 'SIGTERM')));
    for (const [i, e] of exits.entries()) assert.deepEqual(e, { code: 0, signal: null }, `graceful exit of process ${i}:\n${[...workers, gateway][i]!.output()}`);

    const { store, dir, schema } = cluster;

    // ── none lost: one envelope and one run per submission, all succeeded ──
    assert.equal(runOf.size, RUNS);
    const envelopes = await sql<{ idempotency_key: string; state: string; run_id: string }>(schema, 'SELECT idempotency_key, state, run_id FROM envelopes');
    assert.equal(envelopes.length, RUNS, 'one envelope per submission, duplicates folded');
    for (const e of envelopes) assert.equal(e.state, 'routed', `envelope ${e.idempotency_key}`);
    const runs = await store.runs.list({ limit: RUNS * 2 });
    assert.equal(runs.length, RUNS, 'one run per envelope');
    assert.deepEqual(new Set(runs.map((r) => r.id)), new Set(runOf.values()), 'the runs are exactly the ones the gateway acknowledged');
    for (const r of runs) assert.equal(r.state, 'succeeded', `run ${r.id}: ${JSON.stringify(r.error)}`);
    const tasks = await store.tasks.list({ limit: RUNS * 10 });
    assert.equal(tasks.length, RUNS * 3, 'a commander and two specialists per run, no orphans');
    for (const task of tasks) {
      assert.equal(task.state, 'succeeded', `task ${task.id} (${task.agent}): ${JSON.stringify(task.error)}`);
      assert.equal(task.turns, 2, `task ${task.id} took two turns`);
    }

    // ── each effect happened exactly once ──
    const expected = new Set(tasks.map((task) => effectKey(task.runId, task.id, 1, task.agent === 'commander' ? SPECIALISTS.length : 0)));
    const effects = await store.tasks.effects({});
    assert.equal(effects.length, RUNS * 3, 'one ledger row per effect');
    assert.deepEqual(new Set(effects.map((e) => e.key)), expected);
    for (const e of effects) assert.equal(e.state, 'completed', `effect ${e.key}`);
    // The external system applies a key at most once; every effect reached it, and nothing else did.
    const applied = new Set(readApplied(dir));
    const missing = [...expected].filter((k) => !applied.has(k));
    const stray = [...applied].filter((k) => !expected.has(k));
    const explain = (k: string) => JSON.stringify({ key: k, ledger: effects.find((e) => e.key === k), calls: readCalls(dir, 'ledger.write').filter((c) => c.key === k) });
    assert.deepEqual(missing, [], `effects the external system never applied:\n${missing.map(explain).join('\n')}`);
    assert.deepEqual(stray, [], 'keys applied that the ledger does not know');
    const byKey = new Map<string, ToolCall[]>();
    for (const c of readCalls(dir, 'ledger.write')) {
      assert.ok(expected.has(c.key), `a call with an unknown key ${c.key}`);
      byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
    }
    let reExecuted = 0;
    let restarted = 0;
    let cutBeforeTool = 0;
    let invocations = 0;
    for (const e of effects) {
      const calls = byKey.get(e.key) ?? [];
      invocations += calls.length;
      assert.ok(calls.length >= 1, `effect ${e.key} never reached the tool`);
      // Every real call follows a committed ledger attempt; an attempt cut short by a kill before the call has none.
      assert.ok(calls.length <= e.attempts, `effect ${e.key}: ${calls.length} calls but ${e.attempts} ledger attempts`);
      assert.ok(calls.filter((c) => !c.maybeRepeated).length <= 1, `effect ${e.key} ran twice as a first attempt`);
      if (e.attempts === 1) assert.equal(calls[0]!.maybeRepeated, false, `first-attempt effect ${e.key} ran with maybeRepeated`);
      calls.slice(1).forEach((c) => assert.equal(c.maybeRepeated, true, `a repeat of ${e.key} without maybeRepeated`));
      if (calls.length > 1) reExecuted++;
      if (e.attempts > 1) restarted++;
      cutBeforeTool += e.attempts - calls.length;
    }
    const attempts = effects.reduce((n, e) => n + e.attempts, 0);

    // ── outputs: both specialists merged, in the right session and order ──
    const whereOfRun = new Map([...runOf].map(([k, id]) => [id, k.split(':').map(Number) as [number, number]]));
    for (const r of runs) {
      const [s, order] = whereOfRun.get(r.id)!;
      assert.deepEqual(r.output, {
        session: s,
        order,
        seenPrev: order - 1,
        parts: SPECIALISTS.map((agent) => ({ agent, session: s, order, receipt: `rcpt:${agent}:${s}:${order}` })),
        receipt: `rcpt:commander:${s}:${order}`,
      });
      assert.equal(r.sessionKey, sessionKey(s));
    }

    // ── lanes: within a session, run N+1's root task was first leased after run N finished ──
    const rows = await sql<{ id: string; session_key: string; session_seq: string; leased: string | null; finished: string | null }>(
      schema,
      `WITH leased AS (SELECT task_id, min(seq) AS seq FROM audit_events WHERE kind = 'task.leased' GROUP BY task_id),
            finished AS (SELECT run_id, max(seq) AS seq FROM audit_events WHERE kind = 'run.succeeded' GROUP BY run_id)
       SELECT r.id, r.session_key, r.session_seq, l.seq AS leased, f.seq AS finished
       FROM runs r LEFT JOIN leased l ON l.task_id = r.root_task_id LEFT JOIN finished f ON f.run_id = r.id
       ORDER BY r.session_key, r.session_seq`,
    );
    for (const [i, row] of rows.entries()) {
      const [s, order] = whereOfRun.get(row.id)!;
      assert.equal(row.session_key, sessionKey(s));
      assert.equal(Number(row.session_seq), order + 1, `run ${row.id} (session ${s}, message ${order}) has its place in the lane`);
      const prev = rows[i - 1];
      assert.ok(row.leased !== null && row.finished !== null, `run ${row.id} was leased and finished`);
      if (order === 0) continue;
      assert.ok(prev && prev.session_key === row.session_key && prev.finished !== null);
      assert.ok(Number(row.leased) > Number(prev.finished), `session ${s}: message ${order} started (audit #${row.leased}) before message ${order - 1} finished (#${prev.finished})`);
    }
    const laneWaits = Number((await sql<{ n: string }>(schema, `SELECT count(*) AS n FROM audit_events WHERE kind = 'task.queued' AND actor = 'lane'`))[0]!.n);
    // The agents' own marks: the first start of message N+1 comes after message N's first finished final turn.
    const marks = readTurnMarks(dir);
    const firstStart = new Map<string, number>();
    const firstFinish = new Map<string, number>();
    for (const m of marks) {
      const k = `${m.session}:${m.order}`;
      if (m.phase === 'start' && m.turn === 1) firstStart.set(k, Math.min(firstStart.get(k) ?? Infinity, m.at));
      if (m.phase === 'finish') firstFinish.set(k, Math.min(firstFinish.get(k) ?? Infinity, m.at));
    }
    for (const k of runOf.keys()) {
      const [s, order] = k.split(':').map(Number) as [number, number];
      assert.ok(firstStart.has(k) && firstFinish.has(k), `turn marks of ${k}`);
      if (order > 0) assert.ok(firstStart.get(k)! >= firstFinish.get(`${s}:${order - 1}`)!, `session ${s}: message ${order} started before message ${order - 1} finished`);
    }

    // ── what the kills did ──
    const kinds = await sql<{ kind: string; n: string }>(
      schema,
      `SELECT kind, count(*) AS n FROM audit_events WHERE kind IN ('task.reclaimed', 'turn.resumed', 'effect.replayed', 'effect.restarted', 'task.leased') GROUP BY kind`,
    );
    const count = (kind: string) => Number(kinds.find((k) => k.kind === kind)?.n ?? 0);
    assert.equal(count('effect.restarted'), attempts - effects.length, 'every extra ledger attempt is audited');
    const summary = {
      runs: RUNS,
      sessions: SESSIONS,
      workers: WORKERS,
      workerProcessesStarted: workerIds.size,
      kills: kills.length,
      killsAtMs: kills.map((k) => k.atMs),
      tasksHeldByKilledWorkers: kills.reduce((n, k) => n + k.heldTasks, 0),
      tasksReclaimed: count('task.reclaimed'),
      leases: count('task.leased'),
      turnsResumed: count('turn.resumed'),
      effectsReplayedFromLedger: count('effect.replayed'),
      toolInvocations: invocations,
      ledgerAttempts: attempts,
      effectsRestarted: restarted,
      effectsReExecuted: reExecuted,
      attemptsCutBeforeTool: cutBeforeTool,
      duplicateSubmissionsChecked: duplicatesChecked,
      laneAdmissions: laneWaits,
      startupMs,
      submitMs: submittedAt - driveStart,
      processMs: finishedAt - driveStart,
      verifyMs: Date.now() - finishedAt,
      runsPerSecond: Math.round((RUNS / (finishedAt - driveStart)) * 1000),
    };
    t.diagnostic(`postgres chaos: ${JSON.stringify(summary)}`);
    assert.ok(kills.length >= MIN_KILLS, `at least ${MIN_KILLS} kills while the runs were processed (got ${kills.length})`);
    assert.ok(count('task.reclaimed') > 0, 'killed workers left leases that others reclaimed');
  });
});
