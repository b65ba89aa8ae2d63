/**
 * A worker SIGKILLed while it holds leases is found dead in about a second — its
 * process is gone (SQLite, same host) or its PostgreSQL session, and the advisory
 * lock that witnessed it, ended — and its tasks run again at once, long before their
 * 30 s leases would run out. The test's clock stands still at the moment of the kill,
 * so only the liveness check, never lease expiry, can explain the reclaim.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { Worker } from '../../src/engine/worker.ts';
import { Children } from '../fixtures/child.ts';
import { registry, tempStore, until } from '../helpers.ts';

const RUNS = 6;

test('a SIGKILLed worker is found dead and its tasks run again before their leases expire', { timeout: 60_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  const survivors: Worker[] = [];
  t.after(async () => {
    for (const w of survivors) await w.stop();
    await children.killAll();
    await cleanup();
  });

  for (let n = 0; n < RUNS; n++) await store.runs.create({ agent: 'stuck', input: { n }, maxAttempts: 3, actor: 'test' }, Date.now());
  const child = children.spawn({ db: url, dir: data, scenario: 'stuck', leaseMs: 30_000, heartbeatMs: 10_000, concurrency: RUNS });
  const childId = await child.ready;
  // Readiness, not time: wait until the child holds every task.
  await until('the child holds every task', async () => {
    const held = await store.tasks.list({ state: 'running', limit: RUNS * 2 });
    return held.length === RUNS && held.every((task) => task.leaseOwner === childId);
  }, 30_000);

  const clock = new ManualClock(Date.now());
  const survivor = new Worker({ store, registry: registry({ stuck: () => ({ output: 'done' }) }), clock, options: { concurrency: RUNS } });
  survivors.push(survivor);
  // Before the kill the child is alive: nothing is lost, nothing reclaimed.
  assert.deepEqual((await store.workers.sweepLost(survivor.id, clock.now())).lost, []);

  const exit = await children.kill(child);
  assert.equal(exit.signal, 'SIGKILL');
  // The server ends a dead client's session when it reads the closed socket: the sweep finds it then.
  let lost: string[] = [];
  await until('the killed worker is found dead', async () => (lost = (await store.workers.sweepLost(survivor.id, clock.now())).lost).length > 0, 30_000);
  assert.deepEqual(lost, [childId], 'the killed worker, and only it, is found dead');

  const report = await survivor.runOnce();
  assert.equal(report.reclaimed, RUNS, 'every stranded task reclaimed with the clock still at the kill');
  assert.equal(report.ran.length, RUNS);
  const runs = await store.runs.list({ limit: RUNS * 2 });
  assert.deepEqual(runs.map((r) => r.state), Array(RUNS).fill('succeeded'));
  const workers = await store.workers.list({});
  assert.ok(workers.find((w) => w.id === childId)?.stoppedAt !== null, 'the dead worker is marked stopped');
  const events = (await store.audit.list({ limit: 1_000 })).filter((e) => e.kind === 'worker.lost');
  assert.equal(events.length, 1);
  assert.equal((events[0]?.data as { worker?: string } | undefined)?.worker, childId);
});

test('a live worker in another process is never judged dead', { timeout: 60_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });
  const child = children.spawn({ db: url, dir: data, scenario: 'stuck', leaseMs: 30_000, heartbeatMs: 10_000 });
  const childId = await child.ready;
  const sweep = await store.workers.sweepLost('wrk_observer', Date.now());
  assert.deepEqual(sweep.lost, []);
  assert.ok(sweep.live.includes(childId));
});
