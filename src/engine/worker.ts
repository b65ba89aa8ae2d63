import { hostname } from 'node:os';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { faultPoint } from '../core/faults.ts';
import { newId } from '../core/ids.ts';
import { PollLoop, type PassContext } from '../core/poll-loop.ts';
import { silentLogger, withFields, type Logger } from '../core/log.ts';
import type { ClaimedTask, Lease, Store } from '../store/store.ts';
import { DEFAULT_TIMEOUT_MS, DEFAULT_WORKER, type Registry, type WorkerOptions } from './options.ts';
import { sweepStuck } from '../validation/stuck.ts';
import { Prober, type ProbeEntry } from '../validation/probes.ts';
import { Boundary } from './boundary.ts';
import { BreakerBoard } from '../validation/breakers.ts';
import { runTask, type AgentEvent, type StopReason } from './task-runner.ts';
import type { MeshShim } from './mesh-shim.ts';

interface InFlight {
  lease: Lease;
  stop: AbortController;
  done: Promise<void>;
  /** Its last commit is handed in: the slot counts as free. */
  released: boolean;
}

export interface WorkerDeps {
  store: Store;
  registry: Registry;
  options?: Partial<WorkerOptions>;
  clock?: Clock;
  log?: Logger;
  id?: string;
  /** Most session messages handed to a root task's turn (`sessions.historyLimit`, default 20). */
  historyLimit?: number;
  /** Live-only events from agents (streamed tokens), e.g. for the gateway's event stream. */
  onAgentEvent?: (e: AgentEvent) => void;
  /** The mesh shim this process's gateway serves: external agents' turns get capabilities for it (docs/mesh.md). */
  shim?: MeshShim;
}

/** What `runOnce` did. */
export interface RunOnceReport {
  /** Tasks whose lease had expired, queued again. */
  reclaimed: number;
  /** Spend reservations whose holder is gone, released. */
  released: number;
  /** Approvals past their expiry, escalated. */
  expired: number;
  /** The tasks claimed and run, in claim order (a task claimed again after a retry is listed again). */
  ran: Array<{ taskId: string; runId: string; agent: string }>;
}

/**
 * Leases tasks in batches (as many as it has free slots), runs them, heartbeats
 * its leases and requeues tasks whose worker died. Wakes on commits that made work
 * ready; polls only as a fallback (due retries, other processes' work).
 */
export class Worker {
  readonly id: string;
  private readonly store: Store;
  private registry: Registry;
  private readonly opts: WorkerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly inflight = new Map<string, InFlight>();
  private stopping = false;
  private registered = false;
  private readonly loop: PollLoop;
  private readonly heartbeats: PollLoop;
  private readonly liveness: PollLoop;
  /** The peer this worker watches for its death (see sweepLost). */
  private watching: { peer: string; stop: AbortController } | null = null;
  private unsubscribe: (() => void) | null = null;
  private lastReap = Number.NEGATIVE_INFINITY;
  /** Session history bound for claimed turns; follows config reloads. */
  historyLimit: number;
  private readonly onAgentEvent: ((e: AgentEvent) => void) | undefined;
  private readonly shim: MeshShim | undefined;
  private readonly reapEveryMs: number;
  private boundary: Boundary;
  private breakers: BreakerBoard | null = null;
  /** Runs the agents' health probes (one prober per worker; the store's lease picks one worker per probe). */
  readonly prober: Prober;
  private readonly probing: PollLoop;

  constructor(deps: WorkerDeps) {
    this.store = deps.store;
    this.registry = deps.registry;
    this.opts = { ...DEFAULT_WORKER, ...deps.options };
    this.clock = deps.clock ?? systemClock;
    this.id = deps.id ?? newId('wrk');
    // Every line this worker logs names it; a task's lines name the run, task and agent too.
    this.log = withFields(deps.log ?? silentLogger, { worker: this.id });
    this.historyLimit = deps.historyLimit ?? 20;
    this.onAgentEvent = deps.onAgentEvent;
    this.shim = deps.shim;
    this.reapEveryMs = Math.max(50, Math.min(this.opts.leaseMs / 2, 15_000));
    this.boundary = new Boundary(this.store, this.registry, this.clock);
    this.breakers = this.boardFor(this.registry);
    const common = { clock: this.clock, log: this.log };
    this.loop = new PollLoop({ ...common, name: 'worker loop', pass: (ctx) => this.pass(ctx), retryMs: () => Math.min(this.opts.pollMs, 1_000) });
    this.heartbeats = new PollLoop({ ...common, name: 'worker heartbeat', pass: () => this.heartbeat() });
    this.liveness = new PollLoop({ ...common, name: 'worker liveness', pass: () => this.sweepLost() });
    this.prober = new Prober({ store: this.store.probes, clock: this.clock, owner: this.id, entries: probesOf(this.registry), board: this.breakers });
    this.probing = new PollLoop({ ...common, name: 'health probes', pass: async () => (await this.prober.tick()).sleepMs });
  }

