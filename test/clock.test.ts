// Time under test: ManualClock fires due timers when moved (time-skipping), the one
// poll loop sleeps on the clock and wakes early when told, and Worker.runOnce runs
// what is due without a background loop — so no test has to sleep to see that
// nothing happened.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/log.ts';
import { PollLoop } from '../src/core/poll-loop.ts';
import { Worker } from '../src/engine/worker.ts';
import { FAST_WORKER, registry, tempStore } from './helpers.ts';
import { submitRun } from './fixtures/submit-run.ts';

describe('ManualClock', () => {
  it('fires timers only when moved, in due order, each once; a cancelled timer never fires', () => {
    const clock = new ManualClock(1_000);
    const fired: string[] = [];
    clock.timer(50, () => fired.push(`b@${clock.now()}`));
    clock.timer(10, () => fired.push(`a@${clock.now()}`));
    const c = clock.timer(20, () => fired.push('cancelled'));
    clock.timer(500, () => fired.push('later'));
    c.cancel();
    assert.deepEqual(fired, [], 'nothing fires while the clock stands still');
    assert.equal(clock.timers, 3);
    assert.equal(clock.nextAt(), 1_010);
    clock.advance(100);
    assert.deepEqual(fired, ['a@1100', 'b@1100']);
    clock.advance(100);
    assert.deepEqual(fired, ['a@1100', 'b@1100'], 'fired once');
    assert.equal(clock.skip(), true, 'skip jumps to the next timer');
    assert.equal(clock.now(), 1_500);
    assert.deepEqual(fired.at(-1), 'later');
    assert.equal(clock.skip(), false);
  });

  it('sleep resolves when the clock passes it, or at once on abort', async () => {
    const clock = new ManualClock(0);
    const order: string[] = [];
    const long = clock.sleep(1_000).then(() => order.push('long'));
    const ctl = new AbortController();
    const aborted = clock.sleep(60_000, ctl.signal).then(() => order.push('aborted'));
    await clock.waitForTimers(2);
    ctl.abort();
    await aborted;
    assert.deepEqual(order, ['aborted']);
    clock.advance(999);
    await Promise.resolve();
    assert.deepEqual(order, ['aborted']);
    clock.advance(1);
    await long;
    assert.deepEqual(order, ['aborted', 'long']);
  });
});

describe('PollLoop', () => {
  it('sleeps on the clock for what its pass asked, wakes early when told, and keeps a wake-up that comes mid-pass', async () => {
    const clock = new ManualClock(0);
    const passes: Array<{ at: number; woken: boolean }> = [];
    let release: (() => void) | null = null;
    const loop = new PollLoop({
      name: 'test',
      clock,
      log: silentLogger,
      pass: async ({ woken }) => {
        passes.push({ at: clock.now(), woken });
        if (passes.length === 3) await new Promise<void>((r) => (release = r));
        return 1_000;
      },
    });
    loop.start();
    await clock.waitForTimers(1);
    assert.deepEqual(passes, [{ at: 0, woken: true }]);
    assert.equal(loop.wakesAt, 1_000);
    clock.advance(1_000);
    await clock.waitForTimers(1);
    assert.deepEqual(passes[1], { at: 1_000, woken: false }, 'a full sleep');
    loop.wake();
    while (!release) await new Promise((r) => setImmediate(r));
    assert.deepEqual(passes[2], { at: 1_000, woken: true }, 'woken early');
    loop.wake(); // arrives while the pass runs: kept
    (release as () => void)();
    await clock.waitForTimers(1);
    assert.deepEqual(passes[3], { at: 1_000, woken: true }, 'the wake-up during the pass was not lost');
    await loop.stop();
    assert.equal(clock.timers, 0, 'stopped: nothing left on the clock');
    assert.equal(loop.wakesAt, null);
  });

  it('a pass that throws is logged and retried after the pause; the loop lives on', async () => {
    const clock = new ManualClock(0);
    const errors: string[] = [];
    let n = 0;
    const loop = new PollLoop({
      name: 'flaky',
      clock,
      log: { ...silentLogger, error: (m) => errors.push(m) },
      retryMs: (failures) => failures * 100,
      pass: async () => {
        if (++n <= 2) throw new Error(`boom ${n}`);
        return 5_000;
      },
    });
    loop.start();
    await clock.waitForTimers(1);
    assert.equal(loop.wakesAt, 100);
    clock.advance(100);
    await clock.waitForTimers(1);
    assert.equal(loop.wakesAt, 300, 'the second failure waits longer');
    clock.advance(200);
    await clock.waitForTimers(1);
    assert.equal(loop.wakesAt, 5_300);
    assert.deepEqual(errors, ['flaky: pass failed; retrying in 100 ms', 'flaky: pass failed; retrying in 200 ms']);
    await loop.stop();
  });
});

describe('Worker.runOnce', () => {
  it('claims what is due and runs it to the end of its turns (children and the join included); retries come due with the clock', async (t) => {
    const { store, cleanup } = await tempStore();
    const clock = new ManualClock(Date.now());
    let flaky = 0;
    const reg = registry(
      {
        lead: (input) => (input.task.turn === 1 ? { actions: [{ type: 'handoff', agent: 'helper', input: 'x' }] } : { output: input.results.map((r) => (r.ok ? r.value : r.error.code)) }),
        helper: () => ({ output: 'helped' }),
        flaky: () => {
          if (++flaky === 1) throw new Error('first attempt fails');
          return { output: 'second time lucky' };
        },
      },
      {},
      { retry: { initialMs: 1_000, maxMs: 1_000, jitter: 'none' } },
    );
    const worker = new Worker({ store, registry: reg, clock, options: FAST_WORKER });
    t.after(async () => {
      await worker.stop();
      await cleanup();
    });

    const { run } = await submitRun(store, reg, { agent: 'lead', input: null }, clock.now());
    const report = await worker.runOnce();
    assert.deepEqual(
      report.ran.map((r) => r.agent),
      ['lead', 'helper', 'lead'],
    );
    assert.deepEqual((await store.runs.get(run.id))?.output, ['helped']);
    assert.equal(clock.timers, 0, 'runOnce leaves nothing running on the clock');

    const { run: retried } = await submitRun(store, reg, { agent: 'flaky', input: null }, clock.now());
    assert.deepEqual((await worker.runOnce()).ran.map((r) => r.agent), ['flaky']);
    assert.equal((await store.tasks.get(retried.rootTaskId))?.state, 'retry-scheduled');
    assert.deepEqual((await worker.runOnce()).ran, [], 'the retry is not due yet');
    clock.advance(1_000);
    assert.deepEqual((await worker.runOnce()).ran.map((r) => r.agent), ['flaky']);
    assert.equal((await store.runs.get(retried.id))?.output, 'second time lucky');
  });

  it('is refused while the worker runs its own loop', async (t) => {
    const { store, cleanup } = await tempStore();
    const worker = new Worker({ store, registry: registry({ a: () => ({ output: 1 }) }), clock: new ManualClock(Date.now()), options: FAST_WORKER });
    await worker.start();
    t.after(async () => {
      await worker.stop();
      await cleanup();
    });
    await assert.rejects(worker.runOnce(), /not started/);
  });
});
