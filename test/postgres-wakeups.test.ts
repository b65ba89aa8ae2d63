// LISTEN/NOTIFY on PostgreSQL: a commit through one connection pool (another process,
// as far as the database can tell) wakes an idle worker on another pool at once,
// long before its fallback poll; an idle worker does not busy-poll (its round trips
// are counted); and the LISTEN connection comes back after it is cut.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registry, startWorker, until } from './helpers.ts';
import { PG_ONLY, pgStore, terminate } from './fixtures/pg-env.ts';

/** Long enough that a run finishing within the test was woken, not polled. */
const SLOW_POLL = 60_000;

describe('LISTEN/NOTIFY wake-ups', { skip: PG_ONLY }, () => {
  it('a commit in another process wakes an idle worker within milliseconds, not at its poll', async (t) => {
    const appName = `spine-wake-${process.pid}`;
    const workerSide = await pgStore(t, { migrate: true, keepSchema: true, appName });
    const producer = await pgStore(t, { schema: workerSide.schema });
    const reg = registry({ echo: (input) => ({ output: input.task.input }) });
    const worker = await startWorker(workerSide.store, reg, { pollMs: SLOW_POLL, leaseMs: 60_000, heartbeatMs: 30_000 });
    try {
      await until('listening', () => workerSide.backend.listening);
      // Let the start-up claim and first reaper pass go by: from here on the worker is idle.
      await new Promise((r) => setTimeout(r, 200));

      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        const { run } = await producer.store.runs.create({ agent: 'echo', input: i, maxAttempts: 1 }, Date.now());
        await until(`run ${i} done`, async () => (await producer.store.runs.get(run.id))?.state === 'succeeded', 5_000);
        latencies.push(Date.now() - started);
      }
      assert.ok(Math.max(...latencies) < 2_000, `woken by NOTIFY, not by the ${SLOW_POLL} ms poll: ${latencies.join(', ')} ms`);

      // The LISTEN connection is cut (and every pooled one with it): it reconnects, and wakes work again.
      assert.ok((await terminate(appName)) >= 1, 'cut the worker’s connections');
      await until('listening again', () => workerSide.backend.listening, 10_000);
      const { run } = await producer.store.runs.create({ agent: 'echo', input: 'after the cut', maxAttempts: 1 }, Date.now());
      await until('run after the cut done', async () => (await producer.store.runs.get(run.id))?.state === 'succeeded', 5_000);
    } finally {
      await worker.stop();
    }
  });

  it('an idle worker does not busy-poll: its round trips are counted', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const reg = registry({ echo: (input) => ({ output: input.task.input }) });
    // leaseMs 10 s: the reaper passes every 5 s (half the lease), the heartbeat every 10 s.
    const worker = await startWorker(store, reg, { pollMs: SLOW_POLL, leaseMs: 10_000, heartbeatMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    const before = { ...backend.stats };
    const windowMs = 3_000;
    await new Promise((r) => setTimeout(r, windowMs));
    await worker.stop();
    const queries = backend.stats.queries - before.queries;
    const transactions = backend.stats.transactions - before.transactions;
    t.diagnostic(`idle worker: ${queries} round trips, ${transactions} transactions in ${windowMs} ms`);
    // At most one reaper pass (3 small transactions) and one heartbeat can fall in the window.
    assert.ok(transactions <= 5, `${transactions} transactions while idle`);
    assert.ok(queries <= 20, `${queries} round trips while idle`);
  });
});