  get running(): number {
    return this.inflight.size;
  }

  /** Swaps in a reloaded registry: turns that start from now on use it; turns in flight finish with the old one. */
  setRegistry(registry: Registry): void {
    this.registry = registry;
    this.boundary = new Boundary(this.store, registry, this.clock);
    this.breakers = this.boardFor(registry);
    this.prober.reconfigure(probesOf(registry), this.breakers);
    if (this.loop.running && !this.probing.running && this.prober.size > 0) this.probing.start();
  }

  /** This worker's view of the shared circuit breakers (null when validation.breakers is off). */
  private boardFor(registry: Registry): BreakerBoard | null {
    return registry.breakers ? new BreakerBoard(this.store.breakers, registry.breakers, this.clock, this.id) : null;
  }

  /** The runtime's reload: a new registry and session history bound. */
  reconfigure(next: { registry: Registry; historyLimit: number }): void {
    this.setRegistry(next.registry);
    this.historyLimit = next.historyLimit;
  }

  async start(): Promise<void> {
    await this.register();
    this.unsubscribe = this.store.onTasksReady(() => this.wake());
    this.heartbeats.start(this.opts.heartbeatMs);
    if (this.opts.livenessMs > 0) this.liveness.start();
    if (this.prober.size > 0) this.probing.start();
    this.loop.start();
  }

  /**
   * Runs what is due without the background loop, for tests (like graphile-worker's
   * runOnce): reaps expired leases, reservations and approvals, then claims due tasks
   * (up to `concurrency` at a time) and runs each to the end of its turns — until it
   * waits, finishes or fails an attempt — and claims again until nothing is due at
   * the clock's now. Not while the worker is started.
   */
  async runOnce(): Promise<RunOnceReport> {
    if (this.loop.running) throw new Error('runOnce() is for a worker that is not started');
    await this.register();
    const now = this.clock.now();
    this.lastReap = now;
    await this.store.workers.sweepLost(this.id, now);
    await this.sweepStuck(now);
    const report: RunOnceReport = {
      reclaimed: await this.store.tasks.reclaimExpired(now, this.registry.limits.maxReclaims),
      released: await this.store.limits.releaseExpired(now),
      expired: await this.store.approvals.expire(now),
      ran: [],
    };
    await this.store.tasks.expireJoins(now);
    // Leases are extended while the turns run (on the system clock a turn may outlast its lease).
    this.heartbeats.start(this.opts.heartbeatMs);
    try {
      for (;;) {
        const claimed = await this.claim(this.opts.concurrency);
        if (claimed.length === 0) return report;
        for (const c of claimed) {
          report.ran.push({ taskId: c.task.id, runId: c.task.runId, agent: c.task.agent });
          this.launch(c);
        }
        await Promise.all([...this.inflight.values()].map((f) => f.done));
      }
    } finally {
      await this.heartbeats.stop();
    }
  }

