import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Store } from '../store/store.ts';

const BATCH = 200;

/**
 * The TTL sweeper: tombstones facts whose time ran out (reads already skip them; the
 * sweep makes it part of their history and frees search of them), every `everyMs`.
 */
export class MemorySweeper {
  private readonly store: Store;
  private readonly clock: Clock;
  private everyMs: number;
  private readonly loop: PollLoop;

  constructor(opts: { store: Store; clock: Clock; log: Logger; everyMs: number }) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.everyMs = opts.everyMs;
    this.loop = new PollLoop({ name: 'memory sweep', clock: opts.clock, log: opts.log, pass: () => this.pass(), retryMs: () => this.everyMs || 60_000 });
  }

  start(): void {
    if (this.everyMs > 0) this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  reconfigure(everyMs: number): void {
    this.everyMs = everyMs;
    if (everyMs > 0 && !this.loop.running) this.loop.start();
  }

  /** One sweep; returns how many facts it tombstoned. */
  async sweepOnce(): Promise<number> {
    return this.store.memory.sweepExpired(this.clock.now(), BATCH);
  }

  private async pass(): Promise<number> {
    if (this.everyMs <= 0) return 60_000;
    return (await this.sweepOnce()) >= BATCH ? 0 : this.everyMs;
  }
}
