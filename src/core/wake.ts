import type { Clock, Timer } from './clock.ts';

/**
 * The sleep of a polling loop that a wake-up cuts short. A wake-up that arrives
 * while the loop is busy is kept, so the next sleep returns at once: no notification
 * falls between "looked for work" and "went to sleep".
 */
export class Wakeable {
  private readonly clock: Clock;
  private readonly unref: boolean;
  private pending = false;
  private wakeUp: (() => void) | null = null;

  /** `unref`: a sleep does not keep the process alive by itself. */
  constructor(clock: Clock, opts: { unref?: boolean } = {}) {
    this.clock = clock;
    this.unref = opts.unref ?? false;
  }

  /** Cuts the current sleep short, or the next one if the loop is awake. */
  wake(): void {
    this.pending = true;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** Forgets a pending wake-up: the loop is about to look for work anyway. */
  consume(): void {
    this.pending = false;
  }

  /**
   * Sleeps up to `ms` on the clock. Resolves true if woken (at once when a wake-up is
   * pending, `skip` is set or `ms` ≤ 0), false if the sleep ran its full time.
   */
  sleep(ms: number, skip = false): Promise<boolean> {
    if (this.pending || skip || ms <= 0) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      let timer: Timer | null = null;
      this.wakeUp = () => {
        timer?.cancel();
        this.pending = false;
        resolve(true);
      };
      timer = this.clock.timer(
        ms,
        () => {
          this.wakeUp = null;
          resolve(false);
        },
        { unref: this.unref },
      );
    });
  }
}
