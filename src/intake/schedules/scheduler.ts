import { MAX_TIMER_MS, systemClock, type Clock } from '../../core/clock.ts';
import { InvalidInputError, InvalidStateError, NotFoundError, SpineError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { silentLogger, type Logger } from '../../core/log.ts';
import { PollLoop, type PassContext } from '../../core/poll-loop.ts';
import type { Json } from '../../core/types.ts';
import type { ScheduleClaim, ScheduleState } from '../../store/schedules.ts';
import type { AuditEntry, Store } from '../../store/store.ts';
import type { Envelope } from '../../core/envelope.ts';
import type { Intake } from '../intake.ts';
import type { Schedule } from './config.ts';
import { fireKey, initialFire, planFires, type SkippedFires } from './plan.ts';
import { decideBeat, scheduleOrigin, type Beat } from './heartbeat.ts';

/**
 * The scheduler: turns due schedule fires into envelopes, once per cluster.
 *
 * Durable state lives in the store (`schedules` rows: spec digest, next_fire_at, a
 * claim in flight); this class keeps only a poll loop that sleeps until the next fire. A due fire goes:
 *   1. claim — one conditional UPDATE advances next_fire_at past the due fires and
 *      records the ones to make (`WHERE next_fire_at = <read> AND no open claim`), with
 *      the `schedule.skipped` audit of missed ones. Of several processes, one wins.
 *   2. accept — each claimed fire becomes an envelope through Intake.accept, keyed
 *      `cron:<id>:<fire time ISO>`; a retry (after a crash, or by another process) finds
 *      the same envelope instead of making a second.
 *   3. complete — one conditional UPDATE closes the claim and audits `schedule.fired`
 *      with the envelope id. A claim left open by a crash is finished by the next tick
 *      of any process that has the schedule.
 */

export interface SchedulerOptions {
  store: Store;
  intake: Pick<Intake, 'accept'>;
  schedules: readonly Schedule[];
  clock?: Clock;
  log?: Logger;
  /** The most recent due fire counts as on time (not missed) up to this late (default 60 s). */
  graceMs?: number;
  /** Longest sleep between checks, so a jump of the wall clock is noticed (default 5 min). */
  maxSleepMs?: number;
  /** First retry delay after a failed tick, doubling to 60 s (default 1 s). */
  retryMs?: number;
}

export interface TickReport {
  /** Fires this scheduler recorded (a fire another process recorded is not here). */
  fired: Array<{ schedule: string; fireAt: number; envelope: string; created: boolean; late: boolean }>;
  /** Missed fires this scheduler recorded as skipped. */
  skipped: number;
  /** Heartbeat fires that took no turn (idle, or the last run still going), and heartbeats this tick paused. */
  idle: Array<{ schedule: string; fireAt: number; reason: 'idle' | 'busy' }>;
  paused: Array<{ schedule: string; reason: string }>;
  /** Fires that could not be made (e.g. the agent is gone), audited `schedule.failed`. */
  failed: number;
  /** Schedules whose tick threw (retried with backoff). */
  errors: number;
}

export const SCHEDULER_ACTOR = 'scheduler';
const MAX_RETRY_MS = 60_000;

export class Scheduler {
  private readonly store: Store;
  private readonly intake: Pick<Intake, 'accept'>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly graceMs: number;
  private readonly maxSleepMs: number;
  private readonly retryMs: number;
  private schedules: readonly Schedule[];
  private byId: Map<string, Schedule>;
  private running = false;
  private readonly loop: PollLoop;
  private chain: Promise<unknown> = Promise.resolve();
  /** Schedules whose last tick threw: retried after `until`, backing off to 60 s. */
  private readonly backoff = new Map<string, { failures: number; until: number }>();
  /** Consecutive failures to read the schedules table at all. */
  private readFailures = 0;
  private wakeAt: number | null = null;

  constructor(opts: SchedulerOptions) {
    this.store = opts.store;
    this.intake = opts.intake;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.graceMs = opts.graceMs ?? 60_000;
    this.maxSleepMs = Math.min(opts.maxSleepMs ?? 300_000, MAX_TIMER_MS);
    this.retryMs = opts.retryMs ?? 1_000;
    this.schedules = opts.schedules;
    this.byId = new Map(opts.schedules.map((s) => [s.id, s]));
    // Its sleeps (up to maxSleepMs) do not hold a process open by themselves.
    this.loop = new PollLoop({ name: 'scheduler', clock: this.clock, log: this.log, pass: (ctx) => this.pass(ctx), retryMs: (n) => this.retryDelay(n), keepAlive: false });
  }

  /** When the loop will next tick (null when stopped). */
  get nextWakeAt(): number | null {
    return this.running ? this.wakeAt : null;
  }

  /** Syncs the configured schedules into the store, fires what is due, and starts the loop that sleeps until the next fire. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let delay: number;
    try {
      delay = await this.serial(async () => {
        await this.syncAll();
        await this.runTick(this.clock.now());
        return this.arm();
      });
    } catch (err) {
      this.running = false;
      throw err;
    }
    this.loop.start(delay);
  }

  /** Stops the loop and waits for a tick in progress. Claims in flight are finished by the next start (any process). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop.stop();
    await this.chain;
  }

  /** Swaps in a reloaded config: syncs (a changed spec starts afresh), fires what is due, re-arms. */
  async reconfigure(schedules: readonly Schedule[]): Promise<void> {
    await this.serial(async () => {
      this.schedules = schedules;
      this.byId = new Map(schedules.map((s) => [s.id, s]));
      await this.syncAll();
      await this.runTick(this.clock.now());
      await this.rearm();
    });
  }

  /** Records the configured schedules in the store (what `start` does first). */
  async sync(): Promise<void> {
    await this.serial(() => this.syncAll());
  }

  /** Fires everything due at `now` (default the clock's now). Safe to call from any number of processes. */
  async tick(now?: number): Promise<TickReport> {
    return this.serial(async () => {
      const report = await this.runTick(now ?? this.clock.now());
      await this.rearm();
      return report;
    });
  }

  /**
   * Lifts a heartbeat's pause (`spine schedules resume`): its streaks start over, and its
   * next fire is computed afresh from now (fires missed while paused are not made). Audited
   * as `heartbeat.resumed`. Not found, or not paused: a clear error, nothing changed.
   */
  async resume(id: string, actor: string): Promise<ScheduleState> {
    return this.serial(async () => {
      const state = await resumeHeartbeat(this.store, this.schedules, id, actor, this.clock.now());
      await this.rearm();
      return state;
    });
  }

  /** The configured schedules with their stored state. */
  async status(): Promise<Array<{ schedule: Schedule; state: ScheduleState | null }>> {
    const rows = new Map((await this.store.schedules.list()).map((r) => [r.id, r]));
    return this.schedules.map((schedule) => ({ schedule, state: rows.get(schedule.id) ?? null }));
  }

  // ── internals ──

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async syncAll(): Promise<void> {
    const now = this.clock.now();
    for (const s of this.schedules) {
      const { state, change } = await this.store.schedules.sync(
        { id: s.id, spec: s.spec, nextFireAt: initialFire(s, now), describe: describe(s), actor: SCHEDULER_ACTOR },
        now,
      );
      if (change !== 'unchanged') this.log.info(`schedule ${s.id} ${change}`, { next: iso(state.nextFireAt) });
    }
  }

  private async runTick(now: number): Promise<TickReport> {
    const report: TickReport = { fired: [], skipped: 0, idle: [], paused: [], failed: 0, errors: 0 };
    let rows: ScheduleState[];
    try {
      rows = await this.store.schedules.list();
      this.readFailures = 0;
    } catch (err) {
      this.readFailures++;
      report.errors++;
      this.log.error('schedules: cannot read the schedules table', { error: message(err) });
      return report;
    }
    for (const row of rows) {
      const s = this.byId.get(row.id);
      if (!s) continue; // not in this process's config: left alone
      const failing = this.backoff.get(s.id);
      if (failing && failing.until > now) continue;
      try {
        await this.tickOne(s, row, now, report);
        this.backoff.delete(s.id);
      } catch (err) {
        report.errors++;
        const failures = (failing?.failures ?? 0) + 1;
        const until = now + this.retryDelay(failures);
        this.backoff.set(s.id, { failures, until });
        this.log.error(`schedule ${s.id}: tick failed; retrying at ${iso(until)}`, { error: message(err) });
      }
    }
    return report;
  }

  private async tickOne(s: Schedule, row: ScheduleState, now: number, report: TickReport): Promise<void> {
    // A claim left open (a crash, or another process mid-way): finish it first. Retrying is harmless.
    if (row.claim) await this.finish(s, row.claim, report);
    // Fire only on the spec this process holds (during a rolling reload, the process with the stored spec fires).
    if (!s.enabled || row.spec !== s.spec || row.nextFireAt === null || row.nextFireAt > now) return;
    // A paused heartbeat makes nothing, and records nothing, until it is resumed.
    if (row.heartbeat.paused) return;
    const plan = planFires(s, row.nextFireAt, now, this.graceMs);
    const beat = s.heartbeat && plan.fire.length ? await this.beat(s, row, now) : null;
    const fires = beat && beat.kind !== 'fire' ? [] : plan.fire;
    const claim: ScheduleClaim | null = fires.length ? { id: newId('sfc'), claimedAt: now, fires } : null;
    const audit: AuditEntry[] = plan.skipped ? [skippedAudit(s, plan.skipped)] : [];
    if (beat) audit.push(...beatAudit(s, beat, plan.fire[plan.fire.length - 1]!));
    const claimed = await this.store.schedules.claim(
      { id: s.id, expectNextFireAt: row.nextFireAt, nextFireAt: plan.next, claim, audit, ...(beat ? { heartbeat: beat.patch } : {}) },
      now,
    );
    if (!claimed) return; // another process claimed these fires
    if (beat?.kind === 'skip') report.idle.push({ schedule: s.id, fireAt: plan.fire[plan.fire.length - 1]!, reason: beat.reason });
    if (beat?.kind === 'pause') {
      report.paused.push({ schedule: s.id, reason: beat.reason });
      this.log.warn(`heartbeat ${s.id} paused: ${beat.reason}; resume with: spine schedules resume ${s.id}`);
    }
    if (plan.skipped) {
      report.skipped += plan.skipped.count ?? plan.skipped.listed.length;
      this.log.warn(`schedule ${s.id}: skipped missed fires`, {
        count: plan.skipped.count,
        first: iso(plan.skipped.first),
        last: iso(plan.skipped.last),
        reason: plan.skipped.reason,
      });
    }
    if (claim) await this.finish(s, claim, report);
  }

  /** A heartbeat's due fire: its last run judged, its watched scopes looked at (reads only; the claim writes). */
  private async beat(s: Schedule, row: ScheduleState, now: number): Promise<Beat> {
    const hb = s.heartbeat!;
    const since = row.heartbeat.since ?? row.createdAt;
    const last = row.heartbeat.run ? await this.store.schedules.runEffects(row.heartbeat.run) : null;
    const active = hb.skipIfIdle
      ? await this.store.schedules.activity({ since, tenant: 'default', ...hb.watch, origin: scheduleOrigin(s.id, true), schedule: s.id })
      : true;
    return decideBeat(hb, { ...row.heartbeat, since }, last, active, now);
  }

  /** Accepts a claim's envelopes (idempotently) and closes it. Throws (leaving the claim open) on a retryable failure. */
  private async finish(s: Schedule, claim: ScheduleClaim, report: TickReport): Promise<void> {
    const audit: AuditEntry[] = [];
    const fired: TickReport['fired'] = [];
    let failed = 0;
    let last: number | null = null;
    const actor = `schedule:${s.id}`;
    const origin = scheduleOrigin(s.id, s.heartbeat !== null);
    let run: string | null = null;
    for (const fireAt of claim.fires) {
      const late = claim.claimedAt - fireAt > this.graceMs;
      try {
        const r = await this.intake.accept(fireEnvelope(s, fireAt, late), { actor, origin, ...(s.agent ? { agent: s.agent } : {}) });
        run = r.run?.id ?? run;
        last = fireAt;
        fired.push({ schedule: s.id, fireAt, envelope: r.envelope.id, created: r.created, late });
        audit.push({
          kind: 'schedule.fired',
          runId: r.run?.id ?? null,
          agent: r.run?.agent ?? null,
          actor,
          data: { schedule: s.id, fireAt: iso(fireAt), envelope: r.envelope.id, run: r.run?.id ?? null, state: r.envelope.state, late },
        });
      } catch (err) {
        if (!(err instanceof SpineError) || err.retryable) throw err;
        failed++;
        audit.push({ kind: 'schedule.failed', actor, data: { schedule: s.id, fireAt: iso(fireAt), error: err.toInfo() as unknown as Json } });
        this.log.error(`schedule ${s.id}: fire ${iso(fireAt)} failed`, { error: err.message });
      }
    }
    const closed = await this.store.schedules.complete(
      // A heartbeat's run is judged at its next fire.
      { id: s.id, claimId: claim.id, fired: fired.length, lastFireAt: last, audit, ...(s.heartbeat ? { heartbeatRun: run } : {}) },
      this.clock.now(),
    );
    if (!closed) return; // another process finished the same claim and recorded it
    report.fired.push(...fired);
    report.failed += failed;
    for (const f of fired) this.log.info(`schedule ${s.id} fired`, { fireAt: iso(f.fireAt), envelope: f.envelope, ...(f.late ? { late: true } : {}) });
  }

  /**
   * A pass of the loop. Its sleep ran out at the armed time: tick, then sleep until the
   * next fire. Before that time (woken by an explicit tick or reload, which re-armed
   * already, or a timer firing a millisecond early): sleep until the time they set.
   */
  private pass(_ctx: PassContext): Promise<number> {
    const now = this.clock.now();
    // Woken by a tick or reload that re-armed already, or a timer that fired a moment early: sleep on until the armed time.
    if (this.wakeAt !== null && this.wakeAt > now) return Promise.resolve(Math.min(this.wakeAt - now, this.maxSleepMs));
    return this.serial(async () => {
      await this.runTick(this.clock.now());
      return this.arm();
    });
  }

  /** After a tick outside the loop: the loop's sleep is recomputed. */
  private async rearm(): Promise<void> {
    if (!this.running) return;
    await this.arm();
    this.loop.wake();
  }

  /** When to tick next: the earliest due fire (or retry), at most maxSleepMs from now. Returns the delay. */
  private async arm(): Promise<number> {
    const now = this.clock.now();
    let wake: number | null = this.readFailures > 0 ? now + this.retryDelay(this.readFailures) : null;
    const earliest = (t: number) => (wake = wake === null ? t : Math.min(wake, t));
    try {
      for (const row of await this.store.schedules.list()) {
        const s = this.byId.get(row.id);
        if (!s) continue;
        let due: number | null = null;
        // An open claim is another process mid-way (or a crash): look again shortly.
        if (row.claim) due = now + this.retryMs;
        else if (row.heartbeat.paused) due = null;
        else if (s.enabled && row.spec === s.spec && row.nextFireAt !== null) due = row.nextFireAt;
        const failing = this.backoff.get(s.id);
        if (due !== null) earliest(failing ? Math.max(due, failing.until) : due);
      }
    } catch (err) {
      this.readFailures++;
      this.log.error('schedules: cannot read the schedules table', { error: message(err) });
      earliest(now + this.retryDelay(this.readFailures));
    }
    const delay = Math.max(0, Math.min(wake === null ? this.maxSleepMs : wake - now, this.maxSleepMs));
    this.wakeAt = now + delay;
    return delay;
  }

  private retryDelay(failures: number): number {
    return Math.min(this.retryMs * 2 ** Math.max(0, failures - 1), MAX_RETRY_MS);
  }
}

/**
 * Lifts a heartbeat's pause, from any process (`spine schedules resume` too): streaks
 * reset, the next fire computed afresh from `now`, audited `heartbeat.resumed`. A running
 * scheduler sees it at its next look at the table (within its maxSleepMs).
 */
export async function resumeHeartbeat(store: Store, schedules: readonly Schedule[], id: string, actor: string, now: number): Promise<ScheduleState> {
  const s = schedules.find((x) => x.id === id);
  if (!s) throw new NotFoundError('schedule', id);
  if (!s.heartbeat) throw new InvalidInputError('schedule', `${id} is not a heartbeat: only heartbeats pause`);
  const row = await store.schedules.get(id);
  if (!row?.heartbeat.paused) throw new InvalidStateError(`heartbeat ${id} is not paused`);
  const next = initialFire(s, now);
  const audit: AuditEntry[] = [
    { kind: 'heartbeat.resumed', actor, data: { schedule: id, pausedAt: iso(row.heartbeat.paused.at), reason: row.heartbeat.paused.reason, nextFireAt: iso(next) } },
  ];
  if (!(await store.schedules.resume({ id, nextFireAt: next, audit }, now))) throw new InvalidStateError(`heartbeat ${id} is not paused`);
  return (await store.schedules.get(id))!;
}

/** The envelope of one fire: channel `cron`, peer = the schedule, keyed by the fire time. */
export function fireEnvelope(s: Schedule, fireAt: number, late: boolean): Envelope {
  return {
    channel: 'cron',
    account: 'default',
    peer: { kind: 'channel', id: s.id },
    parentPeer: null,
    sender: null,
    thread: null,
    text: s.text,
    data: { schedule: s.id, fireAt: new Date(fireAt).toISOString(), late, data: s.data, ...(s.heartbeat ? { heartbeat: true } : {}) },
    idempotencyKey: fireKey(s.id, fireAt),
    replyTo: null,
  };
}

function skippedAudit(s: Schedule, skipped: SkippedFires): AuditEntry {
  return {
    kind: 'schedule.skipped',
    actor: `schedule:${s.id}`,
    data: {
      schedule: s.id,
      catchUp: s.catchUp,
      reason: skipped.reason,
      count: skipped.count,
      first: iso(skipped.first),
      last: iso(skipped.last),
      fireTimes: skipped.listed.map((t) => new Date(t).toISOString()),
      ...(skipped.count === null || skipped.count > skipped.listed.length ? { truncated: true } : {}),
    },
  };
}

function describe(s: Schedule): Json {
  return {
    ...describeTrigger(s),
    catchUp: s.catchUp,
    enabled: s.enabled,
    agent: s.agent,
    ...(s.heartbeat ? { heartbeat: { watch: s.heartbeat.watchList, skipIfIdle: s.heartbeat.skipIfIdle } } : {}),
  };
}

/** A schedule's trigger as written: `cron` (with its timezone), `at`, or `every` (ms). */
function describeTrigger(s: Schedule): { [key: string]: Json } {
  switch (s.trigger.kind) {
    case 'cron':
      return { cron: s.trigger.pattern, timezone: s.timezone };
    case 'at':
      return { at: new Date(s.trigger.at).toISOString() };
    case 'every':
      return { everyMs: s.trigger.ms };
  }
}

/** What a heartbeat's fire records besides `schedule.fired`: the judged run, a skip or a pause. */
function beatAudit(s: Schedule, beat: Beat, fireAt: number): AuditEntry[] {
  const actor = `schedule:${s.id}`;
  const out: AuditEntry[] = [];
  if (beat.judged) {
    const j = beat.judged;
    out.push({ kind: 'heartbeat.judged', runId: j.run, actor, data: { schedule: s.id, run: j.run, noop: j.noop, digest: j.digest, noops: beat.patch.noops, identical: beat.patch.identical } });
  }
  if (beat.kind === 'skip') out.push({ kind: 'heartbeat.skipped', actor, data: { schedule: s.id, fireAt: iso(fireAt), reason: beat.reason, since: iso(beat.patch.since) } });
  if (beat.kind === 'pause') out.push({ kind: 'heartbeat.paused', actor, data: { schedule: s.id, fireAt: iso(fireAt), reason: beat.reason, run: beat.judged.run } });
  return out;
}

function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
