import type { Clock } from '../core/clock.ts';
import type { AuditEntry } from '../store/audit.ts';
import type { BreakerChange, BreakerRecord, BreakerStore } from '../store/breakers.ts';

/**
 * Circuit breakers shared by every worker (docs/validation.md). The state lives in
 * the store; each worker keeps a snapshot, refreshed every `refreshMs`, so an open
 * breaker rejects work without a store round trip per task. A worker that records a
 * change sees it at once; every other worker within `refreshMs`.
 *
 *   closed ──N failures (or the error rate) in the window──▶ open
 *   open ──cooldown passed, one worker claims the probe──▶ half-open
 *   half-open ──probe succeeds──▶ closed;  ──probe fails──▶ open (cooldown again)
 */
export interface BreakerSettings {
  /** Failures within `windowMs` that open a breaker. */
  failures: number;
  windowMs: number;
  /** Or: this share of failed calls (with at least `minCalls` in the window). */
  errorRate: number | null;
  minCalls: number;
  /** How long an open breaker rejects before it lets one probe through. */
  cooldownMs: number;
  /** How long a claimed probe may take before another worker may claim it. */
  probeMs: number;
  /** How often a worker re-reads every breaker's state. */
  refreshMs: number;
}

export const DEFAULT_BREAKERS: BreakerSettings = { failures: 5, windowMs: 60_000, errorRate: null, minCalls: 10, cooldownMs: 30_000, probeMs: 120_000, refreshMs: 1_000 };

/** Who changes a breaker, for its audit events. */
interface Actor {
  actor: string;
}

function fresh(key: string, now: number): BreakerRecord {
  return { key, state: 'closed', failures: 0, calls: 0, windowStart: now, retryAt: null, probeOwner: null, probeUntil: null, lastError: null, changedAt: now };
}

function event(kind: string, b: BreakerRecord, who: Actor, extra: Record<string, string | number | null> = {}): AuditEntry {
  return { kind, actor: who.actor, data: { breaker: b.key, state: b.state, failures: b.failures, calls: b.calls, retryAt: b.retryAt, ...extra } };
}

/** One call's outcome. */
export function outcomeChange(key: string, ok: boolean, error: string | null, s: BreakerSettings, now: number, who: Actor): BreakerChange {
  return (cur) => {
    let b = cur ?? fresh(key, now);
    if (now - b.windowStart >= s.windowMs && b.state === 'closed') b = { ...b, failures: 0, calls: 0, windowStart: now };
    b = { ...b, calls: b.calls + 1, failures: b.failures + (ok ? 0 : 1), ...(ok ? {} : { lastError: error }) };
    const audit: AuditEntry[] = [];
    if (ok && b.state !== 'closed') {
      b = { ...b, state: 'closed', failures: 0, calls: 0, windowStart: now, retryAt: null, probeOwner: null, probeUntil: null, changedAt: now };
      audit.push(event('breaker.closed', b, who));
    } else if (!ok && b.state === 'half-open') {
      b = { ...b, state: 'open', retryAt: now + s.cooldownMs, probeOwner: null, probeUntil: null, changedAt: now };
      audit.push(event('breaker.opened', b, who, { why: 'the half-open probe failed', error }));
    } else if (!ok && b.state === 'closed') {
      const rate = s.errorRate !== null && b.calls >= s.minCalls && b.failures / b.calls >= s.errorRate;
      if (b.failures >= s.failures || rate) {
        b = { ...b, state: 'open', retryAt: now + s.cooldownMs, changedAt: now };
        audit.push(event('breaker.opened', b, who, { why: rate ? `error rate ${b.failures}/${b.calls}` : `${b.failures} failures within ${s.windowMs} ms`, error }));
      }
    }
    return { next: b, audit };
  };
}

