import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { zodIssues } from '../../src/core/issues.ts';
import { ManualClock, systemClock, type Clock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileSchedules, parseAt, schedulesSchema, type Schedule, type SchedulesConfig } from '../../src/intake/schedules/config.ts';
import { ENUMERATE_CAP, fireAfter, planFires } from '../../src/intake/schedules/plan.ts';
import { Scheduler, type SchedulerOptions } from '../../src/intake/schedules/scheduler.ts';
import { compileBindings } from '../../src/routing/bindings.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import { openStore } from '../../src/runtime/open-store.ts';
import type { ScheduleStore } from '../../src/store/schedules.ts';
import type { AuditEvent, EnvelopeRecord, Store } from '../../src/store/store.ts';
import { registry, tempStore, until } from '../helpers.ts';

const H = 3_600_000;
/** Monday 2026-01-05 08:30 UTC. */
const T0 = Date.UTC(2026, 0, 5, 8, 30);
const at = (h: number, m = 0, s = 0) => Date.UTC(2026, 0, 5, h, m, s);
const iso = (t: number) => new Date(t).toISOString();

const REG = registry({ ops: () => ({ output: 'ok' }), reporter: () => ({ output: 'ok' }) });
const NAMES = [...REG.agents.keys()];

function compile(raw: SchedulesConfig): Schedule[] {
  const issues: FieldIssue[] = [];
  const out = compileSchedules(raw, issues, NAMES);
  assert.deepEqual(issues, []);
  return out;
}

function intakeFor(store: Store, clock: Clock): Intake {
  const issues: FieldIssue[] = [];
  const routing = { bindings: compileBindings([{ id: 'cron-to-ops', match: { channel: 'cron' }, agent: 'ops' }], NAMES, issues), sessions: compileSessions(undefined, issues) };
  assert.deepEqual(issues, []);
  return new Intake(store, REG, routing, clock);
}

/** A process's view: its own store connection, intake and scheduler on the shared file. */
function processOn(url: string, schedules: Schedule[], clock: Clock, opts: Partial<SchedulerOptions> = {}): { store: Store; scheduler: Scheduler } {
  const store = openStore({ url, durability: 'fast' });
  const scheduler = new Scheduler({ store, intake: intakeFor(store, clock), schedules, clock, ...opts });
  return { store, scheduler };
}

async function cronEnvelopes(store: Store): Promise<EnvelopeRecord[]> {
  const all = await store.envelopes.list({ limit: 10_000 });
  return all.filter((e) => e.channel === 'cron').sort((a, b) => a.idempotencyKey.localeCompare(b.idempotencyKey));
}

async function audit(store: Store, kind: string): Promise<AuditEvent[]> {
  return (await store.audit.list({ limit: 10_000 })).filter((e) => e.kind === kind);
}

async function setup(t: TestContext, raw: SchedulesConfig, clock = new ManualClock(T0)) {
  const { store, url, cleanup } = await tempStore();
  t.after(cleanup);
  const schedules = compile(raw);
  const scheduler = new Scheduler({ store, intake: intakeFor(store, clock), schedules, clock });
  t.after(() => scheduler.stop());
  return { store, url, clock, schedules, scheduler };
}

