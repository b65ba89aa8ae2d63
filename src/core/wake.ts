/**
 * The sleep of a polling loop that a wake-up cuts short. A wake-up that arrives
 * while the loop is busy is kept, so the next sleep returns at once: no notification
 * falls between "looked for work" and "went to sleep".
 */
export class Wakeable {
  private pending = false;
  private wakeUp: (() => void) | null = null;
  private fullSleep = false;

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

  /** Sleeps up to `ms`; returns at once if woken meanwhile or `skip`. */
  sleep(ms: number, skip = false): Promise<void> {
    if (this.pending || skip) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = null;
        this.fullSleep = true;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Whether a sleep ran its full time since the last call (nobody woke the loop). */
  takeFullSleep(): boolean {
    const was = this.fullSleep;
    this.fullSleep = false;
    return was;
  }
}
