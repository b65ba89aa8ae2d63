import type { HealthProbe } from '../core/agent.ts';
import type { Clock, Timer } from '../core/clock.ts';
import type { ProbeStore } from '../store/store.ts';
import type { BreakerBoard } from './breakers.ts';

/**
 * Runs the health probes on the injected clock (docs/health.md). One prober per
 * worker process; across processes, a probe runs where its short store lease was won
 * (`health_probes`), so N workers do not probe N times. Each result is stored (doctor,
 * GET /v1/health) and fed to the probed thing's breakers (an agent's own; an MCP
 * server's tools', each): a failure counts as a failed call; a success on an open
 * breaker whose cooldown passed claims the half-open probe and closes it, as a
 * successful call would. A success during the cooldown changes nothing: the cooldown
 * stands.
 */
export interface ProbeEntry {
  /** What it checks, stored and shown: `agent:<name>` (also the breaker it feeds) or `mcp:<server>`. */
  key: string;
  /** The breakers it feeds when not just `key`: an MCP server's tools, `tool:<name>` each. */
  feeds?: readonly string[];
  probe: HealthProbe;
}

export interface ProbeOutcome {
  key: string;
  ok: boolean;
  detail: string;
}

/** A lease outlives the check's timeout by this, so a slow answer is still recorded by its prober. */
const LEASE_SLACK_MS = 5_000;

export class Prober {
  private readonly store: ProbeStore;
  private readonly clock: Clock;
  private readonly owner: string;
  private entries: ProbeEntry[];
  private board: BreakerBoard | null;
  /** When this process looks at each probe next (the store decides who runs it). */
  private readonly nextAt = new Map<string, number>();

  constructor(deps: { store: ProbeStore; clock: Clock; owner: string; entries: ProbeEntry[]; board: BreakerBoard | null }) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.owner = deps.owner;
    this.entries = deps.entries;
    this.board = deps.board;
  }

  /** A reloaded config: new probes, a new breaker board. */
  reconfigure(entries: ProbeEntry[], board: BreakerBoard | null): void {
    this.entries = entries;
    this.board = board;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Runs every probe due now whose lease this process wins; returns what ran and how long until the next is due. */
  async tick(): Promise<{ ran: ProbeOutcome[]; sleepMs: number }> {
    const ran: ProbeOutcome[] = [];
    await Promise.all(
      this.entries.map(async (e) => {
        const now = this.clock.now();
        if ((this.nextAt.get(e.key) ?? 0) > now) return;
        this.nextAt.set(e.key, now + e.probe.everyMs);
        if (!(await this.store.claim(e.key, this.owner, now, e.probe.timeoutMs + LEASE_SLACK_MS))) return;
        ran.push(await this.run(e));
      }),
    );
    const now = this.clock.now();
    let sleepMs = Infinity;
    for (const e of this.entries) sleepMs = Math.min(sleepMs, Math.max(0, (this.nextAt.get(e.key) ?? now) - now));
    return { ran, sleepMs: Number.isFinite(sleepMs) ? sleepMs : 60_000 };
  }

  private async run(e: ProbeEntry): Promise<ProbeOutcome> {
    const started = this.clock.now();
    const ctl = new AbortController();
    let timer: Timer | undefined;
    let ok: boolean;
    let detail: string;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = this.clock.timer(e.probe.timeoutMs, () => {
          const err = new Error(`no answer within ${e.probe.timeoutMs} ms`);
          ctl.abort(err);
          reject(err);
        });
      });
      detail = await Promise.race([e.probe.check(ctl.signal), timeout]);
      ok = true;
    } catch (err) {
      ok = false;
      detail = err instanceof Error ? err.message : String(err);
    } finally {
      timer?.cancel();
    }
    const now = this.clock.now();
    await this.feed(e.feeds ?? [e.key], ok, detail);
    await this.store.finish(e.key, this.owner, { ok, ms: now - started, detail }, now, started + e.probe.everyMs);
    return { key: e.key, ok, detail };
  }

  private async feed(keys: readonly string[], ok: boolean, detail: string): Promise<void> {
    const board = this.board;
    if (!board) return;
    if (!ok) {
      for (const key of keys) await board.record(key, false, `probe: ${detail}`.slice(0, 200));
      return;
    }
    await board.refresh(true);
    for (const key of keys) {
      const b = board.peek(key);
      if (!b || b.state === 'closed') continue;
      // Open and due (or a quiet half-open): claim the half-open probe, then the passing check closes it.
      const admitted = await board.admit(key);
      if (admitted.ok) await board.record(key, true);
    }
  }
}
