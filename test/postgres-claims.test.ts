// SKIP LOCKED claims on PostgreSQL: claimers on separate connection pools (as separate
// processes would be) race for the same ready tasks and outbox items. Every row goes to
// exactly one claimer, batches respect their limit, and nobody is starved while rows
// are left.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PG_ONLY, pgStore } from './fixtures/pg-env.ts';

const TASKS = 400;
const CLAIMERS = 4;
const BATCH = 7;

describe('SKIP LOCKED claims', { skip: PG_ONLY }, () => {
  it(`${CLAIMERS} concurrent claimers on separate pools never double-claim ${TASKS} tasks`, async (t) => {
    const main = await pgStore(t, { migrate: true, keepSchema: true });
    const now = Date.now();
    await Promise.all(Array.from({ length: TASKS }, (_, i) => main.store.runs.create({ agent: 'noop', input: i, maxAttempts: 1 }, now)));
    const claimers = [main];
    for (let i = 1; i < CLAIMERS; i++) claimers.push(await pgStore(t, { schema: main.schema, keepSchema: i < CLAIMERS - 1 }));

    const claimed = new Map<string, string>();
    const batchSizes: number[] = [];
    const doubles: string[] = [];
    await Promise.all(
      claimers.map(async (c, n) => {
        const worker = `claimer-${n}`;
        // Several claims in flight per claimer, like a worker with free slots and a busy pool.
        await Promise.all(
          [0, 1].map(async () => {
            for (;;) {
              const got = await c.store.tasks.claim({ workerId: worker, limit: BATCH, leaseMs: 60_000, now: Date.now() });
              if (got.length === 0) return;
              batchSizes.push(got.length);
              for (const g of got) {
                if (claimed.has(g.task.id)) doubles.push(g.task.id);
                claimed.set(g.task.id, worker);
                assert.equal(g.lease.owner, worker);
                assert.equal(g.lease.leaseNo, 1, 'leased once');
              }
            }
          }),
        );
      }),
    );
    assert.deepEqual(doubles, [], 'no task claimed twice');
    assert.equal(claimed.size, TASKS, 'every task claimed');
    assert.ok(Math.max(...batchSizes) <= BATCH, `no batch beyond its limit (${Math.max(...batchSizes)})`);
    const perClaimer = new Map<string, number>();
    for (const w of claimed.values()) perClaimer.set(w, (perClaimer.get(w) ?? 0) + 1);
    assert.equal(perClaimer.size, CLAIMERS, `all claimers got work: ${JSON.stringify([...perClaimer])}`);
    const held = (await main.store.tasks.list({ limit: TASKS + 1 })).filter((task) => task.leaseOwner !== null);
    assert.equal(held.length, TASKS);
    for (const task of held) assert.equal(task.leaseOwner, claimed.get(task.id), 'held by the claimer that got it');
    const audit = (await main.store.audit.list({ limit: 100_000 })).filter((e) => e.kind === 'task.leased');
    assert.equal(audit.length, TASKS, 'one task.leased event per task');
  });

  it('racing outbox leasers share the due items: each leased once, none left behind', async (t) => {
    const a = await pgStore(t, { migrate: true, keepSchema: true });
    const b = await pgStore(t, { schema: a.schema });
    const N = 200;
    for (let i = 0; i < N; i++) {
      await a.store.outbox.enqueue({ idempotencyKey: `k${i}`, runId: null, taskId: null, channel: 'slack', account: 'T1', target: { channel: 'C' }, payload: { text: 'x' } }, 0);
    }
    const now = Date.now();
    const batches = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).store.outbox.lease({ owner: `o${i}`, limit: 10, leaseMs: 60_000, now })));
    const ids = batches.flat().map((x) => x.id);
    assert.ok(Math.max(...batches.map((x) => x.length)) <= 10);
    assert.equal(new Set(ids).size, ids.length, 'no item leased twice');
    assert.equal(ids.length, N, 'every due item leased by someone');
  });
});