/** Claims the one half-open probe of an open breaker whose cooldown has passed (or whose probe holder went quiet). */
export function probeChange(owner: string, s: BreakerSettings, now: number, who: Actor): { change: BreakerChange; claimed: () => boolean } {
  let claimed = false;
  return {
    claimed: () => claimed,
    change: (cur) => {
      if (!cur || cur.state === 'closed') {
        claimed = true;
        return null;
      }
      const due = cur.state === 'open' ? (cur.retryAt ?? 0) <= now : (cur.probeUntil ?? 0) <= now;
      if (!due) return null;
      claimed = true;
      const b: BreakerRecord = { ...cur, state: 'half-open', probeOwner: owner, probeUntil: now + s.probeMs, changedAt: now };
      return { next: b, audit: [event('breaker.half-open', b, who, { probe: owner })] };
    },
  };
}

/** An operator closes a breaker by hand. */
export function resetChange(now: number, who: Actor): BreakerChange {
  return (cur) => {
    if (!cur) return null;
    const b: BreakerRecord = { ...fresh(cur.key, now), lastError: cur.lastError };
    return { next: b, audit: [event('breaker.reset', b, who, { was: cur.state })] };
  };
}

/** What a worker may do with work that needs a breaker. */
export type Admission = { ok: true; probe: boolean } | { ok: false; retryAt: number; breaker: BreakerRecord };

/** One worker's view of every breaker: a snapshot of the store, refreshed on a schedule, updated by its own changes at once. */
export class BreakerBoard {
  readonly settings: BreakerSettings;
  private readonly store: BreakerStore;
  private readonly clock: Clock;
  private readonly owner: string;
  private snapshot = new Map<string, BreakerRecord>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(store: BreakerStore, settings: BreakerSettings, clock: Clock, owner: string) {
    this.store = store;
    this.settings = settings;
    this.clock = clock;
    this.owner = owner;
  }

  /** Re-reads the store's breakers when the snapshot is older than refreshMs: one round trip per interval, shared by every task. */
  async refresh(force = false): Promise<void> {
    if (!force && this.clock.now() - this.loadedAt < this.settings.refreshMs) return;
    this.loading ??= this.store
      .list()
      .then((rows) => {
        this.snapshot = new Map(rows.map((r) => [r.key, r]));
        this.loadedAt = this.clock.now();
      })
      .finally(() => (this.loading = null));
    await this.loading;
  }

  /** The cached state of one breaker (closed if unknown). */
  peek(key: string): BreakerRecord | null {
    return this.snapshot.get(key) ?? null;
  }

  /** Whether work needing `key` may run now. Closed: from the snapshot, no round trip. Open and due: claims the probe in the store. */
  async admit(key: string): Promise<Admission> {
    await this.refresh();
    const b = this.snapshot.get(key);
    if (!b || b.state === 'closed') return { ok: true, probe: false };
    const now = this.clock.now();
    if (b.state === 'half-open' && b.probeOwner === this.owner && (b.probeUntil ?? 0) > now) return { ok: true, probe: true };
    const due = b.state === 'open' ? (b.retryAt ?? 0) <= now : (b.probeUntil ?? 0) <= now;
    if (!due) return { ok: false, retryAt: b.state === 'open' ? b.retryAt! : b.probeUntil!, breaker: b };
    const probe = probeChange(this.owner, this.settings, now, { actor: this.owner });
    const after = await this.store.update(key, probe.change, now);
    if (after) this.snapshot.set(key, after);
    if (probe.claimed()) return { ok: true, probe: true };
    const held = after ?? b;
    return { ok: false, retryAt: held.state === 'open' ? (held.retryAt ?? now + this.settings.cooldownMs) : (held.probeUntil ?? now + this.settings.cooldownMs), breaker: held };
  }

  /**
   * Records one call's outcome. A success on a closed breaker with no failures in
   * its window writes nothing (the common case costs no round trip).
   */
  async record(key: string, ok: boolean, error: string | null = null): Promise<void> {
    const now = this.clock.now();
    const b = this.snapshot.get(key);
    // Successes on a closed breaker only matter to an error rate, and then only while the window holds failures.
    const quiet = !b || b.failures === 0 || now - b.windowStart >= this.settings.windowMs;
    if (ok && (!b || b.state === 'closed') && (this.settings.errorRate === null || quiet)) return;
    const after = await this.store.update(key, outcomeChange(key, ok, error, this.settings, now, { actor: this.owner }), now);
    if (after) this.snapshot.set(key, after);
  }
}
