/**
 * Time for the engine: every wait goes through a clock, so tests move time instead of
 * sleeping. `systemClock` is the wall clock and real timers; `ManualClock` moves only
 * when a test says so, and then fires the timers that came due (time-skipping, as in
 * Temporal's test environment).
 */
export interface Clock {
  now(): number;
  /**
   * Runs `fn` once after `ms`; the handle cancels it. Like setTimeout, a pending timer
   * keeps the process alive unless `unref` (for services that must not hold a process
   * open by themselves, e.g. a scheduler sleeping for minutes).
   */
  timer(ms: number, fn: () => void, opts?: { unref?: boolean }): Timer;
  /** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Timer {
  cancel(): void;
}

/** setTimeout's ceiling (2^31−1 ms, about 24.8 days); longer waits are cut to it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function sleepOn(clock: Pick<Clock, 'timer'>, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      t.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = clock.timer(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export const systemClock: Clock = {
  now: () => Date.now(),
  timer(ms, fn, opts) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    if (opts?.unref) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    return sleepOn(systemClock, ms, signal);
  },
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that stands still until `advance` or `set` moves it; moving it fires every
 * timer due by then, in due order. What a fired timer wakes (a poll loop's next pass)
 * runs after `advance` returns: await the state it reaches, not a real delay.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly pending = new Set<Pending>();
  private readonly watchers = new Set<() => void>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  timer(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.add(p);
    for (const w of [...this.watchers]) w();
    return { cancel: () => void this.pending.delete(p) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Moves time forward by `ms` and fires the timers due by then. */
  advance(ms: number): void {
    this.set(this.t + ms);
  }

  /** Moves time to `ms` and fires the timers due by then (time never runs backwards for timers). */
  set(ms: number): void {
    this.t = ms;
    const due = [...this.pending].filter((p) => p.at <= ms).sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const p of due) {
      if (!this.pending.delete(p)) continue; // cancelled by an earlier one
      p.fn();
    }
  }

  /** Moves time to the earliest pending timer and fires it (and any due with it); returns false if none is pending. */
  skip(): boolean {
    const next = this.nextAt();
    if (next === null) return false;
    this.set(Math.max(this.t, next));
    return true;
  }

  /** Timers waiting to fire. */
  get timers(): number {
    return this.pending.size;
  }

  /** When the earliest pending timer is due, or null. */
  nextAt(): number | null {
    let next: number | null = null;
    for (const p of this.pending) if (next === null || p.at < next) next = p.at;
    return next;
  }

  /** Resolves once at least `n` timers are pending (e.g. every loop under test has gone back to sleep). */
  waitForTimers(n = 1): Promise<void> {
    if (this.pending.size >= n) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.pending.size < n) return;
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
    });
  }
}