describe('schedule config', () => {
  function problems(raw: unknown, agentNames: readonly string[] | null = NAMES): FieldIssue[] {
    const parsed = schedulesSchema.safeParse(raw);
    if (!parsed.success) return zodIssues(parsed.error, ['schedules']);
    const issues: FieldIssue[] = [];
    compileSchedules(parsed.data, issues, agentNames ?? undefined);
    return issues;
  }
  const paths = (raw: unknown) => problems(raw).map((i) => i.path);

  it('compiles cron and at schedules with defaults', () => {
    const [daily, once] = compile({
      daily: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin', agent: 'ops', text: 'brief me', data: { k: 1 } },
      launch: { at: '2026-12-01T09:00:00Z' },
    });
    assert.deepEqual(daily!.trigger, { kind: 'cron', pattern: '0 9 * * 1-5' });
    assert.equal(daily!.timezone, 'Europe/Berlin');
    assert.equal(daily!.catchUp, 'skip');
    assert.equal(daily!.agent, 'ops');
    assert.deepEqual(daily!.data, { k: 1 });
    assert.equal(daily!.enabled, true);
    assert.deepEqual(once!.trigger, { kind: 'at', at: Date.UTC(2026, 11, 1, 9) });
    assert.equal(once!.timezone, 'UTC');
    assert.equal(once!.text, '');
    assert.equal(once!.agent, null);
  });

  it('reads an offset-less `at` in the schedule timezone', () => {
    assert.equal(parseAt('2026-12-01T09:00', 'Europe/Berlin'), Date.UTC(2026, 11, 1, 8));
    assert.equal(parseAt('2026-07-01T09:00:00', 'Europe/Berlin'), Date.UTC(2026, 6, 1, 7));
    assert.equal(parseAt('2026-12-01T09:00:00+02:00', 'Europe/Berlin'), Date.UTC(2026, 11, 1, 7));
    assert.equal(parseAt('2026-12-01T09:00:00.250Z', 'UTC'), Date.UTC(2026, 11, 1, 9) + 250);
  });

  it('the spec digest changes with what decides fire times, not with text or agent', () => {
    const base = compile({ a: { cron: '0 9 * * *' } })[0]!.spec;
    assert.equal(compile({ a: { cron: '0 9 * * *', text: 'x', agent: 'ops', catchUp: 'all' } })[0]!.spec, base);
    assert.notEqual(compile({ a: { cron: '0 10 * * *' } })[0]!.spec, base);
    assert.notEqual(compile({ a: { cron: '0 9 * * *', timezone: 'Asia/Tokyo' } })[0]!.spec, base);
    assert.notEqual(compile({ a: { cron: '0 9 * * *', enabled: false } })[0]!.spec, base);
  });

  it('bad config names the field', () => {
    assert.deepEqual(paths({ x: { cron: '0 9 * * *', at: '2026-12-01T09:00:00Z' } }), ['schedules.x.cron']);
    assert.deepEqual(paths({ x: { text: 'no trigger' } }), ['schedules.x.cron']);
    const badCron = problems({ x: { cron: '61 * * * *' } });
    assert.deepEqual(badCron.map((i) => i.path), ['schedules.x.cron']);
    assert.match(badCron[0]!.message, /invalid cron pattern "61 \* \* \* \*".*minute/);
    assert.match(problems({ x: { cron: 'every day' } })[0]!.message, /invalid cron pattern/);
    assert.match(problems({ x: { cron: '0 0 30 2 *' } })[0]!.message, /never fires/);
    const tz = problems({ x: { cron: '0 9 * * *', timezone: 'Mars/Olympus' } });
    assert.deepEqual(tz, [{ path: 'schedules.x.timezone', message: 'unknown IANA timezone "Mars/Olympus"' }]);
    for (const bad of ['tomorrow', '2026-02-30T09:00:00Z', '2026-13-01T09:00:00Z', '2026-12-01 09:00', '2026-12-01T25:00:00Z']) {
      const p = problems({ x: { at: bad } });
      assert.deepEqual(p.map((i) => i.path), ['schedules.x.at'], bad);
      assert.match(p[0]!.message, /not a date and time/);
    }
    assert.deepEqual(problems({ x: { cron: '0 9 * * *', agent: 'ghost' } }), [{ path: 'schedules.x.agent', message: 'unknown agent "ghost" (known: ops, reporter)' }]);
    assert.deepEqual(paths({ x: { cron: '0 9 * * *', maxCatchUp: 5 } }), ['schedules.x.maxCatchUp']);
    // Shape errors come from the schema, with the same paths.
    assert.deepEqual(paths({ x: { cron: '0 9 * * *', catchUp: 'sometimes' } }), ['schedules.x.catchUp']);
    assert.deepEqual(paths({ x: { cron: '0 9 * * *', interval: '5m' } }), ['schedules.x.interval']);
    // `every` is a third trigger (heartbeats use it); still exactly one.
    assert.deepEqual(problems({ x: { cron: '0 9 * * *', every: '5m' } }), [{ path: 'schedules.x.cron', message: 'a schedule has exactly one of cron, at or every' }]);
    assert.deepEqual(paths({ x: { cron: '0 9 * * *', catchUp: 'all', maxCatchUp: 5000 } }), ['schedules.x.maxCatchUp']);
    assert.deepEqual(paths({ 'bad id!': { cron: '0 9 * * *' } }), ['schedules.bad id!']);
    // Several problems at once, each named.
    assert.deepEqual(paths({ a: { cron: 'nope', timezone: 'Nowhere/X' }, b: { at: 'soon', agent: 'ghost' } }), [
      'schedules.a.timezone',
      'schedules.a.cron',
      'schedules.b.at',
      'schedules.b.agent',
    ]);
    // Without agent names (the lead's load step not yet passing them) agents are not checked.
    assert.deepEqual(problems({ x: { cron: '0 9 * * *', agent: 'ghost' } }, null), []);
  });
});

