import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Store } from '../store/store.ts';
import type { Intake } from './intake.ts';

const BATCH = 50;

/**
 * Hands on envelopes whose routing agent has finished (Intake.sweepRouting): right
 * after a commit in this process while some binding routes through an agent, and
 * every `everyMs` as a fallback (other processes' commits; envelopes left routing by
 * a config that has since changed).
 */
export class RoutingSweep {
  private readonly store: Store;
  private readonly intake: Pick<Intake, 'sweepRouting' | 'routesThroughAgents'>;
  private readonly everyMs: number;
  private readonly loop: PollLoop;
  private unsubscribe: (() => void) | null = null;

  constructor(opts: { store: Store; intake: Pick<Intake, 'sweepRouting' | 'routesThroughAgents'>; clock: Clock; log: Logger; everyMs?: number }) {
    this.store = opts.store;
    this.intake = opts.intake;
    this.everyMs = opts.everyMs ?? 500;
    this.loop = new PollLoop({ name: 'routing sweep', clock: opts.clock, log: opts.log, pass: () => this.pass(), retryMs: () => this.everyMs });
  }

  start(): void {
    if (this.loop.running) return;
    this.unsubscribe = this.store.onCommitted(() => {
      if (this.intake.routesThroughAgents) this.loop.wake();
    });
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.loop.stop();
  }

  private async pass(): Promise<number> {
    // A full batch: probably more waiting.
    return (await this.intake.sweepRouting(BATCH)) >= BATCH ? 0 : this.everyMs;
  }
}
