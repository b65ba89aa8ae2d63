/**
 * Ctrl-C and SIGTERM for the commands that run until stopped: the first signal asks
 * for a drain (`received` resolves — also for a signal that came while starting up),
 * a second one exits at once with 130.
 */
export class ShutdownSignals {
  readonly received: Promise<void>;
  private count = 0;
  private resolve!: () => void;
  private readonly onSignal = () => {
    this.count++;
    if (this.count > 1) process.exit(130);
    this.resolve();
  };

  constructor() {
    this.received = new Promise<void>((r) => (this.resolve = r));
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}
