// Connections cut under load: a worker runs a batch of fan-out runs with tool effects
// on PostgreSQL while an admin connection terminates all of the worker's server
// connections (pg_terminate_backend) several times — or, opt-in, while the server
// itself is restarted. Nothing crashes the process; the worker reconnects and finishes
// every run, and the effects ledger holds each effect once, completed.
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ToolContext } from '../src/core/agent.ts';
import { consoleLogger } from '../src/core/log.ts';
import { Worker } from '../src/engine/worker.ts';
import { FAST_WORKER, registry } from './helpers.ts';
import { PG_ONLY, pgStore, terminate } from './fixtures/pg-env.ts';

const RUNS = 150;
const CUTS = 4;

describe('connections cut mid-load', { skip: PG_ONLY }, () => {
  it(`pg_terminate_backend ${CUTS} times while ${RUNS} fan-out runs go through: the worker reconnects and finishes them all`, { timeout: 120_000 }, async (t) => {
    const appName = `spine-cut-${process.pid}`;
    const { store, backend } = await pgStore(t, { migrate: true, appName, poolSize: 6 });
    const calls = new Map<string, number>();
    const reg = registry(
      {
        lead: (input) =>
          input.task.turn === 1
            ? {
                actions: [
                  { type: 'tool', tool: 'record', input: `lead-${JSON.stringify(input.task.input)}` },
                  { type: 'handoff', agent: 'leaf', input: 0 },
                  { type: 'handoff', agent: 'leaf', input: 1 },
                ],
              }
            : { output: input.results.length },
        leaf: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'record', input: 'leaf' }] } : { output: 'leaf done' }),
      },
      {
        record: (_input: unknown, ctx: ToolContext) => {
          calls.set(ctx.idempotencyKey, (calls.get(ctx.idempotencyKey) ?? 0) + 1);
          return 'ok';
        },
      },
      { limits: { maxReclaims: 100 }, retry: { maxAttempts: 10 } },
    );
    const quiet = process.env.SPINE_TEST_VERBOSE ? consoleLogger('reconnect-test') : undefined;
    const worker = new Worker({ store, registry: reg, options: { ...FAST_WORKER, concurrency: 8 }, ...(quiet ? { log: quiet } : {}) });
    await worker.start();
    const runIds: string[] = [];
    try {
      for (let i = 0; i < RUNS; i++) runIds.push((await store.runs.create({ agent: 'lead', input: i, maxAttempts: 10 }, Date.now())).run.id);

      let cut = 0;
      let terminated = 0;
      const started = Date.now();
      while (cut < CUTS) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 200));
        terminated += await terminate(appName);
        cut++;
      }
      const cutMs = Date.now() - started;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const running = await store.runs.list({ state: 'running', limit: RUNS });
        if (running.length === 0) break;
        if (Date.now() > deadline) assert.fail(`${running.length} runs still running a minute after the cuts`);
        await new Promise((r) => setTimeout(r, 100));
      }
      t.diagnostic(`cuts: ${CUTS} in ${cutMs} ms, ${terminated} server connections terminated, ${backend.stats.retries} retried operations`);
      assert.ok(terminated >= CUTS, 'connections were really cut');
    } finally {
      await worker.stop();
    }

    const failed = (await store.runs.list({ limit: RUNS + 1 })).filter((r) => r.state !== 'succeeded');
    assert.deepEqual(
      failed.map((r) => [r.id, r.state, r.error?.code]),
      [],
      'every run succeeded',
    );
    const effects = await store.tasks.effects({});
    assert.equal(effects.length, RUNS * 3, 'one ledger record per tool call');
    assert.deepEqual(
      effects.filter((e) => e.state !== 'completed').map((e) => e.key),
      [],
      'every effect completed',
    );
    // A tool re-runs only where the ledger knows it was started again (the process lost the
    // outcome between running it and recording it) — never silently.
    for (const e of effects) {
      const n = calls.get(e.key) ?? 0;
      assert.ok(n >= 1, `${e.key} ran`);
      if (n > 1) assert.ok(e.attempts >= n, `${e.key} ran ${n} times but the ledger saw ${e.attempts} attempts`);
    }
  });
});

/** Restarting the server cuts every test's connections: only on request, and only where pg_ctlcluster can do it. */
const RESTART_SKIP: false | string =
  PG_ONLY ||
  (process.env.SPINE_TEST_PG_RESTART !== '1'
    ? 'restarts the shared PostgreSQL server, cutting every other test’s connections: set SPINE_TEST_PG_RESTART=1 and run this file alone'
    : false);

describe('the database server restarted mid-load', { skip: RESTART_SKIP }, () => {
  it('the worker rides out a PostgreSQL restart and finishes every run, each effect once', { timeout: 120_000 }, async (t) => {
    const { store } = await pgStore(t, { migrate: true, poolSize: 6 });
    const reg = registry(
      {
        lead: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'record', input: 1 }, { type: 'handoff', agent: 'leaf', input: 0 }] } : { output: 1 }),
        leaf: async () => {
          await new Promise((r) => setTimeout(r, 10));
          return { output: 2 };
        },
      },
      { record: () => 'ok' },
      { limits: { maxReclaims: 100 }, retry: { maxAttempts: 10 } },
    );
    const worker = new Worker({ store, registry: reg, options: { ...FAST_WORKER, concurrency: 8 } });
    await worker.start();
    const RUNS_R = 300;
    try {
      for (let i = 0; i < RUNS_R; i++) await store.runs.create({ agent: 'lead', input: i, maxAttempts: 10 }, Date.now());
      await new Promise((r) => setTimeout(r, 300));
      const version = readdirSync('/etc/postgresql')[0]!;
      execSync(`pg_ctlcluster --skip-systemctl-redirect ${version} main restart`, { stdio: 'ignore' });
      const deadline = Date.now() + 90_000;
      for (;;) {
        const running = await store.runs.list({ state: 'running', limit: RUNS_R }).catch(() => null);
        if (running?.length === 0) break;
        if (Date.now() > deadline) assert.fail('runs still running 90 s after the restart');
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await worker.stop();
    }
    const runs = await store.runs.list({ limit: RUNS_R + 1 });
    assert.deepEqual(
      runs.filter((r) => r.state !== 'succeeded').map((r) => r.id),
      [],
    );
    const effects = await store.tasks.effects({});
    assert.equal(effects.filter((e) => e.state === 'completed').length, RUNS_R);
  });
});
