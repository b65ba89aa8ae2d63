import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { Wakeable } from './wake.ts';

/** What a pass of the loop learns about the sleep before it. */
export interface PassContext {
  /** The previous sleep was cut short by `wake()` (or this is the first pass): someone says there is work. */
  woken: boolean;
}

export interface PollLoopOptions {
  /** For the log: which loop failed. */
  name: string;
  clock: Clock;
  log: Logger;
  /**
   * One pass: looks for work, does it, and returns how long to sleep before the next
   * pass (ms; 0 goes again at once). A wake-up cuts the sleep short.
   */
  pass: (ctx: PassContext) => Promise<number>;
  /** Sleep after a pass threw, by consecutive failures (default 1 s). */
  retryMs?: (failures: number) => number;
  /** Whether the loop's sleep keeps the process alive (default true, like setTimeout). */
  keepAlive?: boolean;
}

/**
 * The one poll loop of Spine's background services (worker, heartbeat, outbox
 * dispatcher, scheduler, routing sweep, event hub, live log): run a pass, sleep on
 * the clock until the time it asked for or a wake-up, repeat until stopped. A pass
 * that throws is logged and retried after a pause; the loop never dies of it.
 * A wake-up that arrives during a pass is kept, so the next sleep returns at once.
 */
export class PollLoop {
  private readonly opts: PollLoopOptions;
  private readonly waker: Wakeable;
  private stopping = false;
  private done: Promise<void> | null = null;
  private sleepUntil: number | null = null;

  constructor(opts: PollLoopOptions) {
    this.opts = opts;
    this.waker = new Wakeable(opts.clock, { unref: opts.keepAlive === false });
  }

  get running(): boolean {
    return this.done !== null && !this.stopping;
  }

  /** When the loop's current sleep ends unless woken (null while a pass runs or when stopped). */
  get wakesAt(): number | null {
    return this.running ? this.sleepUntil : null;
  }

  /** Starts the loop: its first pass runs at once (with `woken: true`), or after `delayMs`. Idempotent. */
  start(delayMs = 0): void {
    if (this.done) return;
    this.stopping = false;
    this.done = this.run(delayMs);
  }

  /** Stops after the pass in progress (a sleep ends at once). Idempotent. */
  async stop(): Promise<void> {
    if (!this.done) return;
    this.stopping = true;
    this.waker.wake();
    await this.done;
    this.done = null;
    this.sleepUntil = null;
  }

  /** Asks for a pass now: cuts the current sleep short, or the next one if a pass is running. */
  wake(): void {
    this.waker.wake();
  }

  private async run(delayMs: number): Promise<void> {
    let failures = 0;
    let woken = delayMs > 0 ? await this.sleep(delayMs) : true;
    while (!this.stopping) {
      let ms: number;
      try {
        this.waker.consume();
        ms = await this.opts.pass({ woken });
        failures = 0;
      } catch (err) {
        failures++;
        ms = this.opts.retryMs?.(failures) ?? 1_000;
        this.opts.log.error(`${this.opts.name}: pass failed; retrying in ${ms} ms`, { error: err instanceof Error ? err.message : String(err) });
      }
      if (this.stopping) break;
      woken = await this.sleep(ms);
    }
  }

  private async sleep(ms: number): Promise<boolean> {
    this.sleepUntil = this.opts.clock.now() + Math.max(0, ms);
    try {
      return await this.waker.sleep(ms, this.stopping);
    } finally {
      this.sleepUntil = null;
    }
  }
}