describe('fire plans', () => {
  const hourly = (catchUp: 'skip' | 'once' | 'all', maxCatchUp?: number) =>
    compile({ h: { cron: '0 * * * *', catchUp, ...(maxCatchUp ? { maxCatchUp } : {}) } })[0]!;

  it('reads patterns in the schedule timezone, across daylight saving time', () => {
    const s = compile({ b: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' } })[0]!;
    // Friday 2026-01-09 09:00 in Berlin is 08:00 UTC; after it comes Monday the 12th.
    assert.equal(fireAfter(s, Date.UTC(2026, 0, 9, 7)), Date.UTC(2026, 0, 9, 8));
    assert.equal(fireAfter(s, Date.UTC(2026, 0, 9, 8)), Date.UTC(2026, 0, 12, 8));
    // Summer time: 09:00 in Berlin is 07:00 UTC.
    assert.equal(fireAfter(s, Date.UTC(2026, 6, 1, 0)), Date.UTC(2026, 6, 1, 7));
  });

  it('an on-time fire fires under every policy', () => {
    for (const p of ['skip', 'once', 'all'] as const) {
      assert.deepEqual(planFires(hourly(p), at(9), at(9, 0, 1), 60_000), { fire: [at(9)], skipped: null, next: at(10) });
    }
  });

  it('a burst of missed fires follows catchUp', () => {
    const now = at(12, 30);
    const skip = planFires(hourly('skip'), at(10), now, 60_000);
    assert.deepEqual(skip.fire, []);
    assert.deepEqual(skip.skipped?.listed, [at(10), at(11), at(12)]);
    assert.equal(skip.skipped?.count, 3);
    assert.equal(skip.next, at(13));
    const once = planFires(hourly('once'), at(10), now, 60_000);
    assert.deepEqual(once.fire, [at(12)]);
    assert.deepEqual(once.skipped?.listed, [at(10), at(11)]);
    assert.deepEqual(planFires(hourly('all'), at(10), now, 60_000), { fire: [at(10), at(11), at(12)], skipped: null, next: at(13) });
    const bounded = planFires(hourly('all', 2), at(10), now, 60_000);
    assert.deepEqual(bounded.fire, [at(11), at(12)]);
    assert.deepEqual(bounded.skipped?.listed, [at(10)]);
    assert.match(bounded.skipped.reason, /maxCatchUp 2/);
    // The latest missed fire still within the grace period is on time: skip fires it.
    const recent = planFires(hourly('skip'), at(10), at(12, 0, 30), 60_000);
    assert.deepEqual(recent.fire, [at(12)]);
    assert.deepEqual(recent.skipped?.listed, [at(10), at(11)]);
  });

  it('a very long outage is summarised, not enumerated fire by fire', () => {
    const everySecond = (catchUp: 'skip' | 'all') => compile({ s: { cron: '* * * * * *', catchUp, ...(catchUp === 'all' ? { maxCatchUp: 100 } : {}) } })[0]!;
    const now = at(8) + 30 * 24 * H; // 30 days of per-second fires: 2.6 million
    const started = performance.now();
    const skip = planFires(everySecond('skip'), at(8), now, 60_000);
    assert.ok(performance.now() - started < 2_000);
    assert.deepEqual(skip.fire, [now]);
    assert.equal(skip.skipped?.count, null);
    assert.equal(skip.skipped?.listed.length, 1_000);
    assert.equal(skip.skipped?.first, at(8));
    assert.equal(skip.skipped?.last, now - 1000);
    assert.equal(skip.next, now + 1000);
    const all = planFires(everySecond('all'), at(8), now, 60_000);
    assert.equal(all.fire.length, 100);
    assert.equal(all.fire[0], now - 99_000);
    assert.equal(all.fire[99], now);
    // Just over the enumeration cap, with the tail contiguous: counted exactly.
    const edge = planFires(everySecond('skip'), at(8), at(8) + ENUMERATE_CAP * 1000, 60_000);
    assert.equal(edge.skipped?.count, ENUMERATE_CAP);
  });
});

describe('scheduler', () => {
  it('fires a cron schedule through intake: routed by bindings as channel cron, isolated session', async (t) => {
    const { store, clock, scheduler } = await setup(t, { hourly: { cron: '0 * * * *', text: 'tick', data: { n: 1 } } });
    await scheduler.sync();
    assert.equal((await store.schedules.get('hourly'))?.nextFireAt, at(9));
    assert.deepEqual((await scheduler.tick(at(8, 59, 59))).fired, []);
    clock.set(at(9, 0, 0) + 15);
    const r = await scheduler.tick();
    assert.equal(r.fired.length, 1);
    const [env] = await cronEnvelopes(store);
    assert.equal(env!.idempotencyKey, `cron:hourly:${iso(at(9))}`);
    assert.deepEqual(env!.peer, { kind: 'channel', id: 'hourly' });
    assert.equal(env!.account, 'default');
    assert.equal(env!.text, 'tick');
    assert.deepEqual(env!.data, { schedule: 'hourly', fireAt: iso(at(9)), late: false, data: { n: 1 } });
    assert.equal(env!.state, 'routed');
    assert.match(env!.sessionKey!, /^agent:ops:isolated:/);
    const run = await store.runs.get(env!.runId!);
    assert.equal(run?.agent, 'ops');
    const [fired] = await audit(store, 'schedule.fired');
    assert.equal(fired!.runId, run.id);
    assert.deepEqual(fired!.data, { schedule: 'hourly', fireAt: iso(at(9)), envelope: env!.id, run: run.id, state: 'routed', late: false });
    const state = await store.schedules.get('hourly');
    assert.equal(state?.nextFireAt, at(10));
    assert.equal(state?.lastFireAt, at(9));
    assert.equal(state?.fires, 1);
    assert.equal(state?.claim, null);
    // Ticking again at the same moment changes nothing.
    assert.deepEqual((await scheduler.tick()).fired, []);
    assert.equal((await cronEnvelopes(store)).length, 1);
  });

  it('`agent` sends the fire straight to that agent, skipping the bindings', async (t) => {
    const { store, clock, scheduler } = await setup(t, { direct: { cron: '0 * * * *', agent: 'reporter' } });
    await scheduler.sync();
    clock.set(at(9));
    await scheduler.tick();
    const [env] = await cronEnvelopes(store);
    assert.equal((await store.runs.get(env!.runId!))?.agent, 'reporter');
    assert.match(JSON.stringify(env!.route), /addressed directly to reporter/);
  });

  describe('a restart across three fire times', () => {
    /**
     * Process 1 runs from 08:30 and makes the 09:00 fire; it stops at 09:30. Nothing runs
     * until 12:30 (10:00, 11:00 and 12:00 are missed). Process 2 starts on the same store file.
     */
    async function restart(t: TestContext, cfg: SchedulesConfig['x'], restartAt = at(12, 30)) {
      const { store, url, clock, schedules, scheduler } = await setup(t, { x: cfg });
      await scheduler.start();
      clock.set(at(9));
      await scheduler.tick();
      clock.set(at(9, 30));
      await scheduler.stop();
      assert.equal((await cronEnvelopes(store)).length, 1);

      clock.set(restartAt);
      const second = processOn(url, schedules, clock);
      t.after(() => second.store.close());
      t.after(() => second.scheduler.stop());
      await second.scheduler.start();
      const envelopes = await cronEnvelopes(store);
      return { store, clock, second, envelopes, fireTimes: envelopes.map((e) => (e.data as { fireAt: string }).fireAt) };
    }

    it('skip: no envelope for the missed fires, each one audited as skipped', async (t) => {
      const { store, clock, second, fireTimes } = await restart(t, { cron: '0 * * * *', catchUp: 'skip' });
      assert.deepEqual(fireTimes, [iso(at(9))]);
      const [skipped, ...more] = await audit(store, 'schedule.skipped');
      assert.equal(more.length, 0);
      assert.deepEqual((skipped!.data as { fireTimes: string[] }).fireTimes, [iso(at(10)), iso(at(11)), iso(at(12))]);
      assert.equal((skipped!.data as { count: number }).count, 3);
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(13));
      // The schedule carries on normally.
      clock.set(at(13));
      await second.scheduler.tick();
      assert.deepEqual((await cronEnvelopes(store)).map((e) => (e.data as { fireAt: string }).fireAt), [iso(at(9)), iso(at(13))]);
      assert.equal((await store.schedules.get('x'))?.fires, 2);
    });

    it('once: one (late) envelope for the most recent missed fire, the others audited as skipped', async (t) => {
      const { store, envelopes, fireTimes } = await restart(t, { cron: '0 * * * *', catchUp: 'once' });
      assert.deepEqual(fireTimes, [iso(at(9)), iso(at(12))]);
      assert.equal((envelopes[1]!.data as { late: boolean }).late, true);
      const skipped = await audit(store, 'schedule.skipped');
      assert.equal(skipped.length, 1);
      assert.deepEqual((skipped[0]!.data as { fireTimes: string[] }).fireTimes, [iso(at(10)), iso(at(11))]);
      const fired = await audit(store, 'schedule.fired');
      assert.deepEqual(
        fired.map((e) => (e.data as { fireAt: string; late: boolean }).late),
        [false, true],
      );
    });

    it('all: one envelope per missed fire, oldest first', async (t) => {
      const { store, fireTimes } = await restart(t, { cron: '0 * * * *', catchUp: 'all' });
      assert.deepEqual(fireTimes, [iso(at(9)), iso(at(10)), iso(at(11)), iso(at(12))]);
      assert.equal((await audit(store, 'schedule.skipped')).length, 0);
      assert.equal((await audit(store, 'schedule.fired')).length, 4);
      const state = await store.schedules.get('x');
      assert.equal(state?.fires, 4);
      assert.equal(state?.lastFireAt, at(12));
      assert.equal(state?.nextFireAt, at(13));
    });

    it('all, bounded by maxCatchUp: the newest ones fire, older ones are audited as skipped', async (t) => {
      const { store, fireTimes } = await restart(t, { cron: '0 * * * *', catchUp: 'all', maxCatchUp: 2 });
      assert.deepEqual(fireTimes, [iso(at(9)), iso(at(11)), iso(at(12))]);
      const [skipped] = await audit(store, 'schedule.skipped');
      assert.deepEqual((skipped!.data as { fireTimes: string[] }).fireTimes, [iso(at(10))]);
      assert.match((skipped!.data as { reason: string }).reason, /maxCatchUp 2/);
    });

    it('skip, restarting within the grace period of the last fire: that one still fires on time', async (t) => {
      const { store, fireTimes } = await restart(t, { cron: '0 * * * *', catchUp: 'skip' }, at(12, 0, 20));
      assert.deepEqual(fireTimes, [iso(at(9)), iso(at(12))]);
      const [skipped] = await audit(store, 'schedule.skipped');
      assert.deepEqual((skipped!.data as { fireTimes: string[] }).fireTimes, [iso(at(10)), iso(at(11))]);
    });
  });

  describe('one-shot `at` schedules', () => {
    it('fire once, then never again (not on restart either)', async (t) => {
      const { store, url, clock, schedules, scheduler } = await setup(t, { launch: { at: iso(at(10)), text: 'go' } });
      await scheduler.start();
      // The timer sleeps at most 5 minutes at a time (a wall-clock jump is noticed).
      assert.equal(scheduler.nextWakeAt, T0 + 300_000);
      clock.set(at(9, 59));
      await scheduler.tick();
      assert.equal((await cronEnvelopes(store)).length, 0);
      clock.set(at(10, 0, 1));
      await scheduler.tick();
      clock.set(at(11));
      await scheduler.tick();
      await scheduler.stop();
      const second = processOn(url, schedules, clock);
      t.after(() => second.store.close());
      await second.scheduler.start();
      await second.scheduler.stop();
      const envelopes = await cronEnvelopes(store);
      assert.deepEqual(
        envelopes.map((e) => e.idempotencyKey),
        [`cron:launch:${iso(at(10))}`],
      );
      const state = await store.schedules.get('launch');
      assert.equal(state?.nextFireAt, null);
      assert.equal(state?.fires, 1);
    });

    it('missed with catchUp skip: audited as skipped, never fired', async (t) => {
      const { store, clock, scheduler } = await setup(t, { launch: { at: iso(at(10)) } });
      await scheduler.sync();
      clock.set(at(12));
      await scheduler.start();
      assert.equal((await cronEnvelopes(store)).length, 0);
      const [skipped] = await audit(store, 'schedule.skipped');
      assert.deepEqual((skipped!.data as { fireTimes: string[] }).fireTimes, [iso(at(10))]);
      assert.equal((await store.schedules.get('launch'))?.nextFireAt, null);
    });

    it('missed with catchUp once: fires late', async (t) => {
      const { store, clock, scheduler } = await setup(t, { launch: { at: iso(at(10)), catchUp: 'once' } });
      await scheduler.sync();
      clock.set(at(12));
      await scheduler.start();
      const [env, ...rest] = await cronEnvelopes(store);
      assert.equal(rest.length, 0);
      assert.deepEqual(env!.data, { schedule: 'launch', fireAt: iso(at(10)), late: true, data: null });
      assert.equal((await audit(store, 'schedule.skipped')).length, 0);
    });

    it('fires on a real timer, without polling', async (t) => {
      const { store, url, cleanup } = await tempStore();
      t.after(cleanup);
      const soon = Date.now() + 300;
      const schedules = compile({ soon: { at: new Date(soon).toISOString(), agent: 'ops' } });
      let reads = 0;
      const counting: ScheduleStore = new Proxy(store.schedules, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'list' && typeof v === 'function') return (...args: unknown[]) => (reads++, (v as (...a: unknown[]) => unknown).apply(target, args));
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const scheduler = new Scheduler({ store: { schedules: counting } as unknown as Store, intake: intakeFor(store, systemClock), schedules });
      t.after(() => scheduler.stop());
      void url;
      await scheduler.start();
      assert.equal(scheduler.nextWakeAt, soon);
      const readsAfterStart = reads;
      await until('the at schedule fired', async () => (await cronEnvelopes(store)).length === 1, 3_000);
      // One tick at the fire time (list, then list again to re-arm): no polling in between.
      assert.ok(reads - readsAfterStart <= 3, `schedules read ${reads - readsAfterStart} times`);
      assert.equal((await store.schedules.get('soon'))?.nextFireAt, null);
    });
  });

  describe('a changed spec', () => {
    it('recomputes the next fire; unchanged specs keep their state', async (t) => {
      const { store, clock, scheduler } = await setup(t, { x: { cron: '0 * * * *' }, y: { cron: '0 * * * *' } });
      await scheduler.start();
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(9));
      clock.set(at(8, 40));
      await scheduler.reconfigure(compile({ x: { cron: '45 * * * *', text: 'new' }, y: { cron: '0 * * * *', text: 'only text changed' } }));
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(8, 45));
      assert.equal((await store.schedules.get('y'))?.nextFireAt, at(9));
      const changed = await audit(store, 'schedule.changed');
      assert.deepEqual(
        changed.map((e) => (e.data as { schedule: string }).schedule),
        ['x'],
      );
      assert.deepEqual((changed[0]!.data as { nextFireAt: string; previousNextFireAt: string }).previousNextFireAt, iso(at(9)));
      clock.set(at(8, 45));
      await scheduler.tick();
      const [env] = await cronEnvelopes(store);
      assert.equal(env!.text, 'new');
      assert.equal(env!.idempotencyKey, `cron:x:${iso(at(8, 45))}`);
      assert.equal((await audit(store, 'schedule.created')).length, 2);
    });

    it('a spec changed while down starts afresh from now (the old due fires are noted, not made)', async (t) => {
      const { store, url, clock, scheduler } = await setup(t, { x: { cron: '0 * * * *', catchUp: 'all' } });
      await scheduler.start();
      await scheduler.stop();
      clock.set(at(12, 30));
      const second = processOn(url, compile({ x: { cron: '15 * * * *', catchUp: 'all' } }), clock);
      t.after(() => second.store.close());
      await second.scheduler.start();
      await second.scheduler.stop();
      assert.equal((await cronEnvelopes(store)).length, 0);
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(13, 15));
      const [changed] = await audit(store, 'schedule.changed');
      assert.equal((changed!.data as { droppedDueFiresFrom: string }).droppedDueFiresFrom, iso(at(9)));
    });

    it('disabling stops the fires; re-enabling starts from now (no catch-up for the disabled time)', async (t) => {
      const { store, clock, scheduler } = await setup(t, { x: { cron: '0 * * * *', catchUp: 'all' } });
      await scheduler.start();
      await scheduler.reconfigure(compile({ x: { cron: '0 * * * *', catchUp: 'all', enabled: false } }));
      assert.equal((await store.schedules.get('x'))?.nextFireAt, null);
      assert.equal(scheduler.nextWakeAt! - T0 <= 300_000, true);
      clock.set(at(11, 30));
      await scheduler.tick();
      assert.equal((await cronEnvelopes(store)).length, 0);
      await scheduler.reconfigure(compile({ x: { cron: '0 * * * *', catchUp: 'all' } }));
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(12));
      assert.equal((await cronEnvelopes(store)).length, 0);
    });

    it('a schedule removed from the config is left alone, with its history', async (t) => {
      const { store, clock, scheduler } = await setup(t, { x: { cron: '0 * * * *' }, y: { cron: '0 * * * *' } });
      await scheduler.start();
      await scheduler.reconfigure(compile({ y: { cron: '0 * * * *' } }));
      clock.set(at(9));
      await scheduler.tick();
      assert.deepEqual(
        (await cronEnvelopes(store)).map((e) => e.peer.id),
        ['y'],
      );
      assert.equal((await store.schedules.get('x'))?.nextFireAt, at(9));
    });
  });

  describe('crash between claim and accept', () => {
    it('a claim left open is finished by the next tick: one envelope, one fired audit', async (t) => {
      const { store, url, clock, schedules } = await setup(t, { x: { cron: '0 * * * *', catchUp: 'skip' } });
      // A process whose intake dies (as if killed) right after the claim committed.
      const dying = new Scheduler({
        store,
        intake: {
          accept: () => Promise.reject(new Error('killed')),
        },
        schedules,
        clock,
      });
      await dying.sync();
      clock.set(at(9));
      const r = await dying.tick();
      assert.equal(r.errors, 1);
      const open = await store.schedules.get('x');
      assert.deepEqual(open?.claim?.fires, [at(9)]);
      assert.equal(open?.nextFireAt, at(10));
      assert.equal((await cronEnvelopes(store)).length, 0);

      // Long after (the fire is now "late", and catchUp is skip): the claimed fire still happens.
      clock.set(at(9, 45));
      const next = processOn(url, schedules, clock);
      t.after(() => next.store.close());
      await next.scheduler.start();
      await next.scheduler.stop();
      const envelopes = await cronEnvelopes(store);
      assert.equal(envelopes.length, 1);
      assert.equal((envelopes[0]!.data as { late: boolean }).late, false);
      assert.equal((await audit(store, 'schedule.fired')).length, 1);
      assert.equal((await audit(store, 'schedule.skipped')).length, 0);
      assert.equal((await store.schedules.get('x'))?.claim, null);
    });

    it('crash after accept, before the claim closed: the retry finds the same envelope', async (t) => {
      const { store, clock, schedules } = await setup(t, { x: { cron: '0 * * * *' } });
      const real = intakeFor(store, clock);
      const dying = new Scheduler({
        store,
        intake: { accept: async (e, o) => (await real.accept(e, o), Promise.reject(new Error('killed'))) },
        schedules,
        clock,
      });
      await dying.sync();
      clock.set(at(9));
      await dying.tick();
      assert.equal((await cronEnvelopes(store)).length, 1);
      assert.notEqual((await store.schedules.get('x'))?.claim, null);
      const healthy = new Scheduler({ store, intake: real, schedules, clock });
      const r = await healthy.tick();
      assert.equal(r.fired.length, 1);
      assert.equal(r.fired[0]!.created, false);
      assert.equal((await cronEnvelopes(store)).length, 1);
      assert.equal((await audit(store, 'schedule.fired')).length, 1);
      assert.equal((await store.schedules.get('x'))?.fires, 1);
    });

    it('a fire that keeps failing is retried with backoff, not in a busy loop', async (t) => {
      const { store, clock, schedules } = await setup(t, { x: { cron: '0 * * * *' } });
      await new Scheduler({ store, intake: intakeFor(store, clock), schedules, clock }).sync();
      clock.set(at(9));
      let attempts = 0;
      const failing = new Scheduler({
        store,
        intake: { accept: () => (attempts++, Promise.reject(new Error('database unavailable'))) },
        schedules,
        clock,
        retryMs: 200,
      });
      t.after(() => failing.stop());
      await failing.start();
      assert.equal(attempts, 1);
      assert.equal(failing.nextWakeAt, at(9) + 200);
      clock.advance(200); // fires the scheduler's retry timer
      await clock.waitForTimers(1); // the retry tick ran and the loop sleeps again
      assert.equal(attempts, 2);
      // The next failure doubles the delay; the claim stays open for whoever succeeds.
      assert.equal(failing.nextWakeAt, at(9) + 200 + 400);
      assert.deepEqual((await store.schedules.get('x'))?.claim?.fires, [at(9)]);
    });

    it('a fire that cannot be made (its agent is gone) is audited as failed, not retried forever', async (t) => {
      const { store, clock } = await setup(t, {});
      const schedules = compileSchedules({ x: { cron: '0 * * * *', agent: 'ghost' } }, []);
      const scheduler = new Scheduler({ store, intake: intakeFor(store, clock), schedules, clock });
      await scheduler.sync();
      clock.set(at(9));
      const r = await scheduler.tick();
      assert.equal(r.failed, 1);
      const [failed] = await audit(store, 'schedule.failed');
      assert.equal((failed!.data as { error: { code: string } }).error.code, 'UNKNOWN_AGENT');
      const state = await store.schedules.get('x');
      assert.equal(state?.claim, null);
      assert.equal(state?.fires, 0);
      assert.equal(state?.nextFireAt, at(10));
    });
  });

  describe('three schedulers on one store file', () => {
    async function three(t: TestContext, raw: SchedulesConfig) {
      const { store, url, cleanup } = await tempStore();
      t.after(cleanup);
      const clock = new ManualClock(T0);
      const schedules = compile(raw);
      const procs = [0, 1, 2].map(() => processOn(url, schedules, clock));
      t.after(async () => {
        for (const p of procs) {
          await p.scheduler.stop();
          await p.store.close();
        }
      });
      return { store, clock, procs };
    }

    it('ticking the same fires concurrently make exactly one envelope per fire', async (t) => {
      const { store, clock, procs } = await three(t, { a: { cron: '*/5 * * * *' }, b: { cron: '0 * * * *', agent: 'reporter' } });
      // Synced, not started: only the ticks below run (a started scheduler's loop would tick too
      // when the clock moves, and its fires would be missing from these reports).
      await Promise.all(procs.map((p) => p.scheduler.sync()));
      assert.equal((await audit(store, 'schedule.created')).length, 2);
      let recorded = 0;
      for (let minute = 35; minute <= 60 + 30; minute += 5) {
        clock.set(at(8) + minute * 60_000 + 3);
        const reports = await Promise.all(procs.map((p) => p.scheduler.tick()));
        recorded += reports.reduce((n, r) => n + r.fired.length, 0);
      }
      const envelopes = await cronEnvelopes(store);
      // a: 08:35 … 09:30 every 5 minutes = 12 fires; b: 09:00 = 1 fire.
      assert.equal(envelopes.filter((e) => e.peer.id === 'a').length, 12);
      assert.equal(envelopes.filter((e) => e.peer.id === 'b').length, 1);
      assert.equal(new Set(envelopes.map((e) => e.idempotencyKey)).size, 13);
      assert.equal(recorded, 13);
      assert.equal((await audit(store, 'schedule.fired')).length, 13);
      assert.equal((await store.schedules.get('a'))?.fires, 12);
      assert.equal((await store.runs.list({ limit: 100 })).length, 13);
    });

    it('catching up concurrently after downtime: each missed fire once, skips audited once', async (t) => {
      const { store, clock, procs } = await three(t, { all: { cron: '0 * * * *', catchUp: 'all' }, skip: { cron: '0 * * * *' } });
      await procs[0]!.scheduler.sync();
      clock.set(at(12, 30));
      await Promise.all(procs.map((p) => p.scheduler.start()));
      const envelopes = await cronEnvelopes(store);
      assert.deepEqual(
        envelopes.map((e) => e.idempotencyKey),
        [`cron:all:${iso(at(9))}`, `cron:all:${iso(at(10))}`, `cron:all:${iso(at(11))}`, `cron:all:${iso(at(12))}`],
      );
      assert.equal((await audit(store, 'schedule.fired')).length, 4);
      const skipped = await audit(store, 'schedule.skipped');
      assert.equal(skipped.length, 1);
      assert.equal((skipped[0]!.data as { count: number }).count, 4);
    });
  });
});
