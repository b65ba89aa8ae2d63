// LISTEN/NOTIFY on PostgreSQL: a commit through one connection pool (another process,
// as far as the database can tell) wakes an idle worker on another pool at once,
// long before its fallback poll; an idle worker does not busy-poll (its round trips
// are counted); and the LISTEN connection comes back after it is cut.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../src/core/clock.ts';
import { Worker } from '../src/engine/worker.ts';
import { FAST_WORKER, registry, until } from './helpers.ts';
import { PG_ONLY, pgStore, terminate } from './fixtures/pg-env.ts';

/** The fallback poll (the worker's clock is manual anyway: its poll never comes unless the test moves it). */
const SLOW_POLL = 60_000;

describe('LISTEN/NOTIFY wake-ups', { skip: PG_ONLY }, () => {
  it('a commit in another process wakes an idle worker, never its poll', async (t) => {
    const appName = `spine-wake-${process.pid}`;
    const workerSide = await pgStore(t, { migrate: true, keepSchema: true, appName });
    const producer = await pgStore(t, { schema: workerSide.schema });
    const reg = registry({ echo: (input) => ({ output: input.task.input }) });
    // The worker's clock stands still (a minute ahead, so the producer's runs are due to it):
    // its poll never fires, so every run it finishes was woken by NOTIFY — whatever the machine's load.
    const clock = new ManualClock(Date.now() + 60_000);
    const worker = new Worker({ store: workerSide.store, registry: reg, clock, options: { ...FAST_WORKER, pollMs: SLOW_POLL, leaseMs: 60_000, heartbeatMs: 30_000 } });
    await worker.start();
    try {
      await until('listening', () => workerSide.backend.listening);
      await clock.waitForTimers(2); // the loop and the heartbeat are asleep: the worker is idle

      for (let i = 0; i < 5; i++) {
        const { run } = await producer.store.runs.create({ agent: 'echo', input: i, maxAttempts: 1 }, Date.now());
        await until(`run ${i} done`, async () => (await producer.store.runs.get(run.id))?.state === 'succeeded', 30_000);
      }

      // The LISTEN connection is cut (and every pooled one with it): it reconnects, and wakes work again.
      assert.ok((await terminate(appName)) >= 1, 'cut the worker’s connections');
      await until('listening again', () => workerSide.backend.listening, 30_000);
      const { run } = await producer.store.runs.create({ agent: 'echo', input: 'after the cut', maxAttempts: 1 }, Date.now());
      await until('run after the cut done', async () => (await producer.store.runs.get(run.id))?.state === 'succeeded', 30_000);
    } finally {
      await worker.stop();
    }
  });

  it('an idle worker does not busy-poll: its round trips are counted', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const reg = registry({ echo: (input) => ({ output: input.task.input }) });
    // leaseMs 10 s: the reaper passes every 5 s (half the lease), the heartbeat every 10 s.
    // Three seconds of the worker's (manual) clock go by in 100 ms steps; after each step the
    // test waits until the loop and the heartbeat are asleep again — no real time involved.
    const clock = new ManualClock(Date.now());
    const worker = new Worker({ store, registry: reg, clock, options: { ...FAST_WORKER, pollMs: SLOW_POLL, leaseMs: 10_000, heartbeatMs: 10_000 } });
    await worker.start();
    await clock.waitForTimers(2);
    const before = { ...backend.stats };
    const windowMs = 3_000;
    for (let elapsed = 0; elapsed < windowMs; elapsed += 100) {
      clock.advance(100);
      await clock.waitForTimers(2);
    }
    await worker.stop();
    const queries = backend.stats.queries - before.queries;
    const transactions = backend.stats.transactions - before.transactions;
    t.diagnostic(`idle worker: ${queries} round trips, ${transactions} transactions in ${windowMs} ms`);
    // At most one reaper pass (4 small transactions: expired leases, reservations,
    // approvals, join deadlines), one heartbeat and the stop can fall in the window.
    assert.ok(transactions <= 6, `${transactions} transactions while idle`);
    assert.ok(queries <= 20, `${queries} round trips while idle`);
  });
});