  /**
   * The stuck-work sweep (health.stuck), on the reaper's tick and before it: an expired
   * lease is seen before the reaper takes it back. A failed sweep is logged; the reaper goes on.
   */
  private async sweepStuck(now: number): Promise<void> {
    const settings = this.registry.stuck;
    if (!settings) return;
    const agents = this.registry.agents;
    try {
      const { raised } = await sweepStuck(this.store, settings, { turnTimeoutMs: (a) => agents.get(a)?.timeoutMs ?? DEFAULT_TIMEOUT_MS }, now, this.id);
      for (const f of raised) this.log.warn('stuck work', { kind: f.kind, subject: f.id, run: f.runId, action: f.action, detail: f.detail });
    } catch (err) {
      this.log.error('stuck-work sweep failed', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Stops leasing, lets in-flight turns finish within drainMs, then hands the rest back. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watching?.stop.abort();
    await this.liveness.stop();
    await this.probing.stop();
    await this.loop.stop();
    const drained = new AbortController();
    const all = Promise.all([...this.inflight.values()].map((f) => f.done)).then(() => drained.abort());
    await Promise.race([all, this.clock.sleep(this.opts.drainMs, drained.signal)]);
    drained.abort();
    const left = [...this.inflight.values()];
    for (const f of left) f.stop.abort('shutdown' satisfies StopReason);
    await Promise.all(left.map((f) => f.done));
    try {
      // Handing leases back is a courtesy: if the store cannot take it (a full disk), the leases expire and others take over.
      if (left.length > 0) await this.store.tasks.release(left.map((f) => f.lease), this.clock.now());
    } finally {
      // Whatever the store says, the loops stop: a worker that cannot write must still let the process exit.
      await this.heartbeats.stop();
      this.unsubscribe?.();
    }
    if (this.registered) await this.store.workers.stop(this.id, this.clock.now());
  }

  /** Asks the loop to look for work now. */
  wake(): void {
    this.loop.wake();
  }

  private async register(): Promise<void> {
    if (this.registered) return;
    await this.store.workers.register({ id: this.id, pid: process.pid, host: hostname() }, this.clock.now());
    this.registered = true;
  }

  private claim(limit: number): Promise<ClaimedTask[]> {
    return this.store.tasks.claim({ workerId: this.id, limit, leaseMs: this.opts.leaseMs, now: this.clock.now(), historyLimit: this.historyLimit });
  }

  /** One pass of the loop: reap when due, claim into free slots; returns how long to sleep. */
  private async pass({ woken }: PassContext): Promise<number> {
    const now = this.clock.now();
    if (now - this.lastReap >= this.reapEveryMs) {
      this.lastReap = now;
      await this.sweepStuck(now);
      await this.store.tasks.reclaimExpired(now, this.registry.limits.maxReclaims);
      await this.store.limits.releaseExpired(now);
      await this.store.approvals.expire(now);
      await this.store.tasks.expireJoins(now);
    }
    let busy = 0;
    for (const f of this.inflight.values()) if (!f.released) busy++;
    const free = this.opts.concurrency - busy;
    // All slots busy: only a finishing task (a wake-up) or the reaper's tick matters.
    if (free <= 0) return Math.min(this.fallbackPollMs(), this.reapEveryMs);
    if (!woken) {
      // Nobody woke us: look before taking a write transaction (idle workers stay nearly silent).
      const due = await this.store.tasks.nextDueAt();
      if (due === null || due > this.clock.now()) return this.sleepUntil(due);
    }
    const claimed = await this.claim(free);
    if (claimed.length > 0) faultPoint('after-claim');
    for (const c of claimed) this.launch(c);
    if (claimed.length === free) return 0; // probably more waiting
    return this.idleFor();
  }

  /**
   * How long to sleep when there is nothing to lease: until the next queued task
   * comes due, at most the fallback poll. A store that wakes us across processes
   * (PostgreSQL LISTEN/NOTIFY) needs only a slow fallback poll.
   */
  private async idleFor(): Promise<number> {
    try {
      return this.sleepUntil(await this.store.tasks.nextDueAt());
    } catch {
      return this.fallbackPollMs();
    }
  }

  private sleepUntil(due: number | null): number {
    // Never sleep past the next reap: expired leases, reservations and approvals are found in time.
    const fallback = Math.min(this.fallbackPollMs(), this.reapEveryMs);
    if (due === null) return fallback;
    return Math.max(1, Math.min(fallback, due - this.clock.now()));
  }

  private fallbackPollMs(): number {
    return this.store.capabilities.crossProcessWakeups ? Math.max(this.opts.pollMs, 5_000) : this.opts.pollMs;
  }

  private launch(claimed: ClaimedTask): void {
    const stop = new AbortController();
    const id = claimed.task.id;
    const release = () => {
      const f = this.inflight.get(id);
      if (f && !f.released && !this.stopping) {
        f.released = true;
        this.wake();
      }
    };
    const env = {
      store: this.store,
      registry: this.registry,
      boundary: this.boundary,
      ...(this.breakers ? { breakers: this.breakers } : {}),
      clock: this.clock,
      workerId: this.id,
      log: withFields(this.log, { run: claimed.task.runId, task: id, agent: claimed.task.agent }),
      release,
      ...(this.shim ? { shim: this.shim } : {}),
      ...(this.onAgentEvent ? { onAgentEvent: this.onAgentEvent } : {}),
    };
    const done = runTask(env, claimed, stop.signal)
      .catch((err: unknown) => {
        // The lease will expire and another worker retries; nothing is lost.
        this.log.error('task runner crashed', { task: id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      })
      .finally(() => {
        this.inflight.delete(id);
        this.wake();
      });
    this.inflight.set(id, { lease: claimed.lease, stop, done, released: false });
  }

  /**
   * Takes back the tasks of workers that died without stopping. Where the database
   * can tell of a death unasked (PostgreSQL), each worker watches the one started just
   * before it — a ring, so every worker has a watcher — and sweeps the moment it dies;
   * the sweep also runs every 5 × livenessMs, for a watch that broke or a ring that
   * changed. Elsewhere (SQLite: local reads) every worker sweeps every livenessMs.
   */
  private async sweepLost(): Promise<number> {
    const now = this.clock.now();
    const { lost, live } = await this.store.workers.sweepLost(this.id, now);
    if (lost.length > 0) {
      this.log.warn('workers died without stopping; taking their tasks back', { workers: lost });
      if ((await this.store.tasks.reclaimExpired(now, this.registry.limits.maxReclaims)) > 0) this.wake();
    }
    const watch = this.store.workers.watchPeer;
    if (!watch) return this.opts.livenessMs;
    this.watchPredecessor(watch, live);
    return this.opts.livenessMs * 5;
  }

  private watchPredecessor(watch: (peerId: string, signal: AbortSignal) => Promise<boolean>, live: readonly string[]): void {
    const me = live.indexOf(this.id);
    const peer = me < 0 || live.length < 2 || this.stopping ? null : live[(me - 1 + live.length) % live.length]!;
    if (this.watching?.peer === peer) return;
    this.watching?.stop.abort();
    this.watching = null;
    if (peer === null) return;
    const watching = { peer, stop: new AbortController() };
    this.watching = watching;
    void watch(peer, watching.stop.signal).then((died) => {
      if (this.watching === watching) this.watching = null;
      if (died) this.liveness.wake();
    });
  }

  /** Extends the leases of running turns; returns the sleep until the next one (a fixed rate: a slow round trip does not push it back). */
  private async heartbeat(): Promise<number> {
    const started = this.clock.now();
    const next = () => Math.max(0, this.opts.heartbeatMs - (this.clock.now() - started));
    if (this.inflight.size === 0 && this.stopping) return next();
    try {
      const now = this.clock.now();
      // Only judge tasks launched before asking: a claim committed after the heartbeat read is not "lost".
      const asked = new Set(this.inflight.keys());
      // Extend only the leases of turns still running: a task whose runner crashed must expire and be reclaimed.
      const held = new Set(await this.store.tasks.heartbeat(this.id, now + this.opts.leaseMs, now, [...asked]));
      for (const [id, f] of this.inflight) {
        if (asked.has(id) && !held.has(id) && !f.stop.signal.aborted) {
          this.log.warn('lease lost (cancelled or expired); stopping the turn', { task: id });
          f.stop.abort('lease-lost' satisfies StopReason);
        }
      }
    } catch (err) {
      this.log.error('heartbeat failed', { error: err instanceof Error ? err.message : String(err) });
    }
    return next();
  }
}

/** The registry's health probes: each agent's feeds its breaker, each MCP server's its tools' breakers. */
function probesOf(registry: Registry): ProbeEntry[] {
  const agents = [...registry.agents.values()].flatMap((a) => (a.probe ? [{ key: `agent:${a.name}`, probe: a.probe }] : []));
  return [...agents, ...(registry.serverProbes ?? [])];
}
